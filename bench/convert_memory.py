#!/usr/bin/env python3
"""Peak memory of `tqlm convert` on a synthetic checkpoint larger than the memory budget.

    .venv/bin/python bench/convert_memory.py [--layers 6] [--experts 32] [--dir /tmp/tqlm-convert-bench]

Writes an HF-layout bf16 checkpoint with MiniMax-M2's real widths (hidden 3072, expert width 1536, vocab
200064, per-expert tensors, 5 GiB shards) but fewer layers and experts (default: about 8.3 GB), converts it
with `--policy config-i`, and prints the source size, the peak RSS of the converter (from
/proc/PID/status VmHWM, sampled) and the throughput. The checkpoint is deleted afterwards.
"""
import argparse
import json
import shutil
import struct
import subprocess
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
D, I, V, H, KV, HD = 3072, 1536, 200064, 48, 8, 128


def tensors(layers, experts):
    yield "model.embed_tokens.weight", (V, D)
    for l in range(layers):
        p = f"model.layers.{l}."
        yield p + "input_layernorm.weight", (D,)
        yield p + "post_attention_layernorm.weight", (D,)
        for n, s in [("q_proj", (H * HD, D)), ("k_proj", (KV * HD, D)), ("v_proj", (KV * HD, D)), ("o_proj", (D, H * HD))]:
            yield p + f"self_attn.{n}.weight", s
        yield p + "self_attn.q_norm.weight", (H * HD,)
        yield p + "self_attn.k_norm.weight", (KV * HD,)
        yield p + "block_sparse_moe.gate.weight", (experts, D)
        yield p + "block_sparse_moe.e_score_correction_bias", (experts,)
        for e in range(experts):
            for n, s in [("w1", (I, D)), ("w3", (I, D)), ("w2", (D, I))]:
                yield p + f"block_sparse_moe.experts.{e}.{n}.weight", s
    yield "model.norm.weight", (D,)
    yield "lm_head.weight", (V, D)


def write_checkpoint(d, layers, experts, shard_bytes=5 << 30):
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    pool = (rng.standard_normal(1 << 24, dtype=np.float32) * 0.02).astype(np.float32).view(np.uint32)
    pool = (pool >> 16).astype(np.uint16)  # bf16 bits of small normal values, reused as a source of bytes
    shards, cur, size = [], [], 0
    for name, shape in tensors(layers, experts):
        nb = int(np.prod(shape)) * (4 if name.endswith("e_score_correction_bias") else 2)
        if cur and size + nb > shard_bytes:
            shards.append(cur)
            cur, size = [], 0
        cur.append((name, shape, nb))
        size += nb
    shards.append(cur)
    weight_map, total = {}, 0
    for i, shard in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        header, off = {}, 0
        for name, shape, nb in shard:
            dt = "F32" if name.endswith("e_score_correction_bias") else "BF16"
            header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + nb]}
            off += nb
            weight_map[name] = fname
        h = json.dumps(header).encode()
        h += b" " * (-len(h) % 8)
        with open(d / fname, "wb") as f:
            f.write(struct.pack("<Q", len(h)) + h)
            for name, shape, nb in shard:
                left, k = nb, 0
                while left:
                    chunk = pool[(k * 7919) % 1024:].tobytes()[:left]
                    if name.endswith("e_score_correction_bias") or "norm" in name:
                        chunk = (np.ones(nb // 2, np.uint16) * 0x3F80).tobytes()[:left] if "norm" in name else bytes(left)
                    f.write(chunk)
                    left -= len(chunk)
                    k += 1
        total += off
    (d / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))
    cfg = {"model_type": "minimax_m2", "hidden_size": D, "intermediate_size": I, "num_hidden_layers": layers,
           "num_attention_heads": H, "num_key_value_heads": KV, "head_dim": HD, "num_local_experts": experts,
           "num_experts_per_tok": 8, "shared_intermediate_size": 0, "rms_norm_eps": 1e-6, "rope_theta": 5e6,
           "rotary_dim": 64, "vocab_size": V, "max_position_embeddings": 4096, "tie_word_embeddings": False,
           "use_qk_norm": True, "scoring_func": "sigmoid", "torch_dtype": "bfloat16"}
    (d / "config.json").write_text(json.dumps(cfg))
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--experts", type=int, default=32)
    ap.add_argument("--dir", default="/tmp/tqlm-convert-bench")
    ap.add_argument("--tqlm", default=str(ROOT / "build" / "tqlm"))
    a = ap.parse_args()
    base = Path(a.dir)
    shutil.rmtree(base, ignore_errors=True)
    try:
        src_bytes = write_checkpoint(base / "src", a.layers, a.experts)
        t0 = time.time()
        p = subprocess.Popen([a.tqlm, "convert", str(base / "src"), str(base / "dst"), "--policy", "config-i"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        peak = 0
        while p.poll() is None:
            try:
                for line in Path(f"/proc/{p.pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]) * 1024)
            except FileNotFoundError:
                pass
            time.sleep(0.2)
        out, err = p.communicate()
        secs = time.time() - t0
        if p.returncode != 0:
            raise SystemExit(err)
        dst_bytes = sum(f.stat().st_size for f in (base / "dst").glob("*.safetensors"))
        print(f"source {src_bytes / 1e9:.2f} GB ({a.layers} layers x {a.experts} experts, MiniMax-M2 widths) -> "
              f"{dst_bytes / 1e9:.2f} GB under config-i in {secs:.0f} s ({src_bytes / 1e6 / secs:.0f} MB/s read)")
        print(f"peak RSS of tqlm convert: {peak / 2**20:.0f} MiB")
        print(out.strip())
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
