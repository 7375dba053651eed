#!/usr/bin/env python3
"""Does a GPTQ-style error-feedback pass add to the calibrated group fit? A layer-level probe (issue 15).

    .venv/bin/python bench/gptq_probe.py REF RTN CAL [--layers 3,15,27]

REF: the bf16 reference; RTN / CAL: the same policy converted by `tqlm convert` without / with `--stats`.
For a few linear layers, captures the inputs X [N, in] with mlx_lm over wiki.test.raw: the calibration rows
from its second half, held-out rows from its first windows. Output error ||(W - W^) X||^2 relative to round to
nearest, for: RTN, the calibrated fit (tqlm), and GPTQ (columns in order, error fed forward through the
Cholesky factor of X^T X, damped 1%) on top of each one's group parameters (scale/bias per MLX group kept:
only the codes change, so the output stays plain MLX affine).
"""
import argparse
import sys
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx_lm.utils import load_model, load_tokenizer

ROOT = Path(__file__).resolve().parents[1]
WIKI = ROOT.parent / "shared" / "data" / "wikitext-2" / "wiki.test.raw"


class Tap(nn.Module):
    def __init__(self, inner, store):
        super().__init__()
        self.inner, self.store = inner, store

    def __call__(self, x):
        self.store.append(np.array(x.astype(mx.float32)).reshape(-1, x.shape[-1]))
        return self.inner(x)


def weights(d):
    w = {}
    for f in sorted(Path(d).glob("*.safetensors")):
        w.update(mx.load(str(f)))
    return w


def gptq(W, H, scales, biases, gs, bits):
    """Codes for W [out, in] with fixed per-group (scale, bias) [out, in/gs], error fed forward (GPTQ)."""
    W = W.astype(np.float64).copy()
    n = W.shape[1]
    Hd = H + 0.01 * np.mean(np.diag(H)) * np.eye(n)
    U = np.linalg.cholesky(np.linalg.inv(Hd)).T  # upper Cholesky factor of H^-1
    Q = np.zeros_like(W)
    nmax = 2 ** bits - 1
    for j in range(n):
        s, b = scales[:, j // gs], biases[:, j // gs]
        q = np.clip(np.rint((W[:, j] - b) / s), 0, nmax)
        Q[:, j] = s * q + b
        err = (W[:, j] - Q[:, j]) / U[j, j]
        W[:, j + 1:] -= np.outer(err, U[j, j + 1:])
    return Q


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ref")
    ap.add_argument("rtn")
    ap.add_argument("cal")
    ap.add_argument("--layers", default="3,15,27")
    ap.add_argument("--tokens", type=int, default=2048)
    a = ap.parse_args()
    model, _ = load_model(Path(a.ref))
    tok = load_tokenizer(Path(a.ref))
    text = WIKI.read_text()
    ids = tok.encode(text, add_special_tokens=False)
    calib, held = ids[len(ids) // 2:][:a.tokens], ids[:a.tokens]
    layers = [int(x) for x in a.layers.split(",")]
    names = ["self_attn.q_proj", "self_attn.o_proj", "mlp.down_proj"]
    taps = {}
    for l in layers:
        lay = model.model.layers[l]
        for nm in names:
            store = []
            parent, leaf = nm.split(".")
            mod = getattr(lay, parent)
            setattr(mod, leaf, Tap(getattr(mod, leaf), store))
            taps[(l, nm)] = store
    X = {}
    for label, seq in (("calib", calib), ("held", held)):
        for s in taps.values():
            s.clear()
        for i in range(0, len(seq), 512):
            model(mx.array(seq[i:i + 512])[None])
        X[label] = {k: np.concatenate(v) for k, v in taps.items()}
    wr, wq, wc = weights(a.ref), weights(a.rtn), weights(a.cal)
    cfg_q = {}
    print("| layer | weight | RTN | calibrated fit | GPTQ on RTN params | GPTQ on calibrated params | (held-out: same) |")
    print("|---|---|---|---|---|---|---|")
    for (l, nm), _ in taps.items():
        p = f"model.layers.{l}.{nm}"
        W = np.array(wr[p + ".weight"].astype(mx.float32)).astype(np.float64)
        out = []
        res = {}
        for tag, w in (("rtn", wq), ("cal", wc)):
            s = np.array(w[p + ".scales"].astype(mx.float32)).astype(np.float64)
            b = np.array(w[p + ".biases"].astype(mx.float32)).astype(np.float64)
            gs = W.shape[1] // s.shape[1]
            bits = w[p + ".weight"].shape[1] * 32 // W.shape[1]
            deq = np.array(mx.dequantize(w[p + ".weight"], w[p + ".scales"], w[p + ".biases"], gs, bits)
                           .astype(mx.float32)).astype(np.float64)
            Xc = X["calib"][(l, nm)].astype(np.float64)
            H = Xc.T @ Xc
            res[tag] = deq
            res["gptq-" + tag] = gptq(W, H, s, b, gs, bits)
        for split in ("calib", "held"):
            Xs = X[split][(l, nm)].astype(np.float64)
            errs = {k: float(np.sum(((W - v) @ Xs.T) ** 2)) for k, v in res.items()}
            out.append([errs[k] / errs["rtn"] for k in ("rtn", "cal", "gptq-rtn", "gptq-cal")])
        c, h = out
        print(f"| {l} | {nm} | 1 | {c[1]:.3f} | {c[2]:.3f} | {c[3]:.3f} | {h[1]:.3f} / {h[2]:.3f} / {h[3]:.3f} |",
              flush=True)


if __name__ == "__main__":
    sys.exit(main())
