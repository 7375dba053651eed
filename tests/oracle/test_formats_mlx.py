"""Formats checked against the ecosystem: FP8 and half-precision codes (ml_dtypes, numpy, mlx), FP8
block dequantization (mlx_lm's MiniMax sanitize), safetensors written by mlx, and `tqlm inspect` on
checkpoints that mlx_lm itself wrote (totals must equal the bytes in the files and mlx_lm's counts)."""
import ctypes
import json
import subprocess

import ml_dtypes
import mlx.core as mx
import mlx_lm.models.minimax as mlx_minimax
import numpy as np
import pytest
from mlx_lm.utils import compute_bits_per_weight, get_total_parameters, load_model

from conftest import check
from fixtures import ARCHS, VARIANTS, fixture_dir

P = lambda a: a.ctypes.data_as(ctypes.c_void_p)


def decode(lib, codes, dtype):
    out = np.empty(codes.size, np.float32)
    check(lib, lib.tqlm_decode_f32(P(codes), ctypes.c_int64(codes.size), dtype.encode(), P(out)))
    return out


def same_floats(a, b):
    """Equal values, NaN where NaN, and the same sign of zero."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    nan = np.isnan(a) & np.isnan(b)
    return bool(np.all(nan | ((a == b) & (np.signbit(a) == np.signbit(b)))))


@pytest.mark.parametrize("dt,ref", [("F8_E4M3", ml_dtypes.float8_e4m3fn), ("F8_E5M2", ml_dtypes.float8_e5m2)])
def test_fp8_all_codes(testapi, dt, ref):
    codes = np.arange(256, dtype=np.uint8)
    mine = decode(testapi, codes, dt)
    assert same_floats(mine, codes.view(ref).astype(np.float32))
    if dt == "F8_E4M3":  # mlx's own decoder agrees too
        assert same_floats(mine, np.array(mx.from_fp8(mx.array(codes), dtype=mx.float32)))


def test_half_codes_and_rounding(testapi):
    codes = np.arange(65536, dtype=np.uint16)
    assert same_floats(decode(testapi, codes, "F16"), codes.view(np.float16).astype(np.float32))
    assert same_floats(decode(testapi, codes, "BF16"), codes.view(ml_dtypes.bfloat16).astype(np.float32))
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(200_000).astype(np.float32) * 10.0 ** rng.integers(-9, 6, 200_000),
                        np.array([65519.0, 65520.0, 1e-8, 2.0**-25, 3 * 2.0**-26, -0.0, np.inf, -np.inf],
                                 np.float32)]).astype(np.float32)
    for dt, ref in [("F16", np.array(mx.array(x).astype(mx.float16).view(mx.uint16))),
                    ("BF16", np.array(mx.array(x).astype(mx.bfloat16).view(mx.uint16)))]:
        out = np.empty(x.size, np.uint16)
        check(testapi, testapi.tqlm_f32_to_half(P(x), ctypes.c_int64(x.size), dt.encode(), P(out)))
        bad = np.flatnonzero(out != ref)
        assert bad.size == 0, f"{dt}: {bad.size} roundings differ from mlx, first x={x[bad[0]]!r}"


@pytest.mark.parametrize("rows,cols", [(256, 384), (300, 200), (1, 129)])
def test_fp8_block_dequant_matches_mlx_lm(testapi, rows, cols):
    rng = np.random.default_rng(rows)
    codes = rng.integers(0, 256, (rows, cols), dtype=np.uint8)
    codes[(codes & 0x7F) == 0x7F] = 0x11  # no NaN codes in real weights
    br, bc = -(-rows // 128), -(-cols // 128)
    scale = (rng.uniform(0.5, 2.0, (br, bc)) * 10.0 ** rng.integers(-4, 2, (br, bc))).astype(np.float32)
    ref = mlx_minimax.Model.sanitize(None, {"w.weight": mx.array(codes), "w.weight_scale_inv": mx.array(scale)})
    ref_bits = np.array(ref["w.weight"].view(mx.uint16))
    out = np.empty((rows, cols), np.uint16)
    check(testapi, testapi.tqlm_fp8_block_dequantize(P(codes), ctypes.c_int64(rows), ctypes.c_int64(cols),
                                                     P(scale), b"F32", b"BF16", P(out)))
    assert np.array_equal(out, ref_bits)


def test_reads_what_mlx_writes(testapi, tmp_path):
    rng = np.random.default_rng(1)
    arrays = {
        "f32": mx.array(rng.standard_normal((3, 5)).astype(np.float32)),
        "f16": mx.array(rng.standard_normal((7,)).astype(np.float16)),
        "bf16": mx.array(rng.standard_normal((2, 2, 3)).astype(np.float32)).astype(mx.bfloat16),
        "i8": mx.array(rng.integers(-128, 127, 9).astype(np.int8)),
        "i16": mx.array(rng.integers(-1000, 1000, 4).astype(np.int16)),
        "i32": mx.array(rng.integers(-10**6, 10**6, 4).astype(np.int32)),
        "i64": mx.array(rng.integers(-10**12, 10**12, 4).astype(np.int64)),
        "u8": mx.array(rng.integers(0, 255, 4).astype(np.uint8)),
        "u32": mx.array(rng.integers(0, 2**32 - 1, 6, dtype=np.uint64).astype(np.uint32)),
        "bool": mx.array(np.array([True, False, True])),
        "scalar": mx.array(np.float32(2.5)),
        "empty": mx.zeros((0, 4)),
    }
    path = tmp_path / "all.safetensors"
    mx.save_safetensors(str(path), arrays, metadata={"format": "mlx"})
    for name, a in arrays.items():
        want = np.array(a.view(mx.uint16)) if a.dtype == mx.bfloat16 else np.array(a)
        buf = np.zeros(max(want.nbytes, 1), np.uint8)
        n = testapi.tqlm_read_tensor(str(path).encode(), name.encode(), P(buf), ctypes.c_int64(buf.size))
        assert n == want.nbytes, testapi.tqlm_last_error().decode()
        assert buf[:n].tobytes() == want.tobytes(), name


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("arch", ARCHS)
def test_inspect_matches_mlx_lm(tqlm_bin, arch, variant):
    d = fixture_dir(arch, variant)
    rep = json.loads(subprocess.run([tqlm_bin, "inspect", str(d), "--json"], check=True, capture_output=True,
                                    text=True).stdout)
    weights = {}
    for f in sorted(d.glob("*.safetensors")):
        weights.update(mx.load(str(f)))
    file_bytes = sum(v.nbytes for v in weights.values())
    assert rep["total"]["bytes"] == file_bytes
    assert rep["total"]["tensors"] == len(weights)
    assert sum(r["bytes"] for r in rep["roles"].values()) == file_bytes
    model, _ = load_model(d, lazy=True)
    # mlx_lm counts only parameters of leaf modules, which misses MiniMax's e_score_correction_bias
    # (a parameter of the MoE block itself); tqlm counts every stored parameter.
    non_leaf = sum(v.size for k, v in weights.items() if k.endswith("e_score_correction_bias"))
    ref_params = get_total_parameters(model) + non_leaf
    assert rep["total"]["params"] == ref_params
    if not non_leaf:
        assert rep["total"]["bpw"] == pytest.approx(compute_bits_per_weight(model), rel=1e-12)
    assert rep["total"]["bpw"] == pytest.approx(file_bytes * 8 / ref_params, rel=1e-12)
    cfg = json.loads((d / "config.json").read_text())
    if variant == "mixed":
        bits = {str(v["bits"]) for k, v in cfg["quantization"].items() if isinstance(v, dict)}
        assert bits <= set().union(*[set(r["bits"]) for r in rep["roles"].values()])
    expected_roles = {"embed", "attn_q", "attn_k", "attn_v", "attn_o", "norm"}
    if "moe" in arch or arch in ("mixtral", "minimax"):
        expected_roles |= {"router", "expert_gate", "expert_up", "expert_down"}
    else:
        expected_roles |= {"mlp_gate", "mlp_up", "mlp_down"}
    assert expected_roles <= set(rep["roles"]), sorted(rep["roles"])
    assert "other" not in rep["roles"]


def test_inspect_errors_are_clear(tqlm_bin, tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x0a\x00\x00\x00\x00\x00\x00\x00{not json}")
    r = subprocess.run([tqlm_bin, "inspect", str(bad)], capture_output=True, text=True)
    assert r.returncode != 0 and "bad.safetensors" in r.stderr and "JSON" in r.stderr
    r = subprocess.run([tqlm_bin, "inspect", str(tmp_path / "missing")], capture_output=True, text=True)
    assert r.returncode != 0 and "missing" in r.stderr
    d = tmp_path / "m"
    d.mkdir()
    (d / "config.json").write_text('{"model_type": "llama", "quantization": {"bits": 4, "group_size": 32, "mode": "mxfp4"}}')
    mx.save_safetensors(str(d / "model.safetensors"), {"a": mx.zeros((2,))})
    r = subprocess.run([tqlm_bin, "inspect", str(d)], capture_output=True, text=True)
    assert r.returncode != 0 and "mxfp4" in r.stderr
