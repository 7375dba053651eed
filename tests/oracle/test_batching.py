"""Many sequences at once (runtime/scheduler.h) on every architecture fixture: greedy tokens and the logits they
were sampled from are bit-identical whether a sequence runs alone, batched with others (prefill chunks of some
mixed with decode tokens of others, in different chunk sizes), preempted and recomputed under a tight KV pool,
or started from a prefix reused from the prefix cache (whole shared blocks and a partly matched block copied)."""
import ctypes

import numpy as np
import pytest

from conftest import check
from fixtures import ARCHS, fixture_dir
from test_model_parity import Tqlm

P = lambda a: a.ctypes.data_as(ctypes.c_void_p)  # noqa: E731
MAX_NEW = 12


def run(t, prompts, max_seqs=1, step_tokens=512, kv_mem=0, reuse=False, sequential=False, cancel=(-1, 0),
        state=None):
    lib = t.lib
    lib.tqlm_sched_greedy.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                                      ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int, ctypes.c_int,
                                      ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                      ctypes.c_void_p, ctypes.c_void_p]
    flat = np.ascontiguousarray(np.concatenate(prompts), np.int32)
    offs = np.ascontiguousarray(np.cumsum([0] + [len(p) for p in prompts]), np.int64)
    n = len(prompts)
    toks = np.full((n, MAX_NEW), -1, np.int32)
    logits = np.zeros((n, MAX_NEW, t.vocab), np.float32)
    cached = np.zeros(n, np.int64)
    pre = np.zeros(n, np.int64)
    st = np.zeros(2, np.int64) if state is None else state
    check(lib, lib.tqlm_sched_greedy(t.h, P(flat), P(offs), n, MAX_NEW, max_seqs, step_tokens, kv_mem, int(reuse),
                                     int(sequential), cancel[0], cancel[1], P(toks), P(logits), P(cached), P(pre),
                                     P(st)))
    assert st[0] == 0, f"{st[0]} KV blocks still referenced after every sequence ended"
    return toks, logits, cached, pre


def prompts_for(vocab, lengths, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(5, vocab - 5, size=n).astype(np.int32) for n in lengths]


def alone(t, prompts):
    outs = [run(t, [p]) for p in prompts]
    return np.concatenate([o[0] for o in outs]), np.concatenate([o[1] for o in outs])


MODES = ["bf16", "f16", "q8", "turbo2", "turbo3", "turbo4", "turbo8", "turbo4v2", "turbo2v4", "turbo8v3"]


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("mode", MODES)
def test_batched_equals_alone(testapi, arch, mode):
    # every mode on the f32 linear path (the reference); the default int8 path in the test below, 3 modes
    t = Tqlm(testapi, fixture_dir(arch, "q4" if arch != "minimax" else "mixed"), mode, kv_boundary=1,
             linear="f32")
    try:
        prompts = prompts_for(t.vocab, [300, 37, 520, 5, 129])
        tok1, lg1 = alone(t, prompts)
        for max_seqs, step in ((5, 512), (3, 64), (5, 7)):  # chunk sizes and mixes differ in each run
            tok, lg, _, _ = run(t, prompts, max_seqs=max_seqs, step_tokens=step)
            assert np.array_equal(tok, tok1), f"{arch} {mode} max_seqs {max_seqs} step {step}: tokens differ"
            assert np.array_equal(lg, lg1), (f"{arch} {mode} max_seqs {max_seqs} step {step}: logits differ by "
                                             f"{np.abs(lg - lg1).max():.3g}")
    finally:
        t.close()


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("mode", ["bf16", "q8", "turbo4v2"])
def test_batched_equals_alone_int8_linears(testapi, arch, mode):
    """The same on the int8 linear path (the default; the test above runs --linear f32)."""
    t = Tqlm(testapi, fixture_dir(arch, "q4" if arch != "minimax" else "mixed"), mode, kv_boundary=1,
             linear="int8")
    try:
        prompts = prompts_for(t.vocab, [300, 37, 520, 5, 129])
        tok1, lg1 = alone(t, prompts)
        tok, lg, _, _ = run(t, prompts, max_seqs=3, step_tokens=64)
        assert np.array_equal(tok, tok1) and np.array_equal(lg, lg1)
    finally:
        t.close()


@pytest.mark.parametrize("arch", ["llama", "qwen3_moe", "minimax"])
def test_preemption_under_a_tight_pool_is_exact(testapi, arch):
    t = Tqlm(testapi, fixture_dir(arch, "bf16"), "turbo4", kv_boundary=1)
    try:
        prompts = prompts_for(t.vocab, [250, 240, 260, 200], seed=3)
        tok1, lg1 = alone(t, prompts)
        block = 256 * 3 * 2 * 32 * 2 * 2  # rough upper bound of one block's bytes for these fixtures
        tok, lg, _, pre = run(t, prompts, max_seqs=4, step_tokens=32, kv_mem=4 * block)
        assert np.array_equal(tok, tok1) and np.array_equal(lg, lg1)
        assert pre.sum() > 0, "the pool was not tight enough to preempt anything"
    finally:
        t.close()


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("mode", ["bf16", "turbo4v2"])
def test_prefix_reuse_is_exact(testapi, arch, mode):
    t = Tqlm(testapi, fixture_dir(arch, "bf16"), mode, kv_boundary=1)
    try:
        rng = np.random.default_rng(5)
        base = rng.integers(5, t.vocab - 5, size=700).astype(np.int32)
        tail = rng.integers(5, t.vocab - 5, size=60).astype(np.int32)
        # 1: the first request; 2: shares 600 tokens (2 whole blocks + 88 tokens of a third, copied);
        # 3: the first request's prompt extended (its blocks + the partial block it left behind)
        prompts = [base, np.concatenate([base[:600], tail]), np.concatenate([base, tail[:9]])]
        tok0, lg0 = alone(t, prompts)  # each from an empty pool: no reuse
        tok, lg, cached, _ = run(t, prompts, reuse=True, sequential=True)
        assert list(cached) == [0, 600, 700], cached
        assert np.array_equal(tok, tok0), f"{arch} {mode}: tokens differ with a reused prefix"
        assert np.array_equal(lg, lg0), f"{arch} {mode}: logits differ by {np.abs(lg - lg0).max():.3g}"
    finally:
        t.close()


def test_cancel_frees_blocks_and_leaves_the_others_alone(testapi):
    t = Tqlm(testapi, fixture_dir("qwen3", "q4"), "turbo4v2", kv_boundary=1)
    try:
        prompts = prompts_for(t.vocab, [300, 270, 40], seed=9)
        tok1, lg1 = alone(t, prompts)
        state = np.zeros(2, np.int64)
        tok, lg, _, _ = run(t, prompts, max_seqs=3, step_tokens=64, cancel=(1, 3), state=state)
        assert state[1] == 1, "the sequence was not cancelled"
        assert list(tok[1][:3]) == list(tok1[1][:3]) and (tok[1][3:] == -1).all()
        for i in (0, 2):
            assert np.array_equal(tok[i], tok1[i]) and np.array_equal(lg[i], lg1[i])
    finally:
        t.close()


def test_a_request_that_can_never_fit_is_refused_with_the_numbers(testapi):
    t = Tqlm(testapi, fixture_dir("llama", "bf16"), "bf16")
    try:
        block = 256 * 3 * 2 * 2 * 32 * 2  # layers x kv heads x (K, V) x head dim x bf16, per token x 256
        with pytest.raises(RuntimeError) as e:
            run(t, prompts_for(t.vocab, [600]), kv_mem=2 * block)
        msg = str(e.value)
        assert "KV pool" in msg and "--kv-mem" in msg and "612 tokens" in msg, msg
        # one that fits runs in the same budget
        run(t, prompts_for(t.vocab, [400]), kv_mem=2 * block)
    finally:
        t.close()
