#!/usr/bin/env python3
"""Seed corpora for the libFuzzer targets: writes OUT/corpus_NAME/ for each target of `make fuzz`, from
small generated inputs, tests/fixtures and (when present) the default model's files, so each fuzzer starts
from inputs that reach deep into its parser. Committed inputs (tests/fuzz/corpus_NAME/: extra seeds and
every past crash) are passed to the fuzzers separately by run_fuzz.sh."""
import json
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "hostile"))
from make_cases import byte_level_tokenizer  # noqa: E402


def image(tensors, metadata=None):
    header, data, off = {}, b"", 0
    if metadata:
        header["__metadata__"] = metadata
    for name, (dtype, shape, payload) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(payload)]}
        data += payload
        off += len(payload)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def safetensors_seeds():
    return {
        "one_f32": image({"a": ("F32", [2], b"\0" * 8)}),
        "mlx_q": image({"w.weight": ("U32", [2, 1], b"\1" * 8), "w.scales": ("BF16", [2, 1], b"\2" * 4),
                        "w.biases": ("BF16", [2, 1], b"\3" * 4)}, {"format": "mlx"}),
        "fp8": image({"w": ("F8_E4M3", [2, 2], b"\x38" * 4), "w_scale_inv": ("F32", [1, 1], b"\0\0\x80\x3f")}),
        "mixed": image({"b": ("BOOL", [3], b"\1\0\1"), "e": ("I64", [0, 4], b""), "s": ("F16", [], b"\0\x3c"),
                        "i8": ("I8", [1], b"\x7f"), "u8": ("U8", [1], b"\x01"), "f64": ("F64", [1], b"\0" * 8)}),
        "index": json.dumps({"metadata": {"total_size": 8},
                             "weight_map": {"a": "model-00001-of-00002.safetensors",
                                            "b": "model-00002-of-00002.safetensors"}}).encode(),
    }


def jinja_seeds():
    return {p.name: p.read_bytes() for p in sorted((ROOT / "tests/fixtures/templates").glob("*.jinja"))}


def config_seeds():
    base = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "intermediate_size": 128, "vocab_size": 300, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
            "max_position_embeddings": 512, "tie_word_embeddings": True}
    seeds = {
        "llama": dict(base, model_type="llama"),
        "llama3_rope": dict(base, model_type="llama", rope_scaling={
            "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 256}),
        "qwen2_q4": dict(base, model_type="qwen2", quantization={
            "group_size": 32, "bits": 4, "mode": "affine",
            "model.embed_tokens": {"group_size": 64, "bits": 8}, "lm_head": False}),
        "qwen3_linear": dict(base, model_type="qwen3", head_dim=32, rope_scaling={"type": "linear", "factor": 2.0}),
        "qwen3_moe": dict(base, model_type="qwen3_moe", num_experts=8, num_experts_per_tok=2,
                          moe_intermediate_size=32, decoder_sparse_step=1, mlp_only_layers=[0],
                          norm_topk_prob=True),
        "mixtral": dict(base, model_type="mixtral", num_local_experts=4, num_experts_per_tok=2),
        "minimax_small": dict(base, model_type="minimax_m2", head_dim=16, rotary_dim=8, num_local_experts=4,
                              num_experts_per_tok=2, use_qk_norm=True, scoring_func="sigmoid",
                              use_routing_bias=True, partial_rotary_factor=0.5,
                              quantization_config={"group_size": 64, "bits": 4}),
        "no_maxpos": {k: v for k, v in dict(base, model_type="llama").items() if k != "max_position_embeddings"},
    }
    out = {k: json.dumps(v, indent=1).encode() for k, v in seeds.items()}
    for p in [ROOT / "tests/fixtures/configs/minimax-m2.json", *sorted((ROOT / "models").glob("*/config.json"))]:
        if p.is_file():
            out["file_" + p.parent.name + "_" + p.name] = p.read_bytes()
    return out


def tokenizer_seeds():
    vocab = dict(byte_level_tokenizer()["model"]["vocab"])  # the 256 byte symbols
    merges = []
    for a, b in [("h", "e"), ("l", "l"), ("he", "ll"), ("Ġ", "t"), ("Ġt", "he"), ("i", "n"), ("Ġ", "a")]:
        vocab.setdefault(a + b, len(vocab))
        merges.append(f"{a} {b}")
    added = [{"id": len(vocab) + i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, t in enumerate(["<|im_start|>", "<|im_end|>", "<s>"])]
    added.append({"id": len(vocab) + 3, "content": " hello", "normalized": True, "special": False,
                  "lstrip": True, "rstrip": True, "single_word": True})
    bytelevel = {"version": "1.0", "added_tokens": added, "normalizer": None,
                 "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                                   "use_regex": True},
                 "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False},
                 "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
                 "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                           "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                           "ignore_merges": False, "vocab": vocab, "merges": merges}}
    llama3 = json.loads(json.dumps(bytelevel))
    llama3["model"]["ignore_merges"] = True
    llama3["model"]["merges"] = [m.split(" ") for m in merges]
    llama3["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
         "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}
    llama3["post_processor"] = {"type": "TemplateProcessing",
                                "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                           {"Sequence": {"id": "A", "type_id": 0}}],
                                "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                                "special_tokens": {"<s>": {"id": "<s>", "ids": [added[2]["id"]], "tokens": ["<s>"]}}}
    # SentencePiece style: Metaspace/Prepend+Replace, byte fallback tokens, unk.
    sp_vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        sp_vocab[f"<0x{b:02X}>"] = len(sp_vocab)
    sp_merges = []
    for a, b in [("▁", "t"), ("h", "e"), ("▁t", "he"), ("▁", "a"), ("a", "b")]:
        for t in (a, b):
            sp_vocab.setdefault(t, len(sp_vocab))
        sp_vocab.setdefault(a + b, len(sp_vocab))
        sp_merges.append(f"{a} {b}")
    sp = {"added_tokens": [{"id": 0, "content": "<unk>", "special": True}, {"id": 1, "content": "<s>", "special": True},
                           {"id": 2, "content": "</s>", "special": True}],
          "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"},
                                                             {"type": "Replace", "pattern": {"String": " "},
                                                              "content": "▁"}]},
          "pre_tokenizer": None,
          "post_processor": {"type": "TemplateProcessing",
                             "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                        {"Sequence": {"id": "A", "type_id": 0}}],
                             "pair": [], "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
          "decoder": {"type": "Sequence", "decoders": [
              {"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"},
              {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
          "model": {"type": "BPE", "unk_token": "<unk>", "byte_fallback": True, "fuse_unk": True,
                    "vocab": sp_vocab, "merges": sp_merges}}
    meta = json.loads(json.dumps(sp))
    meta["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Strip"},
                                                              {"type": "Replace", "pattern": {"Regex": "\\s+"},
                                                               "content": " "}]}
    meta["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True}, {"type": "WhitespaceSplit"},
        {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": True}]}
    meta["decoder"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": True}
    meta["post_processor"] = {"type": "Sequence", "processors": [
        {"type": "BertProcessing", "sep": ["</s>", 2], "cls": ["<s>", 1]}]}
    out = {}
    for name, j in [("bytelevel", bytelevel), ("llama3", llama3), ("sentencepiece", sp), ("metaspace", meta)]:
        text = json.dumps(j, ensure_ascii=False).encode()
        out[name] = text
        out[name + "_text"] = text + b"\0" + "Hello the tab\there 123 ünï 😀<|im_start|>x<s>".encode()
    return out


def policy_seeds():
    return {k: json.dumps(v).encode() for k, v in {
        "default": {"name": "p", "default": {"bits": 4, "group_size": 64}},
        "rules": {"name": "mixed", "default": {"bits": 4, "group_size": 64},
                  "rules": [{"roles": ["router"], "keep": "f16"}, {"layers": "first:2", "bits": 8},
                            {"layers": ["last:1", "3-7"], "roles": "attn_v", "bits": 6, "group_size": 32},
                            {"roles": ["expert_gate", "expert_up"], "bits": 2, "group_size": 128},
                            {"layers": "global", "keep": "bf16"}, {"layers": "all", "bits": 3}]},
        "keep_f32": {"rules": [{"roles": ["embed", "lm_head"], "keep": "f32"}]},
    }.items()}


def request_seeds():
    chat = {"model": "fuzz", "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi <think>"},
        {"role": "assistant", "content": "Hello!", "reasoning_content": "greet",
         "tool_calls": [{"type": "function", "function": {"name": "get", "arguments": {"q": "x"}}}]},
        {"role": "tool", "content": "{\"ok\": true}"},
        {"role": "user", "content": [{"type": "text", "text": "part 1"}, {"type": "text", "text": " part 2"}]}],
        "temperature": 0.7, "top_p": 0.9, "top_k": 40, "min_p": 0.05, "max_tokens": 16, "stream": True,
        "stream_options": {"include_usage": True}, "stop": ["\n\n", "END"], "seed": 42, "logprobs": True,
        "top_logprobs": 3, "presence_penalty": 0.5, "frequency_penalty": -0.5, "repetition_penalty": 1.1,
        "chat_template_kwargs": {"enable_thinking": False}, "n": 1, "ignore_eos": False,
        "tools": [{"type": "function", "function": {"name": "get", "description": "d",
                                                    "parameters": {"type": "object",
                                                                   "properties": {"q": {"type": "string"}}}}}],
        "tool_choice": "auto"}
    simple = {"messages": [{"role": "developer", "content": "x"}, {"role": "user", "content": None}],
              "max_completion_tokens": 4}
    comp = {"prompt": "Once upon a time", "max_tokens": 8, "logprobs": 2, "stop": "\n"}
    ids = {"prompt": [1, 2, 3, 264], "temperature": 0}
    out = {}
    for sel in range(8):
        body = chat if sel & 1 else comp
        out[f"sel{sel}"] = bytes([sel]) + json.dumps(body).encode()
    out["simple"] = b"\x03" + json.dumps(simple).encode()
    out["ids"] = b"\x00" + json.dumps(ids).encode()
    out["list_prompt"] = b"\x00" + json.dumps({"prompt": ["one string"]}).encode()
    return out


def main():
    out = Path(sys.argv[1])
    for name, seeds in [("safetensors", safetensors_seeds()), ("jinja", jinja_seeds()), ("config", config_seeds()),
                        ("tokenizer", tokenizer_seeds()), ("policy", policy_seeds()), ("request", request_seeds())]:
        d = out / f"corpus_{name}"
        d.mkdir(parents=True, exist_ok=True)
        for seed, blob in seeds.items():
            (d / f"seed_{seed}").write_bytes(blob)


if __name__ == "__main__":
    main()
