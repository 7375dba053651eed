#!/usr/bin/env python3
"""Decode speed of the KV cache modes side by side: `tqlm bench --json` on one checkpoint for bf16, q8 and
turbo4v2 (or --modes) at 4K and 8K context (4096 and 8160 tokens, so that 32 decoded tokens end at SmolLM2's
8192 limit; or --contexts), in one run, with the machine's read bandwidth
measured by the same binary.

    .venv/bin/python bench/kv_speed.py [--model models/smollm2-135m-instruct] [--modes bf16,q8,turbo4v2]
        [--contexts 4096,8160] [--decode 32] [--out docs/kv-speed.md]

Per (mode, context): prefill and decode tokens/s, ms per decoded token, the bytes one decoded token reads
(active weights + the KV cache over the context), the bandwidth that implies and its share of the measured
read bandwidth, decode speed relative to bf16, and the cache's growth beside the process's resident-memory
growth over the same span (the RSS check: the cache's report must match within 10%).
The prompt is wiki.test.raw text (same tokens for every mode).
"""
import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "models" / "smollm2-135m-instruct"))
    ap.add_argument("--modes", default="bf16,q8,turbo4v2")
    ap.add_argument("--contexts", default="4096,8160")  # 8160 + 32 decoded = 8192, SmolLM2's limit
    ap.add_argument("--decode", type=int, default=32)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "wikitext-2" / "wiki.test.raw"))
    ap.add_argument("--tqlm", default=str(ROOT / "build" / "tqlm"))
    ap.add_argument("--out", default=None, help="write the markdown table here")
    a = ap.parse_args()
    runs = {}
    for mode in a.modes.split(","):
        cmd = [a.tqlm, "bench", a.model, "--kv", mode, "--contexts", a.contexts, "--decode", str(a.decode), "--data",
               a.data, "--json"] + (["-t", str(a.threads)] if a.threads else [])
        print(f"[{mode}] {' '.join(cmd)}", file=sys.stderr, flush=True)
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"{mode}: {r.stderr}")
        runs[mode] = json.loads(r.stdout)
    first = next(iter(runs.values()))
    bw = statistics.median(p["read_gbps"] for r in runs.values() for p in r["points"])
    base = runs.get("bf16")
    lines = [f"{Path(a.model).name}, {first['threads']} threads, {first['isa']} kernels, measured read bandwidth "
             f"{bw:.1f} GB/s (median; each point's share is of the figure measured beside it), {a.decode} decoded tokens after a wiki.test.raw prompt "
             f"(`bench/kv_speed.py --contexts {a.contexts}`)", "",
             "| KV | context | KV B/token | prefill tok/s | decode tok/s | vs bf16 | ms/token | MB read/token "
             "(weights + KV) | GB/s | % of bandwidth | cache grew MB | RSS grew MB | RSS / cache |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for mode, r in runs.items():
        for j, p in enumerate(r["points"]):
            rel = p["decode_tps"] / base["points"][j]["decode_tps"] if base else 0
            ratio = p["rss_growth"] / p["cache_growth"] if p["cache_growth"] else 0
            lines.append(
                f"| {mode} | {p['context']} | {r['kv_bytes_per_token']:,} | {p['prefill_tps']:.1f} | "
                f"{p['decode_tps']:.2f} | {rel:.2f}x | {1000 / p['decode_tps']:.1f} | "
                f"{p['weight_bytes_per_token'] / 1e6:.1f} + {p['kv_bytes_per_token'] / 1e6:.1f} | "
                f"{p['achieved_gbps']:.2f} | {100 * p['bandwidth_fraction']:.1f}% | {p['cache_growth'] / 1e6:.1f} | "
                f"{p['rss_growth'] / 1e6:.1f} | {ratio:.3f} |")
    text = "\n".join(lines)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")
    bad = [(m, p["context"]) for m, r in runs.items() for p in r["points"]
           if p["cache_growth"] and abs(p["rss_growth"] / p["cache_growth"] - 1) > 0.10]
    if bad:
        print(f"RSS differs from the cache's report by more than 10%: {bad}", file=sys.stderr)


if __name__ == "__main__":
    main()
