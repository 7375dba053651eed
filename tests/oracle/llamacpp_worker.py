"""The llama.cpp side of the oracle tests, run inside a child process by isolation.IsolatedLibrary: importing
llama_cpp and every call into it happen here, never in the pytest process. Models stay loaded between calls
(keyed by path and options)."""
from __future__ import annotations

import os

import llama_cpp
import numpy as np

N_THREADS = os.cpu_count() or 2
_models: dict = {}


def _model(path: str, n_ctx: int = 0, vocab_only: bool = False, logits_all: bool = True):
    key = (path, n_ctx, vocab_only, logits_all)
    if key not in _models:
        if vocab_only:
            _models[key] = llama_cpp.Llama(path, vocab_only=True, verbose=False)
        else:  # f32 KV cache, every position's logits kept (or only the last one's)
            _models[key] = llama_cpp.Llama(path, n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx, logits_all=logits_all,
                                           type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32,
                                           n_threads=N_THREADS, n_threads_batch=N_THREADS, seed=0,
                                           verbose=False)
    return _models[key]


def version() -> str:
    return llama_cpp.__version__


def logits(path: str, n_ctx: int, ids: list[int]) -> np.ndarray:
    """[len(ids), vocab] f32: the logits after every token of one evaluation from an empty cache."""
    llm = _model(path, n_ctx)
    llm.reset()
    llm.eval(list(ids))
    return np.array(llm.scores[: len(ids)], dtype=np.float32)


def greedy(path: str, n_ctx: int, prompt: list[int], n: int) -> list[int]:
    """n greedy tokens after the prompt, one decode step at a time."""
    llm = _model(path, n_ctx)
    llm.reset()
    llm.eval(list(prompt))
    out = []
    for _ in range(n):
        nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        out.append(nxt)
        llm.eval([nxt])
    return out


def next_token_logprobs(path: str, n_ctx: int, prompts: list[list[int]], ids: list[int]) -> list[list[float]]:
    """For each prompt, the log-probabilities (log-softmax over the whole vocabulary, f64) of `ids` at the
    position after it. A prompt's common prefix with the previous one is kept in the KV cache."""
    llm = _model(path, n_ctx, logits_all=False)  # the head runs on the last position only
    llm.reset()
    vocab = llm.n_vocab()
    out = []
    for p in prompts:
        prev = llm.input_ids[: llm.n_tokens].tolist()
        common = 0
        while common < min(len(prev), len(p) - 1) and prev[common] == p[common]:
            common += 1
        llm.n_tokens = common
        llm.eval(list(p[common:]))
        row = np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(vocab,)).astype(np.float64)
        lse = row.max() + np.log(np.exp(row - row.max()).sum())
        out.append([float(row[i] - lse) for i in ids])
    return out


KV_TYPES = {"f32": llama_cpp.GGML_TYPE_F32, "f16": llama_cpp.GGML_TYPE_F16, "q8_0": llama_cpp.GGML_TYPE_Q8_0,
            "q5_1": llama_cpp.GGML_TYPE_Q5_1, "q5_0": llama_cpp.GGML_TYPE_Q5_0, "q4_1": llama_cpp.GGML_TYPE_Q4_1,
            "q4_0": llama_cpp.GGML_TYPE_Q4_0}
TOP_K = 64  # as tqlm perplexity --kl-base: the reference's top 64 tokens and the rest of the mass as one bucket


def window_kv_stats(path: str, n_ctx: int, ids: list[int], type_k: str, type_v: str, ref=None) -> dict:
    """One perplexity window (an empty cache, no BOS, the ids as given) with llama.cpp's KV cache types type_k /
    type_v and flash attention on. Returns the NLL of each next-token prediction and, per prediction, the top-64
    (ids, log-probabilities) plus the log of the remaining mass; with `ref` (such a result from the reference
    cache), also KL(ref || this) over the reference's 64 + 1 buckets and whether the argmax agrees."""
    key = ("kv", path, n_ctx, type_k, type_v)
    if key not in _models:
        _models.clear()  # one model at a time: a 2048 x vocab logit buffer each
        _models[key] = llama_cpp.Llama(path, n_ctx=n_ctx, n_batch=512, n_ubatch=512, logits_all=True,
                                       type_k=KV_TYPES[type_k], type_v=KV_TYPES[type_v], flash_attn=True,
                                       n_threads=N_THREADS, n_threads_batch=N_THREADS, seed=0, verbose=False)
    llm = _models[key]
    llm.reset()
    llm.eval(list(ids))
    n = len(ids) - 1
    nll, top_ids, top_lp, rest, kl, agree = [], [], [], [], [], []
    for r0 in range(0, n, 256):  # log-softmax in f64, 256 rows at a time
        x = np.array(llm.scores[r0:min(n, r0 + 256)], dtype=np.float64)
        x -= x.max(axis=1, keepdims=True)
        x -= np.log(np.exp(x).sum(axis=1, keepdims=True))
        rows = np.arange(x.shape[0])
        nll += (-x[rows, np.array(ids[r0 + 1:r0 + 1 + x.shape[0]])]).tolist()
        if ref is None:
            idx = np.argsort(-x, axis=1)[:, :TOP_K]
            lp = np.take_along_axis(x, idx, axis=1)
            top_ids.append(idx.astype(np.int32))
            top_lp.append(lp)
            rest.append(np.log(np.maximum(1e-300, 1 - np.exp(lp).sum(axis=1))))
        else:
            ridx, rlp = ref["top_ids"][r0:r0 + x.shape[0]], ref["top_lp"][r0:r0 + x.shape[0]]
            rrest = ref["rest"][r0:r0 + x.shape[0]]
            q = np.take_along_axis(x, ridx, axis=1)
            qrest = np.log(np.maximum(1e-300, 1 - np.exp(q).sum(axis=1)))
            k = (np.exp(rlp) * (rlp - q)).sum(axis=1) + np.exp(rrest) * (rrest - qrest)
            kl += np.maximum(0.0, k).tolist()
            agree += (x.argmax(axis=1) == ridx[:, 0]).tolist()
    out = {"nll": nll}
    if ref is None:
        out.update(top_ids=np.concatenate(top_ids), top_lp=np.concatenate(top_lp), rest=np.concatenate(rest))
    else:
        out.update(kl=kl, agree=agree)
    return out


def tokenize(path: str, text: bytes, special: bool) -> list[int]:
    return _model(path, vocab_only=True).tokenize(text, add_bos=False, special=special)


def crash_for_test(how: str = "segv") -> None:
    """Used by test_isolation.py only: dies the way a native library would."""
    import ctypes
    import signal
    if how == "segv":
        ctypes.string_at(0)  # reads address 0: SIGSEGV
    os.kill(os.getpid(), getattr(signal, how))
