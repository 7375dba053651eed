"""The KV cache modes inside the model: for every mode (float, q8, TurboQuant symmetric and asymmetric), logits of
a prompt run as one prefill (in chunks) equal, bit for bit, the logits of the same tokens decoded one at a time, so perplexity
measures what decoding sees; and the compressed modes really change what attention sees (their logits move away
from the f32 cache by about what their bit width predicts), while the boundary layers stay exactly bf16.

The per-op equality of attention over codes with attention over the explicitly dequantized cache is in
tests/unit/test_kv_cache.cpp; here the whole forward pass is exercised on mlx_lm-made fixtures."""
import numpy as np
import pytest

from fixtures import fixture_dir
from test_model_parity import Tqlm

MODES = ["bf16", "f16", "q8", "turbo2", "turbo3", "turbo4", "turbo8", "turbo4v2", "turbo2v4", "turbo8v3", "turbo4s"]
CENTRED = ["turbo4v2c", "turbo4cs", "q8cs", "auto:3s"]  # need a calibration file (TQLM_KV_CALIB)
N = 300  # two cache pages of 256 tokens


def prompt(vocab):
    return (np.arange(N, dtype=np.int64) * 7919 % (vocab - 10) + 5).astype(np.int32)


# every mode on the f32 linear path (the reference); the int8 path (the default) on the quantized fixtures, 3 modes
PREFILL_CASES = ([(a, v, m, "f32") for a, v in [("llama", "q4"), ("qwen3", "bf16"), ("minimax", "mixed")]
                  for m in MODES] +
                 [(a, v, m, "int8") for a, v in [("llama", "q4"), ("minimax", "mixed")]
                  for m in ("bf16", "q8", "turbo4v2")])


@pytest.mark.parametrize("arch,variant,mode,linear", PREFILL_CASES)
def test_prefill_equals_token_by_token_decode(testapi, arch, variant, mode, linear):
    path = fixture_dir(arch, variant)
    t = Tqlm(testapi, path, mode, kv_boundary=0, linear=linear)  # every layer in the mode under test
    try:
        p = prompt(t.vocab)
        pre = np.concatenate([t.forward(p[i:i + 128]) for i in range(0, N, 128)])
        t.reset()
        dec = np.concatenate([t.forward(p[i:i + 1]) for i in range(N)])
        # bit for bit: every kernel computes a row the same way whatever the number of tokens in the batch
        diff = float(np.abs(pre - dec).max())
        assert np.array_equal(pre, dec), f"{mode}: prefill vs decode max|logit diff| {diff:.3g}"
    finally:
        t.close()


def test_compressed_modes_move_logits_by_their_bit_width(testapi):
    path = fixture_dir("llama", "bf16")
    ref = Tqlm(testapi, path, "f32")
    p = prompt(ref.vocab)
    base = ref.forward(p)
    ref.close()
    err = {}
    for mode in ["bf16", "q8", "turbo8", "turbo4", "turbo3", "turbo2"]:
        t = Tqlm(testapi, path, mode, kv_boundary=0)
        err[mode] = float(np.abs(t.forward(p) - base).mean())
        t.close()
    # more bits, less error: every compressed mode really compresses, and in order
    assert 0 < err["bf16"] < err["turbo4"] < err["turbo3"] < err["turbo2"], err
    assert err["q8"] < err["turbo4"] and err["turbo8"] < err["turbo4"], err
    # boundary layers: with the boundary covering every layer (3 layers, boundary capped at 1 each end... so use
    # a boundary of 2 on 3 layers = 1 + 1 bf16, middle layer compressed) the error sits between bf16 and turbo2
    t = Tqlm(testapi, path, "turbo2", kv_boundary=1)
    mid = float(np.abs(t.forward(p) - base).mean())
    t.close()
    assert err["bf16"] < mid < err["turbo2"], (mid, err)


def test_unknown_mode_is_a_clear_error(testapi):
    import ctypes
    testapi.tqlm_model_open.restype = ctypes.c_void_p
    h = testapi.tqlm_model_open(str(fixture_dir("llama", "q4")).encode(), b"turbo7v2", 2, 1)
    assert not h
    msg = testapi.tqlm_last_error().decode()
    assert "turbo7v2" in msg and "turbo4v2" in msg


def write_calib(path, fixture, out, rng):
    """A calibration file for `fixture` with random means (exactness holds for any vector) and made-up
    sensitivities (auto:R only needs numbers), RoPE fields from its config (MiniMax: rotary_dim < head_dim)."""
    import json
    cfg = json.loads((fixture / "config.json").read_text())
    L, KV = cfg["num_hidden_layers"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    rd = cfg.get("rotary_dim") or int(hd * cfg.get("partial_rotary_factor", 1.0))
    theta = cfg.get("rope_theta", 10000.0)
    kl = {str(b): [float(0.1 / b ** 2 * (1 + i)) for i in range(L)] for b in (2, 3, 4, 8)}
    out.write_text(json.dumps({
        "format": "tqlm-kv-calib-1", "layers": L, "kv_heads": KV, "head_dim": hd, "rotary_dim": rd,
        "rope_inv_freq": [theta ** (-2 * i / rd) for i in range(rd // 2)],
        "k_mean": (rng.standard_normal(L * KV * hd) * 2).tolist(), "v_mean": rng.standard_normal(L * KV * hd).tolist(),
        "k_kl": kl, "v_kl": kl}))


@pytest.mark.parametrize("arch,variant", [("llama", "q4"), ("minimax", "mixed")])
@pytest.mark.parametrize("env", [{}, {"TQLM_KV_CENTRE": "kv"}, {"TQLM_KV_CENTRE_KDIMS": "slow:64"}])
def test_centred_modes_prefill_equals_decode_and_centring_is_exact(testapi, tmp_path, monkeypatch, arch, variant,
                                                                   env):
    path = fixture_dir(arch, variant)
    write_calib(path, path, tmp_path / "calib.json", np.random.default_rng(1))
    monkeypatch.setenv("TQLM_KV_CALIB", str(tmp_path / "calib.json"))
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    p = None
    for mode in CENTRED:
        t = Tqlm(testapi, path, mode, kv_boundary=0, linear="f32")
        try:
            p = prompt(t.vocab)
            pre = np.concatenate([t.forward(p[i:i + 128]) for i in range(0, N, 128)])
            t.reset()
            dec = np.concatenate([t.forward(p[i:i + 1]) for i in range(N)])
            assert np.array_equal(pre, dec), f"{mode} {env}: prefill vs decode"
        finally:
            t.close()
    # centring with no quantization moves logits only at f32 rounding level
    logits = {}
    for mode in ("f32", "f32c"):
        t = Tqlm(testapi, path, mode, kv_boundary=0, linear="f32")
        logits[mode] = t.forward(p)
        t.close()
    diff = float(np.abs(logits["f32"] - logits["f32c"]).max())
    assert diff < 1e-3 * float(np.abs(logits["f32"]).max()), f"{env}: f32c vs f32 max|diff| {diff:.3g}"
