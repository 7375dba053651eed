#!/usr/bin/env python3
"""The two linear paths side by side (--linear f32, the reference, and --linear int8), one binary, interleaved
run by run (f32 int8 f32 int8 ...) so machine noise hits both: prefill and decode tokens/s of `tqlm bench`,
the weight GB/s each decoded token reads, medians over --rounds, per thread count, and the ratio int8 / f32.

  .venv/bin/python bench/linear_paths.py --model models/smollm2-135m-instruct --threads 1,2 --rounds 3"""
import argparse
import json
import statistics
import subprocess


def bench(args, linear, threads):
    out = subprocess.run([args.binary, "bench", args.model, "--contexts", args.contexts, "--decode",
                          str(args.decode), "--no-bandwidth", "--json", "-t", str(threads), "--linear", linear],
                         check=True, capture_output=True, text=True).stdout
    j = json.loads(out)
    return j["linear"], {p["context"]: (p["prefill_tps"], p["decode_tps"], p["achieved_gbps"]) for p in j["points"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default="build/tqlm")
    ap.add_argument("--model", default="models/smollm2-135m-instruct")
    ap.add_argument("--contexts", default="128,512")
    ap.add_argument("--decode", type=int, default=64)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    print(f"model {args.model}, bf16 KV, medians of {args.rounds} interleaved runs, decode {args.decode} tokens")
    print("| threads | context | path | prefill tok/s | decode tok/s | decode GB/s | int8/f32 prefill | int8/f32 decode |")
    print("|---|---|---|---|---|---|---|---|")
    for threads in [int(t) for t in args.threads.split(",")]:
        runs, names = {"f32": [], "int8": []}, {}
        for _ in range(args.rounds):
            for lin in ("f32", "int8"):
                names[lin], r = bench(args, lin, threads)
                runs[lin].append(r)
        for ctx in runs["f32"][0]:
            med = {k: [statistics.median(r[ctx][i] for r in runs[k]) for i in range(3)] for k in runs}
            for k in ("f32", "int8"):
                ratio = (f"{med['int8'][0] / med['f32'][0]:.2f}x | {med['int8'][1] / med['f32'][1]:.2f}x"
                         if k == "int8" else " | ")
                print(f"| {threads} | {ctx} | {names[k]} | {med[k][0]:.1f} | {med[k][1]:.2f} | {med[k][2]:.2f} | {ratio} |")


if __name__ == "__main__":
    main()
