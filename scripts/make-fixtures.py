#!/usr/bin/env python3
"""Tiny random checkpoints written by mlx_lm itself, for every architecture tqlm reads.

    make-fixtures.py OUT_DIR [--arch NAME ...]

For each architecture: OUT/<arch>-bf16 (float weights as mlx_lm saves them), OUT/<arch>-q4 (mlx_lm's
uniform 4-bit group-64 quantization) and OUT/<arch>-mixed (per-module 2/3/4/8 bits and group sizes
32/64/128, recorded as per-module overrides). Deterministic (fixed seeds); re-running skips
fixtures that already exist. MoE architectures also get OUT/<arch>-hf: bf16 weights with the experts
unstacked under HF's names (experts.E.gate_proj / experts.E.w1 ...), which mlx_lm's loader restacks.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
from mlx_lm.utils import _get_classes, quantize_model, save_config, save_model

COMMON = dict(hidden_size=128, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
              rms_norm_eps=1e-5, vocab_size=512, max_position_embeddings=4096)

CONFIGS = {
    "llama": dict(model_type="llama", intermediate_size=256, rope_theta=10000.0, tie_word_embeddings=True),
    "llama-untied": dict(model_type="llama", intermediate_size=256, rope_theta=500000.0,
                         tie_word_embeddings=False, head_dim=64, num_attention_heads=2, num_key_value_heads=1),
    "qwen2": dict(model_type="qwen2", intermediate_size=256, rope_theta=1000000.0, tie_word_embeddings=True),
    "qwen3": dict(model_type="qwen3", intermediate_size=256, rope_theta=1000000.0, head_dim=64,
                  tie_word_embeddings=False),
    "qwen3_moe": dict(model_type="qwen3_moe", intermediate_size=256, num_experts=8, num_experts_per_tok=2,
                      decoder_sparse_step=1, mlp_only_layers=[], moe_intermediate_size=64, head_dim=32,
                      rope_theta=1000000.0, tie_word_embeddings=False, norm_topk_prob=True),
    "mixtral": dict(model_type="mixtral", intermediate_size=128, num_local_experts=4, num_experts_per_tok=2,
                    rope_theta=1000000.0, tie_word_embeddings=False),
    "minimax": dict(model_type="minimax_m2", intermediate_size=64, num_local_experts=8, num_experts_per_tok=2,
                    shared_intermediate_size=0, rope_theta=5000000.0, rotary_dim=16, head_dim=32,
                    num_attention_heads=8, num_key_value_heads=2, scoring_func="sigmoid", use_qk_norm=True,
                    tie_word_embeddings=False, rms_norm_eps=1e-6),
}

MOE_ARCHS = {"qwen3_moe": ("mlp", ["gate_proj", "up_proj", "down_proj"]),
             "mixtral": ("block_sparse_moe", ["w1", "w3", "w2"]),
             "minimax": ("block_sparse_moe", ["w1", "w3", "w2"])}

MIXED_BITS = [2, 3, 4, 8]
MIXED_GROUPS = [32, 64, 128]


def build(arch, seed):
    cfg = dict(COMMON)
    cfg.update(CONFIGS[arch])
    mx.random.seed(seed)
    model_cls, args_cls = _get_classes(cfg)
    model = model_cls(args_cls.from_dict(cfg))
    # Spread the weights a bit more than the default init so that logits are not all near zero.
    params = nn.utils.tree_flatten(model.parameters())
    new = []
    for i, (k, v) in enumerate(params):
        if k.endswith("e_score_correction_bias"):
            v = mx.random.normal(v.shape, key=mx.random.key(seed * 1000 + i)) * 0.1
        elif "norm" in k:
            v = 1.0 + 0.1 * mx.random.normal(v.shape, key=mx.random.key(seed * 1000 + i))
        elif v.ndim >= 2:
            v = mx.random.normal(v.shape, key=mx.random.key(seed * 1000 + i)) * (1.0 / v.shape[-1] ** 0.5)
        # bf16 like real checkpoints; MiniMax keeps its routing bias in f32 (mlx_lm's cast_predicate)
        new.append((k, v.astype(mx.float32 if k.endswith("e_score_correction_bias") else mx.bfloat16)))
    model.update(nn.utils.tree_unflatten(new))
    mx.eval(model.parameters())
    return model, cfg


def mixed_predicate():
    counter = {"i": 0}

    def pred(path, module):
        i = counter["i"]
        counter["i"] += 1
        in_dim = module.weight.shape[-1]
        gs = [g for g in MIXED_GROUPS if in_dim % g == 0]
        return {"bits": MIXED_BITS[i % len(MIXED_BITS)], "group_size": gs[(i // 2) % len(gs)]}

    return pred


def write(out, arch, variant):
    dst = out / f"{arch}-{variant}"
    if (dst / "config.json").exists():
        return
    model, cfg = build(arch, seed=sum(map(ord, arch)))
    if variant == "q4":
        model, cfg = quantize_model(model, cfg, group_size=64, bits=4)
    elif variant == "mixed":
        model, cfg = quantize_model(model, cfg, group_size=64, bits=4, quant_predicate=mixed_predicate())
    tmp = Path(tempfile.mkdtemp(prefix=f".{arch}-{variant}.", dir=out))
    save_model(tmp, model)
    if variant == "hf":  # unstack the experts into HF's per-expert tensor names
        block, hf_names = MOE_ARCHS[arch]
        weights = mx.load(str(tmp / "model.safetensors"))
        split = {}
        for k, v in weights.items():
            if ".switch_mlp." in k:
                prefix, rest = k.split(".switch_mlp.")
                proj = ["gate_proj", "up_proj", "down_proj"].index(rest.split(".")[0])
                for e in range(v.shape[0]):
                    split[f"{prefix}.experts.{e}.{hf_names[proj]}.weight"] = v[e]
            else:
                split[k] = v
        for f in tmp.glob("model*"):
            f.unlink()
        mx.save_safetensors(str(tmp / "model.safetensors"), split)
    save_config(cfg, tmp / "config.json")
    with open(tmp / "generation_config.json", "w") as f:
        json.dump({"eos_token_id": [1, 2], "bos_token_id": 0}, f)
    if dst.exists():
        shutil.rmtree(dst)
    os.rename(tmp, dst)
    print(f"wrote {dst}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--arch", action="append", choices=sorted(CONFIGS), help="default: all")
    ap.add_argument("--variant", action="append", choices=["bf16", "q4", "mixed", "hf"],
                    help="default: all (hf: bf16 with HF per-expert tensors, MoE architectures only)")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for arch in a.arch or sorted(CONFIGS):
        for variant in a.variant or ["bf16", "q4", "mixed", "hf"]:
            if variant != "hf" or arch in MOE_ARCHS:
                write(out, arch, variant)


if __name__ == "__main__":
    sys.exit(main())
