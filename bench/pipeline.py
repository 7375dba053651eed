#!/usr/bin/env python3
"""The pipeline across processes (`mpirun -np P tqlm ...`, docs/pipeline.md) on one machine: for 1, 2 and 3 ranks,
decode tokens/s of one stream, prefill tokens/s, aggregate decode tokens/s of concurrent streams, and the bytes each
token sends per hop (measured by rank 0, beside the formula hidden x 4 bytes).

    .venv/bin/python bench/pipeline.py [--model M] [--ranks 1,2,3] [--threads 1] [--streams 8] [--out FILE]

Every rank gets --threads threads; on a machine with fewer cores than ranks x threads the ranks share cores
(--oversubscribe), so the table shows the pipeline's overhead and overlap rather than what separate hosts would
gain. Ranks talk over TCP on the loopback interface, the path real hosts use. One run per cell, so compare ratios
measured in the same run.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}


def cmd(tqlm, ranks, *args):
    args = [str(a) for a in args]
    if ranks == 1:
        return [tqlm, *args]
    return [shutil.which("mpirun"), "--oversubscribe", "-np", str(ranks), "--bind-to", "none", "--mca", "pml", "ob1",
            "--mca", "btl", "self,tcp", "--mca", "btl_tcp_if_include", "lo", tqlm, *args]


def run(c):
    r = subprocess.run(c, capture_output=True, text=True, env=ENV)
    if r.returncode != 0:
        sys.exit(f"{' '.join(c)}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return r


def traffic(stderr):
    m = re.search(r"pipeline traffic: .*?\((\d+) bytes per token", stderr)
    return int(m.group(1)) if m else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "models" / "smollm2-135m-instruct"))
    ap.add_argument("--tqlm", default=str(ROOT / "build" / "tqlm"))
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "wikitext-2" / "wiki.test.raw"))
    ap.add_argument("--ranks", default="1,2,3")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--out", help="append the markdown table to this file")
    a = ap.parse_args()
    hidden = json.loads((Path(a.model) / "config.json").read_text())["hidden_size"]
    t = ["-t", a.threads]
    rows = []
    for p in [int(x) for x in a.ranks.split(",")]:
        g = run(cmd(a.tqlm, p, "generate", a.model, *t, "--temp", 0, "--max-tokens", 128,
                    "-p", "Write a long story about a lighthouse keeper."))
        dec = float(re.search(r"generated \d+ tokens ([\d.]+) tok/s", g.stdout + g.stderr).group(1))
        pp = run(cmd(a.tqlm, p, "perplexity", a.model, *t, "-f", a.data, "--ctx", 1024, "--samples", 2,
                     "--chunk", 256, "--json"))
        pre = json.loads(pp.stdout)["tokens_per_second"]
        c = run(cmd(a.tqlm, p, "bench", a.model, *t, "--concurrency", a.streams, "--prompt", 128, "--gen", 64,
                    "--prefix", 0, "--no-bandwidth", "--json"))
        agg = json.loads(c.stdout)["levels"][0]["aggregate_decode_tps"]
        rows.append((p, dec, pre, agg, traffic(g.stderr), traffic(pp.stderr)))
        print(f"ranks {p}: decode {dec:.1f} tok/s, prefill {pre:.1f} tok/s, {a.streams} streams {agg:.1f} tok/s",
              file=sys.stderr)
    base = rows[0]
    lines = [f"| ranks | decode tok/s (1 stream) | prefill tok/s | {a.streams} streams, aggregate tok/s | "
             f"bytes/token per hop, decode (formula {hidden * 4}) | bytes/token per hop, prefill |",
             "|---|---|---|---|---|---|"]
    for p, dec, pre, agg, bd, bp in rows:
        lines.append(f"| {p} | {dec:.1f} ({dec / base[1]:.2f}x) | {pre:.1f} ({pre / base[2]:.2f}x) | "
                     f"{agg:.1f} ({agg / base[3]:.2f}x) | {bd if bd else '-'} | {bp if bp else '-'} |")
    table = "\n".join(lines)
    print(f"model {a.model}, {a.threads} thread(s) per rank, {os.cpu_count()} CPUs\n\n{table}")
    if a.out:
        with open(a.out, "a") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
