#!/usr/bin/env python3
"""Needle in a haystack across KV cache modes: `tqlm niah --json` once per mode, one Markdown table.

    .venv/bin/python bench/niah_table.py [--model models/smollm2-135m-instruct] [--modes bf16,q8,turbo4,...]
        [--contexts 1024,2048,4096,8192] [--depths 10,50,90] [--seed 0] [--out niah.json]

Rows are KV modes, columns contexts; a cell is passes / trials over the depths, then the total. Every mode
sees the same prompts (they depend on the seed and context only). A mode that fails (not implemented yet,
out of memory, ...) gets its error in its row and the other modes still run. --out writes every run's JSON
(per-trial records included) as {"model", "modes": {mode: run or {"error"}}}.

Time: prefill dominates; on 2 cores SmolLM2-135M needs about 6 s per 1K trial and far more per 8K trial
(attention is quadratic), about 20 minutes per mode at the full 4 x 3 grid.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODES = "bf16,q8,turbo4,turbo4v2,turbo3"


def run_mode(args, mode):
    """Runs `tqlm niah --json` for one KV mode, echoing its progress lines; returns its JSON or {"error"}."""
    exe = Path(args.build) / "tqlm"
    if not exe.is_absolute():
        exe = ROOT / exe
    cmd = [str(exe), "niah", str(args.model), "--kv", mode, "--contexts", args.contexts, "--depths", args.depths,
           "--seed", str(args.seed), "--json"]
    if args.haystack:
        cmd += ["--haystack", args.haystack]
    if args.threads:
        cmd += ["-t", str(args.threads)]
    if args.kv_boundary is not None:
        cmd += ["--kv-boundary", str(args.kv_boundary)]
    if args.kv_calib:
        cmd += ["--kv-calib", args.kv_calib]
    print(f"[{mode}] {' '.join(cmd)}", file=sys.stderr, flush=True)
    t0 = time.time()
    try:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    except OSError as e:
        return {"error": str(e)}
    err = []
    for line in p.stderr:  # progress: one line per trial
        err.append(line.rstrip("\n"))
        print(f"[{mode}] {err[-1]}", file=sys.stderr, flush=True)
    out = p.stdout.read()
    p.wait()
    if p.returncode != 0:
        msg = next((l for l in reversed(err) if l.strip()), f"exit status {p.returncode}")
        return {"error": msg.removeprefix("tqlm: error: "), "seconds": time.time() - t0}
    try:
        return json.loads(out)
    except json.JSONDecodeError as e:
        return {"error": f"unreadable JSON from tqlm: {e}"}


def table(contexts, runs):
    """Markdown: mode x context, cell = passes/trials, plus KV bytes per token and a total column."""
    head = ["mode", "KV bytes/token"] + [str(c) for c in contexts] + ["total", "seconds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for mode, r in runs.items():
        if "error" in r:
            msg = r["error"].replace("|", "\\|")
            cells = [mode, "-", f"error: {msg}"] + [""] * (len(contexts) - 1) + ["-", "-"]
        else:
            by = {c["context_target"]: c for c in r["summary"]["by_context"]}
            cells = [mode, f"{r['kv_bytes_per_token']:.0f}"]
            cells += [f"{by[c]['passed']}/{by[c]['total']}" if c in by else "-" for c in contexts]
            s = r["summary"]
            cells += [f"{s['passed']}/{s['total']}", f"{s['seconds']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "smollm2-135m-instruct"))
    ap.add_argument("--modes", default=MODES, help=f"comma-separated KV modes (default {MODES})")
    ap.add_argument("--contexts", default="1024,2048,4096,8192")
    ap.add_argument("--depths", default="10,50,90")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--haystack", help="text file (default: tqlm's, wiki.test.raw under ../shared/data)")
    ap.add_argument("--threads", "-t", type=int, default=0)
    ap.add_argument("--kv-boundary", type=int, help="bf16 layers at each end in compressed modes (tqlm's default)")
    ap.add_argument("--kv-calib", help="KV calibration file for centred and auto:R modes (tqlm kv-calibrate)")
    ap.add_argument("--build", default=os.environ.get("TQLM_BUILD", "build"), help="build directory holding tqlm")
    ap.add_argument("--out", help="write all runs as JSON here")
    args = ap.parse_args()

    contexts = [int(c) for c in args.contexts.split(",")]
    runs = {}
    for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
        runs[mode] = run_mode(args, mode)
    model = Path(args.model).name
    print(f"Needle in a haystack, {model}, depths {args.depths} %, seed {args.seed} (passes / trials)\n")
    print(table(contexts, runs))
    if args.out:
        Path(args.out).write_text(json.dumps({"model": str(args.model), "contexts": contexts, "depths": args.depths,
                                              "seed": args.seed, "modes": runs}, indent=1) + "\n")
        print(f"\nJSON: {args.out}", file=sys.stderr)
    return 0  # a failed mode is reported in its row


if __name__ == "__main__":
    sys.exit(main())
