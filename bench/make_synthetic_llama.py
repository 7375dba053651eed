#!/usr/bin/env python3
"""A llama-shaped checkpoint with random weights, quantized by mlx_lm (MLX affine), for speed measurements where
the weights, not per-operation overhead, dominate (a 135M model measures overheads more than bandwidth).

    .venv/bin/python bench/make_synthetic_llama.py /tmp/llama-1b-q4 [--hidden 2048 --layers 16 --inter 5632
        --vocab 32000 --bits 4 --group 32]

The default is about 1.1B parameters (0.6 GB at 4 bits, group 32). No tokenizer: `tqlm bench` uses
pseudo-random token ids unless --data is given."""
import argparse
import json
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
from mlx_lm.utils import _get_classes, quantize_model, save_config, save_model


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--layers", type=int, default=16)
    ap.add_argument("--inter", type=int, default=5632)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--kv-heads", type=int, default=8)
    ap.add_argument("--bits", type=int, default=4)
    ap.add_argument("--group", type=int, default=32)
    a = ap.parse_args()
    cfg = dict(model_type="llama", hidden_size=a.hidden, num_hidden_layers=a.layers, intermediate_size=a.inter,
               num_attention_heads=a.heads, num_key_value_heads=a.kv_heads, rms_norm_eps=1e-5,
               vocab_size=a.vocab, max_position_embeddings=8192, rope_theta=10000.0, tie_word_embeddings=False)
    mx.random.seed(0)
    model_cls, args_cls = _get_classes(cfg)
    model = model_cls(args_cls.from_dict(cfg))
    model.update(nn.utils.tree_map(lambda v: v.astype(mx.bfloat16), model.parameters()))
    mx.eval(model.parameters())
    model, cfg = quantize_model(model, cfg, group_size=a.group, bits=a.bits)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    save_model(out, model)
    save_config(cfg, out / "config.json")
    with open(out / "generation_config.json", "w") as f:
        json.dump({"eos_token_id": [1, 2], "bos_token_id": 0}, f)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
