#!/usr/bin/env python3
"""Single-stream speed of two tqlm builds side by side, on the same model and machine, interleaved run by run
(A B A B ...), so that machine noise hits both: prefill and decode tokens/s of `tqlm bench` per context, medians
over --rounds, and the ratio B / A.

  .venv/bin/python bench/compare_builds.py --a /tmp/old/build/tqlm --b build/tqlm \
      --model models/smollm2-135m-instruct --contexts 128,2048 --decode 64 --rounds 3

Build an older commit for --a with `git worktree add /tmp/old <commit>` and `cmake --build` there."""
import argparse
import json
import statistics
import subprocess


def bench(binary, args):
    out = subprocess.run([binary, "bench", args.model, "--contexts", args.contexts, "--decode", str(args.decode),
                          "--no-bandwidth", "--json", "--kv", args.kv, "-t", str(args.threads)],
                         check=True, capture_output=True, text=True).stdout
    return {p["context"]: (p["prefill_tps"], p["decode_tps"]) for p in json.loads(out)["points"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True, help="baseline tqlm binary")
    ap.add_argument("--b", required=True, help="tqlm binary under test")
    ap.add_argument("--model", default="models/smollm2-135m-instruct")
    ap.add_argument("--contexts", default="128,2048")
    ap.add_argument("--decode", type=int, default=64)
    ap.add_argument("--kv", default="bf16")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    runs = {"a": [], "b": []}
    for _ in range(args.rounds):
        for k in ("a", "b"):
            runs[k].append(bench(getattr(args, k), args))
    print(f"model {args.model}, kv {args.kv}, {args.threads} threads, medians of {args.rounds} interleaved runs")
    print("| context | prefill A tok/s | prefill B tok/s | B/A | decode A tok/s | decode B tok/s | B/A |")
    print("|---|---|---|---|---|---|---|")
    for ctx in runs["a"][0]:
        med = {k: [statistics.median(r[ctx][i] for r in runs[k]) for i in (0, 1)] for k in runs}
        print(f"| {ctx} | {med['a'][0]:.1f} | {med['b'][0]:.1f} | {med['b'][0] / med['a'][0]:.3f} | "
              f"{med['a'][1]:.1f} | {med['b'][1]:.1f} | {med['b'][1] / med['a'][1]:.3f} |")


if __name__ == "__main__":
    main()
