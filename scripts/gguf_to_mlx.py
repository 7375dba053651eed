#!/usr/bin/env python3
"""Convert a llama-family GGUF (as written by llama.cpp's convert_hf_to_gguf.py) into a standard MLX
checkpoint directory that stock mlx_lm loads: model.safetensors (metadata {"format": "mlx"}),
config.json, generation_config.json, tokenizer.json, tokenizer_config.json, special_tokens_map.json.

Weights are mapped LOSSLESSLY (every stored weight dequantizes to exactly what gguf.quants.dequantize gives):
  Q4_1  (blocks of 32: f16 d, f16 m, 16 nibble bytes; x = d*q + m)  -> MLX affine bits=4 group 32,
        scale = d, bias = m (float16).
  Q8_0  (blocks of 32: f16 d, 32 int8 q; x = d*q)                   -> MLX affine bits=8 group 32,
        stored code u = q + 128, scale = d, bias = -128*d (float16; -128*d is an exact power-of-two
        multiple of an f16, checked to be finite).
  F32 / F16 (norms)                                                  -> float16 when every value is exactly
        representable in f16 (true for SmolLM2's norms), else float32.
  any other GGUF type                                               -> dequantized by the gguf package and
        kept in float (float16 if exact, else float32), no .scales.
llama.cpp's converter permutes the rows of q_proj / k_proj per head (to interleave the two RoPE halves);
we undo that permutation on whole rows (packed words, scales and biases move together, so it stays lossless).

Usage: gguf_to_mlx.py GGUF OUT_DIR   (OUT_DIR must not exist; written via a temp dir + rename)
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

try:
    import gguf
    from gguf import GGMLQuantizationType as QT
except ImportError as e:  # pragma: no cover
    sys.exit(f"gguf_to_mlx: the 'gguf' Python package is required ({e}); run scripts/install-deps.sh")

QK = 32  # block size of Q4_0/Q4_1/Q8_0

GLOBAL_Q = {"group_size": 32, "bits": 4, "mode": "affine"}

# GGUF regex used by llama.cpp for the "gpt2"-style pre-tokenizer core (the HF ByteLevel default regex).
GPT2_REGEX = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
# llama.cpp (src/llama-vocab.cpp) pre-tokenizer regex lists per tokenizer.ggml.pre name; each list entry is
# applied in sequence (later regexes split the pieces of the earlier ones), like an HF Sequence of Splits.
PRE_TOKENIZER_REGEXES = {
    # starcoder / refact / command-r / smollm / codeshell / exaone / minerva: digits split individually first
    "smollm": [r"\p{N}", GPT2_REGEX],
    "starcoder": [r"\p{N}", GPT2_REGEX],
    "refact": [r"\p{N}", GPT2_REGEX],
    "gpt2": [GPT2_REGEX],
    "mpt": [GPT2_REGEX],
    "olmo": [GPT2_REGEX],
}

GGUF_TO_HF = {
    "token_embd": "model.embed_tokens",
    "output_norm": "model.norm",
    "output": "lm_head",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
}


class ConvertError(Exception):
    pass


def hf_name(gguf_name: str) -> str:
    parts = gguf_name.split(".")
    if parts[-1] != "weight":
        raise ConvertError(f"unsupported GGUF tensor {gguf_name!r} (only .weight tensors are known)")
    if parts[0] == "blk":
        if len(parts) != 4 or parts[2] not in GGUF_TO_HF:
            raise ConvertError(f"unsupported GGUF tensor {gguf_name!r}")
        return f"model.layers.{int(parts[1])}.{GGUF_TO_HF[parts[2]]}.weight"
    if len(parts) != 2 or parts[0] not in GGUF_TO_HF:
        raise ConvertError(f"unsupported GGUF tensor {gguf_name!r}")
    return f"{GGUF_TO_HF[parts[0]]}.weight"


# ----------------------------------------------------------------------------------------------------------
# GGUF metadata helpers

def field(reader: "gguf.GGUFReader", key: str, default=None, required: bool = False):
    f = reader.fields.get(key)
    if f is None:
        if required:
            raise ConvertError(f"GGUF metadata key {key!r} is missing")
        return default
    return f.contents()


def f32_shortest(x: float) -> float:
    """Shortest decimal that round-trips to the same float32 (GGUF stores f32: 1e-5 reads as 9.99999974e-06)."""
    return float(str(np.float32(x)))


# ----------------------------------------------------------------------------------------------------------
# Block decoding (our own, checked in the test against gguf.quants.dequantize)

def q4_1_to_mlx(data: np.ndarray, n_in: int):
    """data: uint8 [rows, n_in/32*20] -> (w uint32 [rows, n_in/8], scales f16 [rows, n_in/32], biases f16)."""
    rows = data.shape[0]
    nb = n_in // QK
    blocks = np.ascontiguousarray(data).reshape(rows, nb, 20)
    d = blocks[:, :, 0:2].copy().view(np.float16).reshape(rows, nb)
    m = blocks[:, :, 2:4].copy().view(np.float16).reshape(rows, nb)
    qs = blocks[:, :, 4:20]
    q = np.empty((rows, nb, QK), dtype=np.uint8)
    q[:, :, :16] = qs & 0x0F          # element j < 16: low nibble of byte j
    q[:, :, 16:] = qs >> 4            # element j + 16: high nibble of byte j
    q = q.reshape(rows, n_in)
    # MLX 4-bit: element k at bits [4k, 4k+4) of the row's little-endian stream -> byte b = q[2b] | q[2b+1] << 4
    packed = (q[:, 0::2] | (q[:, 1::2] << 4)).astype(np.uint8)
    w = np.ascontiguousarray(packed).view("<u4").reshape(rows, n_in // 8)
    return w, d, m


def q8_0_to_mlx(data: np.ndarray, n_in: int):
    """data: uint8 [rows, n_in/32*34] -> (w uint32 [rows, n_in/4], scales f16, biases f16 = -128*d)."""
    rows = data.shape[0]
    nb = n_in // QK
    blocks = np.ascontiguousarray(data).reshape(rows, nb, 34)
    d = blocks[:, :, 0:2].copy().view(np.float16).reshape(rows, nb)
    q = blocks[:, :, 2:34].copy().view(np.int8).reshape(rows, n_in)
    u = (q.astype(np.int16) + 128).astype(np.uint8)  # 0..255
    w = np.ascontiguousarray(u).view("<u4").reshape(rows, n_in // 4)
    b = (d.astype(np.float32) * np.float32(-128.0)).astype(np.float16)
    if not np.all(np.isfinite(b)) or not np.array_equal(b.astype(np.float32), d.astype(np.float32) * -128.0):
        raise ConvertError("Q8_0 bias -128*d is not exactly representable in float16")
    return w, d, b


def float_exact(a: np.ndarray) -> np.ndarray:
    a32 = np.asarray(a, dtype=np.float32)
    h = a32.astype(np.float16)
    if np.array_equal(h.astype(np.float32), a32, equal_nan=True):
        return h
    return a32


# ----------------------------------------------------------------------------------------------------------
# RoPE row permutation

def unpermute_rows_index(n_rows: int, n_head: int) -> np.ndarray:
    """Index p with W_hf[r] = W_gguf[p[r]].

    llama.cpp's converter writes W_gguf = W_hf.reshape(n_head, 2, hd/2, ...).swapaxes(1, 2).reshape(...), i.e.
    within each head, HF row a*hd/2 + i (a in {0,1}: first/second RoPE half) goes to GGUF row 2*i + a."""
    if n_rows % n_head or (n_rows // n_head) % 2:
        raise ConvertError(f"cannot un-permute {n_rows} rows over {n_head} heads")
    hd = n_rows // n_head
    idx = np.arange(n_rows).reshape(n_head, hd // 2, 2)  # GGUF row ids grouped as (head, i, a)
    return idx.transpose(0, 2, 1).reshape(n_rows)        # HF order (head, a, i)


def permute_rows_index(n_rows: int, n_head: int) -> np.ndarray:
    """Index p with W_gguf[r] = W_hf[p[r]] (what llama.cpp's converter did); inverse of the above."""
    inv = unpermute_rows_index(n_rows, n_head)
    p = np.empty_like(inv)
    p[inv] = np.arange(n_rows)
    return p


# ----------------------------------------------------------------------------------------------------------

def convert_tensors(reader, n_head: int, n_head_kv: int, log=print):
    """Returns (tensors dict name->np array, per-module quantization overrides, inventory)."""
    out: dict[str, np.ndarray] = {}
    overrides: dict[str, dict] = {}
    inventory: dict[str, int] = {}
    for t in reader.tensors:
        name = hf_name(t.name)
        module = name[: -len(".weight")]
        qt = t.tensor_type
        inventory[qt.name] = inventory.get(qt.name, 0) + 1
        ne = [int(x) for x in t.shape]  # GGUF order: ne[0] = input (fastest) dim
        data = np.asarray(t.data)
        perm = None
        if name.endswith("self_attn.q_proj.weight"):
            perm = unpermute_rows_index(ne[1], n_head)
        elif name.endswith("self_attn.k_proj.weight"):
            perm = unpermute_rows_index(ne[1], n_head_kv)
        if qt in (QT.Q4_1, QT.Q8_0):
            if len(ne) != 2 or ne[0] % QK:
                raise ConvertError(f"{t.name}: unexpected shape {ne} for {qt.name}")
            if qt == QT.Q4_1:
                w, s, b = q4_1_to_mlx(data, ne[0])
                bits = 4
            else:
                w, s, b = q8_0_to_mlx(data, ne[0])
                bits = 8
            if perm is not None:
                w, s, b = w[perm], s[perm], b[perm]
            out[name] = np.ascontiguousarray(w)
            out[module + ".scales"] = np.ascontiguousarray(s)
            out[module + ".biases"] = np.ascontiguousarray(b)
            if bits != GLOBAL_Q["bits"] or QK != GLOBAL_Q["group_size"]:
                overrides[module] = {"group_size": QK, "bits": bits, "mode": "affine"}
        else:
            if qt in (QT.F32, QT.F16):
                a = data.astype(np.float32).reshape(list(reversed(ne)))
            else:
                a = gguf.quants.dequantize(data, qt).astype(np.float32).reshape(list(reversed(ne)))
            if perm is not None:
                a = a[perm]
            a = float_exact(a)
            out[name] = np.ascontiguousarray(a)
            if len(ne) >= 2:
                overrides[module] = False  # a matrix kept in float: tell mlx_lm not to quantize it
            if qt not in (QT.F32, QT.F16):
                log(f"  note: {t.name} ({qt.name}) has no exact MLX affine form; stored as {a.dtype}")
    return out, overrides, inventory


def build_tokenizer(reader):
    model = field(reader, "tokenizer.ggml.model", required=True)
    if model != "gpt2":
        raise ConvertError(f"tokenizer.ggml.model {model!r} is not supported (only byte-level BPE 'gpt2')")
    pre = field(reader, "tokenizer.ggml.pre", "default")
    if pre not in PRE_TOKENIZER_REGEXES:
        raise ConvertError(f"tokenizer.ggml.pre {pre!r}: unknown pre-tokenizer (known: {sorted(PRE_TOKENIZER_REGEXES)})")
    tokens = field(reader, "tokenizer.ggml.tokens", required=True)
    types = field(reader, "tokenizer.ggml.token_type", required=True)
    merges = field(reader, "tokenizer.ggml.merges", required=True)
    if len(types) != len(tokens):
        raise ConvertError("token_type and tokens differ in length")
    vocab = {}
    for i, tok in enumerate(tokens):
        if tok in vocab:
            raise ConvertError(f"duplicate token {tok!r} at ids {vocab[tok]} and {i}")
        vocab[tok] = i
    pairs = []
    for mrg in merges:
        a, sep, b = mrg.partition(" ")
        if not sep or not a or not b:
            raise ConvertError(f"malformed merge {mrg!r}")
        pairs.append([a, b])
    added = []
    # llama.cpp token types: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte
    for i, ty in enumerate(types):
        ty = int(ty)
        if ty in (2, 3, 4):
            added.append({"id": i, "content": tokens[i], "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": ty in (2, 3)})
        elif ty not in (1,):
            raise ConvertError(f"token {i} {tokens[i]!r} has unsupported type {ty}")
    pretoks = [{"type": "Split", "pattern": {"Regex": rx}, "behavior": "Isolated", "invert": False}
               for rx in PRE_TOKENIZER_REGEXES[pre]]
    pretoks.append({"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False})
    add_bos = bool(field(reader, "tokenizer.ggml.add_bos_token", False))
    add_eos = bool(field(reader, "tokenizer.ggml.add_eos_token", False))
    bos_id = field(reader, "tokenizer.ggml.bos_token_id")
    eos_id = field(reader, "tokenizer.ggml.eos_token_id")
    post = None
    if add_bos or add_eos:
        single, special = [], {}
        if add_bos:
            single.append({"SpecialToken": {"id": tokens[bos_id], "type_id": 0}})
            special[tokens[bos_id]] = {"id": tokens[bos_id], "ids": [bos_id], "tokens": [tokens[bos_id]]}
        single.append({"Sequence": {"id": "A", "type_id": 0}})
        if add_eos:
            single.append({"SpecialToken": {"id": tokens[eos_id], "type_id": 0}})
            special[tokens[eos_id]] = {"id": tokens[eos_id], "ids": [eos_id], "tokens": [tokens[eos_id]]}
        post = {"type": "TemplateProcessing", "single": single, "pair": single + [{"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": special}
    tok_json = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": pretoks},
        "post_processor": post,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": pairs},
    }
    return tok_json, tokens, added, add_bos, add_eos


def convert(gguf_path: Path, out_dir: Path, log=print) -> None:
    reader = gguf.GGUFReader(str(gguf_path))
    arch = field(reader, "general.architecture", required=True)
    if arch != "llama":
        raise ConvertError(f"general.architecture {arch!r}: only 'llama' is supported")
    A = lambda k, **kw: field(reader, f"{arch}.{k}", **kw)  # noqa: E731
    hidden = int(A("embedding_length", required=True))
    n_layers = int(A("block_count", required=True))
    n_ff = int(A("feed_forward_length", required=True))
    n_head = int(A("attention.head_count", required=True))
    n_head_kv = int(A("attention.head_count_kv", default=n_head))
    eps = float(A("attention.layer_norm_rms_epsilon", required=True))
    rope_theta = float(A("rope.freq_base", default=10000.0))
    ctx = int(A("context_length", required=True))
    head_dim = int(A("attention.key_length", default=hidden // n_head))
    rope_dim = int(A("rope.dimension_count", default=head_dim))
    if rope_dim != head_dim:
        raise ConvertError(f"partial rotary (rope dim {rope_dim} != head dim {head_dim}) is not supported")
    if A("rope.scaling.type") not in (None, "none"):
        raise ConvertError("RoPE scaling in the GGUF is not supported by this converter")

    tok_json, tokens, added, add_bos, add_eos = build_tokenizer(reader)
    vocab_size = int(A("vocab_size", default=len(tokens)))
    bos_id = field(reader, "tokenizer.ggml.bos_token_id")
    eos_id = field(reader, "tokenizer.ggml.eos_token_id")
    unk_id = field(reader, "tokenizer.ggml.unknown_token_id")
    pad_id = field(reader, "tokenizer.ggml.padding_token_id")

    tensors, overrides, inventory = convert_tensors(reader, n_head, n_head_kv, log)
    tied = "lm_head.weight" not in tensors
    if tensors["model.embed_tokens.weight"].shape[0] != vocab_size:
        raise ConvertError("token_embd rows != vocab size")
    expected = {"model.embed_tokens.weight", "model.norm.weight"}
    for i in range(n_layers):
        for k in ("q_proj", "k_proj", "v_proj", "o_proj"):
            expected.add(f"model.layers.{i}.self_attn.{k}.weight")
        for k in ("gate_proj", "up_proj", "down_proj"):
            expected.add(f"model.layers.{i}.mlp.{k}.weight")
        expected.add(f"model.layers.{i}.input_layernorm.weight")
        expected.add(f"model.layers.{i}.post_attention_layernorm.weight")
    missing = expected - set(tensors)
    if missing:
        raise ConvertError(f"GGUF lacks tensors: {sorted(missing)[:5]}...")

    quant = dict(GLOBAL_Q)
    quant.update(overrides)
    dtype_name = "float16"
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": hidden,
        "num_hidden_layers": n_layers,
        "intermediate_size": n_ff,
        "num_attention_heads": n_head,
        "num_key_value_heads": n_head_kv,
        "head_dim": head_dim,
        "hidden_act": "silu",
        "rms_norm_eps": f32_shortest(eps),
        "rope_theta": rope_theta,
        "rope_scaling": None,
        "rope_traditional": False,
        "attention_bias": False,
        "mlp_bias": False,
        "max_position_embeddings": ctx,
        "vocab_size": vocab_size,
        "tie_word_embeddings": tied,
        "bos_token_id": bos_id,
        "eos_token_id": eos_id,
        "pad_token_id": pad_id,
        "torch_dtype": dtype_name,
        "quantization": quant,
        "quantization_config": dict(quant),
    }
    gen_config = {"bos_token_id": bos_id, "eos_token_id": eos_id}
    if pad_id is not None:
        gen_config["pad_token_id"] = pad_id

    def tokspec(i):
        return None if i is None else tokens[i]

    special = [a for a in added if a["special"]]
    named = {tokspec(bos_id), tokspec(eos_id), tokspec(unk_id), tokspec(pad_id)}
    extra = [a["content"] for a in special if a["content"] not in named]
    tok_config = {
        "add_bos_token": add_bos,
        "add_eos_token": add_eos,
        "add_prefix_space": False,
        "added_tokens_decoder": {str(a["id"]): {k: a[k] for k in ("content", "lstrip", "normalized", "rstrip",
                                                                    "single_word", "special")} for a in added},
        "additional_special_tokens": extra,
        "bos_token": tokspec(bos_id),
        "eos_token": tokspec(eos_id),
        "unk_token": tokspec(unk_id),
        "pad_token": tokspec(pad_id),
        "clean_up_tokenization_spaces": False,
        "model_max_length": ctx,
        "tokenizer_class": "PreTrainedTokenizerFast",  # loads tokenizer.json as-is (transformers 5 rebuilds GPT2Tokenizer's pre-tokenizer)
        "vocab_size": len(tokens),
    }
    tmpl = field(reader, "tokenizer.chat_template")
    if tmpl:
        tok_config["chat_template"] = tmpl
    stm = {}
    for key, i in (("bos_token", bos_id), ("eos_token", eos_id), ("unk_token", unk_id), ("pad_token", pad_id)):
        if i is not None:
            stm[key] = {"content": tokens[i], "lstrip": False, "normalized": False, "rstrip": False,
                        "single_word": False}
    stm["additional_special_tokens"] = extra

    # ---- write everything into a temp dir next to out_dir, then rename (atomic on one filesystem)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    os.chmod(tmp, 0o755)
    try:
        import mlx.core as mx
        names = sorted(tensors)
        mx.save_safetensors(str(tmp / "model.safetensors"), {k: mx.array(tensors[k]) for k in names},
                            metadata={"format": "mlx"})
        total_size = sum(tensors[k].nbytes for k in names)
        n_params = 0
        for k in names:
            a = tensors[k]
            if k.endswith(".scales") or k.endswith(".biases"):
                continue
            mod = k.rsplit(".", 1)[0]
            if a.dtype == np.uint32:
                n_params += a.size * 32 // quant.get(mod, GLOBAL_Q)["bits"]
            else:
                n_params += a.size
        index = {"metadata": {"total_size": total_size, "total_parameters": n_params},
                 "weight_map": {k: "model.safetensors" for k in names}}
        dump = lambda obj, fn: (tmp / fn).write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n",  # noqa: E731
                                                      encoding="utf-8")
        dump(index, "model.safetensors.index.json")
        dump(config, "config.json")
        dump(gen_config, "generation_config.json")
        dump(tok_config, "tokenizer_config.json")
        dump(stm, "special_tokens_map.json")
        (tmp / "tokenizer.json").write_text(json.dumps(tok_json, ensure_ascii=False), encoding="utf-8")
        sha = hashlib.sha256()
        with open(gguf_path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                sha.update(chunk)
        inv = ", ".join(f"{k}: {v}" for k, v in sorted(inventory.items()))
        (tmp / "README.md").write_text(
            f"# {field(reader, 'general.name', 'model')} (MLX, converted losslessly from GGUF)\n\n"
            f"Source: `{gguf_path.name}` (sha256 `{sha.hexdigest()}`), converted by `scripts/gguf_to_mlx.py`.\n\n"
            f"GGUF tensor types: {inv}. Q4_1 -> MLX affine 4-bit group 32 (scale=d, bias=m); "
            f"Q8_0 -> MLX affine 8-bit group 32 (scale=d, bias=-128*d); F32 norms -> float16 (exact).\n"
            f"q_proj/k_proj rows un-permuted (llama.cpp RoPE interleave undone). License: "
            f"{field(reader, 'general.license', 'see source')}.\n", encoding="utf-8")
        if out_dir.exists():
            raise ConvertError(f"{out_dir} appeared while converting; not overwriting it")
        os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"gguf_to_mlx: wrote {out_dir} ({len(names)} tensors; GGUF types {inv}; tied={tied})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("gguf", type=Path)
    ap.add_argument("out_dir", type=Path)
    args = ap.parse_args(argv)
    if not args.gguf.is_file():
        print(f"gguf_to_mlx: error: GGUF file {args.gguf} not found", file=sys.stderr)
        return 2
    if args.out_dir.exists():
        print(f"gguf_to_mlx: error: output directory {args.out_dir} already exists", file=sys.stderr)
        return 2
    try:
        convert(args.gguf, args.out_dir)
    except ConvertError as e:
        print(f"gguf_to_mlx: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
