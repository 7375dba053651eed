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


def tokenize(path: str, text: bytes, special: bool) -> list[int]:
    return _model(path, vocab_only=True).tokenize(text, add_bos=False, special=special)


def crash_for_test(how: str = "segv") -> None:
    """Used by test_isolation.py only: dies the way a native library would."""
    import ctypes
    import signal
    if how == "segv":
        ctypes.string_at(0)  # reads address 0: SIGSEGV
    os.kill(os.getpid(), getattr(signal, how))
