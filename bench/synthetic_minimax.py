#!/usr/bin/env python3
"""MiniMax-M2's decode and prefill speed on this machine, measured on a few of its layers with random weights and
extrapolated to all 62 (issue 16, item 7).

    .venv/bin/python bench/synthetic_minimax.py [--layers 2,4] [--policy config-i] [--contexts 128,2048]
        [--threads 0] [--bandwidth 400] [--dir .cache/synthetic-minimax] [--keep]

For each layer count N: an MLX checkpoint with MiniMax-M2's real widths (hidden 3072, 48/8 heads of 128, 256
experts top-8 of width 1536, vocabulary 200064) whose layers are N middle layers of the full model under the
policy (their bits and group sizes taken from `tqlm convert --dry-run` of the 62-layer config; codes, scales and
biases random, norms 1), then `tqlm bench` on it (pseudo-random token ids): prefill and decode tokens/s at each
context, the bytes each decoded token reads and their share of the measured read bandwidth. Two layer counts
separate the per-layer time from the fixed cost (embedding, head, sampling); the full model's decode time per token
is predicted as fixed + per-layer x 62 (the boundary layers scaled by their bytes), on this machine and, at the same
share of bandwidth, on a machine of --bandwidth GB/s. About 1 GB of checkpoint per layer (written once, kept in
--dir unless removed).
"""
import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "tests" / "fixtures" / "configs" / "minimax-m2.json"


def dry_run(tqlm, policy):
    r = subprocess.run([tqlm, "convert", str(CONFIG), "--policy", policy, "--dry-run", "--json"], capture_output=True,
                       text=True, check=True)
    return json.loads(r.stdout)["tensors"]


def write_checkpoint(out, plan, layers, first):
    """Layers [first, first + layers) of the plan, renumbered from 0; everything outside the layers as planned."""
    import mlx.core as mx
    rng = np.random.default_rng(0)
    cfg = json.loads(CONFIG.read_text())
    cfg.pop("quantization_config", None)
    cfg["num_hidden_layers"] = layers
    cfg["attn_type_list"] = cfg["attn_type_list"][:layers]
    quant = {"group_size": 64, "bits": 4, "mode": "affine"}
    tensors = {}
    for t in plan:
        l, name = t["layer"], t["module"]
        if l >= 0:
            if not first <= l < first + layers:
                continue
            name = name.replace(f"model.layers.{l}.", f"model.layers.{l - first}.", 1)
        shape = t["shape"]
        if "bits" in t:
            b, g = t["bits"], t["group_size"]
            words = shape[:-1] + [shape[-1] * b // 32]
            groups = shape[:-1] + [shape[-1] // g]
            tensors[name + ".weight"] = mx.array(rng.integers(0, 2**32, size=words, dtype=np.uint32))
            scale = np.full(groups, 0.02 / (2**b - 1), dtype=np.float32)
            tensors[name + ".scales"] = mx.array(scale).astype(mx.bfloat16)
            tensors[name + ".biases"] = mx.array(-scale * (2**b - 1) / 2).astype(mx.bfloat16)
            quant[name] = {"group_size": g, "bits": b}
        else:
            suffix = "" if name.endswith("e_score_correction_bias") else ".weight"
            if name.endswith("norm") or name.endswith("layernorm"):
                v = np.ones(shape, dtype=np.float32)
            elif suffix == "":
                v = np.zeros(shape, dtype=np.float32)
            else:
                v = rng.standard_normal(shape, dtype=np.float32) * 0.02
            tensors[name + suffix] = mx.array(v).astype(mx.bfloat16 if t.get("keep") == "BF16" else mx.float32)
    cfg["quantization"] = quant
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    mx.save_safetensors(str(tmp / "model.safetensors"), tensors, metadata={"format": "mlx"})
    (tmp / "config.json").write_text(json.dumps(cfg, indent=1))
    tmp.rename(out)


def layer_bytes(plan):
    by = {}
    for t in plan:
        by[t["layer"]] = by.get(t["layer"], 0) + t["bytes"]
    return by


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tqlm", default=str(ROOT / "build" / "tqlm"))
    ap.add_argument("--layers", default="2,4", help="two layer counts (comma separated)")
    ap.add_argument("--policy", default="config-i")
    ap.add_argument("--contexts", default="128,2048")
    ap.add_argument("--decode", type=int, default=16)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--bandwidth", type=float, default=400.0, help="GB/s of a machine to predict for")
    ap.add_argument("--dir", default=str(ROOT / ".cache" / "synthetic-minimax"))
    ap.add_argument("--keep", action="store_true", help="keep the checkpoints")
    a = ap.parse_args()
    plan = dry_run(a.tqlm, a.policy)
    lb = layer_bytes(plan)
    L = 62
    mid = L // 2
    counts = [int(x) for x in a.layers.split(",")]
    results = {}
    for n in counts:
        d = Path(a.dir) / f"{a.policy}-{n}"
        if not (d / "config.json").exists():
            print(f"writing {d} ({sum(lb[l] for l in range(mid, mid + n)) / 1e9:.2f} GB of layers)", file=sys.stderr)
            write_checkpoint(d, plan, n, mid)
        r = subprocess.run([a.tqlm, "bench", str(d), "--contexts", a.contexts, "-n", str(a.decode), "-t",
                            str(a.threads), "--json"], capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(r.stderr)
        results[n] = json.loads(r.stdout)
        if not a.keep:
            shutil.rmtree(d)
    n1, n2 = counts
    bw = results[n2].get("read_bandwidth_gbps", 0)
    print(f"MiniMax-M2 widths, policy {a.policy}, layers {mid}..{mid + n2 - 1} of 62 (random weights), "
          f"threads {a.threads or 'all cores'}, {results[n2]['linear']}; measured read bandwidth {bw:.1f} GB/s\n")
    print("| layers | context | prefill tok/s | decode tok/s | ms/token | MB read/token | GB/s | % bandwidth |")
    print("|---|---|---|---|---|---|---|---|")
    for n in counts:
        for row in results[n]["points"]:
            read = row["weight_bytes_per_token"] + row["kv_bytes_per_token"]
            print(f"| {n} | {row['context']} | {row['prefill_tps']:.1f} | {row['decode_tps']:.2f} | "
                  f"{1000 / row['decode_tps']:.1f} | {read / 1e6:.1f} | {row['achieved_gbps']:.2f} | "
                  f"{100 * row['bandwidth_fraction']:.1f}% |")
    # per-layer and fixed decode time at the first context
    t1 = 1 / results[n1]["points"][0]["decode_tps"]
    t2 = 1 / results[n2]["points"][0]["decode_tps"]
    per_layer = (t2 - t1) / (n2 - n1)
    fixed = t1 - n1 * per_layer
    if per_layer <= 0 or fixed <= 0:
        sys.exit(f"\nthe {n2}-layer model decoded about as fast as the {n1}-layer one ({1000 * t2:.1f} vs {1000 * t1:.1f} "
                 "ms/token): the machine was too noisy to separate per-layer from fixed time; rerun on a quiet "
                 "machine or with layer counts further apart (e.g. --layers 1,4)")
    mid_bytes = sum(lb[l] for l in range(mid, mid + n2)) / n2
    full = fixed + per_layer * sum(lb[l] for l in range(L)) / mid_bytes
    p1, p2 = results[n1]["points"][0], results[n2]["points"][0]
    per_layer_bytes = (p2["weight_bytes_per_token"] - p1["weight_bytes_per_token"]) / (n2 - n1)
    fixed_bytes = p1["weight_bytes_per_token"] - n1 * per_layer_bytes
    pct = 100 * p2["bandwidth_fraction"]
    print(f"\nper middle layer {1000 * per_layer:.1f} ms, fixed (embedding, head, sampling) {1000 * fixed:.1f} ms "
          f"per decoded token; predicted full 62-layer decode on this machine: {1 / full:.2f} tokens/s "
          f"({1000 * full:.0f} ms/token)")
    bytes_full = fixed_bytes + per_layer_bytes * sum(lb[l] for l in range(L)) / mid_bytes
    # each part at the share of bandwidth it reaches here: the layers (MoE decode) and the fixed part (LM head)
    eff_layer = per_layer_bytes / per_layer / (bw * 1e9)
    eff_fixed = fixed_bytes / fixed / (bw * 1e9)
    layers_bytes = bytes_full - fixed_bytes
    other = fixed_bytes / (a.bandwidth * 1e9 * eff_fixed) + layers_bytes / (a.bandwidth * 1e9 * eff_layer)
    print(f"weights read per decoded token: {per_layer_bytes / 1e6:.1f} MB per middle layer at "
          f"{100 * eff_layer:.0f}% of the bandwidth, {fixed_bytes / 1e6:.1f} MB fixed at {100 * eff_fixed:.0f}%; "
          f"the full model reads {bytes_full / 1e9:.2f} GB per token. A {a.bandwidth:.0f} GB/s machine at the same "
          f"shares: ~{1 / other:.1f} tokens/s (at 70% of its bandwidth: "
          f"{0.7 * a.bandwidth * 1e9 / bytes_full:.1f})")

if __name__ == "__main__":
    main()
