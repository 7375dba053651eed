#!/usr/bin/env python3
"""Is the auto policy's proxy a fair stand-in for KL? (issue 15)

    .venv/bin/python bench/proxy_check.py REF STATS [--bits 2]

For a handful of weights spread over layers and roles, quantizes that weight ALONE to --bits (round to
nearest, group 64; everything else bf16), measures KL against REF with `tqlm perplexity` (first windows of
wiki.test.raw; STATS were made on its second half), and computes the proxy `--policy auto` ranks weights by:
sum_rows sum_j E[x_j^2] (w_j - w^_j)^2 per calibration token. Prints both and their Spearman rank correlation.
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

import mlx.core as mx
import numpy as np
from safetensors.numpy import load_file

ROOT = Path(__file__).resolve().parents[1]
WIKI = ROOT.parent / "shared" / "data" / "wikitext-2" / "wiki.test.raw"
PICKS = [(0, "attn_q", "self_attn.q_proj"), (0, "mlp_down", "mlp.down_proj"), (5, "mlp_gate", "mlp.gate_proj"),
         (10, "attn_o", "self_attn.o_proj"), (15, "mlp_up", "mlp.up_proj"), (20, "attn_k", "self_attn.k_proj"),
         (25, "attn_v", "self_attn.v_proj"), (29, "mlp_down", "mlp.down_proj")]


def run(*args):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(r.stderr)
    return r.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ref")
    ap.add_argument("stats")
    ap.add_argument("--bits", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--work", default=str(ROOT / ".cache" / "calib15" / "proxy"))
    ap.add_argument("--tqlm", default=str(ROOT / "build" / "tqlm"))
    a = ap.parse_args()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    ref = Path(a.ref)
    base = work / "ref.kl"
    if not base.exists():
        run(a.tqlm, "perplexity", ref, "--data", WIKI, "--ctx", a.ctx, "--samples", a.samples, "--save-logits", base)
    w = {}
    for f in sorted(ref.glob("*.safetensors")):
        w.update(mx.load(str(f)))
    st = load_file(a.stats)
    tokens = float(json.loads(Path(a.stats).read_bytes()[8:8 + int.from_bytes(Path(a.stats).read_bytes()[:8], "little")])
                   ["__metadata__"]["tokens"])
    rows = []
    for layer, role, mod in PICKS:
        name = f"model.layers.{layer}.{mod}"
        key = name.replace("k_proj", "q_proj").replace("v_proj", "q_proj").replace("up_proj", "gate_proj")
        W = w[name + ".weight"]
        q, s, b = mx.quantize(W, 64, a.bits)
        dW = np.array((W.astype(mx.float32) - mx.dequantize(q, s, b, 64, a.bits).astype(mx.float32)))
        proxy = float((dW.astype(np.float64) ** 2 @ (st[key + ".sumsq"] / tokens)).sum())
        pol = work / f"{layer}-{role}.json"
        pol.write_text(json.dumps({"name": pol.stem, "rules": [
            {"roles": [role], "layers": [str(layer)], "bits": a.bits, "group_size": 64}, {"keep": "bf16"}]}))
        out = work / f"{layer}-{role}-{a.bits}"
        if not out.exists():
            run(a.tqlm, "convert", ref, out, "--policy", pol)
        r = json.loads(run(a.tqlm, "perplexity", out, "--data", WIKI, "--ctx", a.ctx, "--samples", a.samples,
                           "--kl-base", base, "--json"))
        rows.append((name, proxy, r["kl_mean"]))
        print(f"| {name} | {proxy:.4g} | {r['kl_mean']:.5f} |", flush=True)
    p, k = np.argsort(np.argsort([r[1] for r in rows])), np.argsort(np.argsort([r[2] for r in rows]))
    n = len(rows)
    rho = 1 - 6 * float(((p - k) ** 2).sum()) / (n * (n * n - 1))
    print(f"Spearman rank correlation, proxy vs KL, {n} weights at {a.bits} bits alone: {rho:.3f}")


if __name__ == "__main__":
    main()
