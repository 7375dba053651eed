"""MLX affine quantization: tqlm must equal mx.quantize / mx.dequantize (CPU) bit for bit.

For every bits x group size x dtype combination, at least 10^6 random groups (several value
distributions, so scales of both signs, tiny and huge ranges occur) plus adversarial groups
(constant, all-negative, all-positive, tiny range, huge range, exact rounding ties, zeros and -0.0,
subnormals) are quantized by both and every packed word, scale and bias is compared.
"""
import ctypes

import mlx.core as mx
import numpy as np
import pytest

from conftest import check

BITS = [2, 3, 4, 5, 6, 8]
GROUPS = [32, 64, 128]
DTYPES = {"F32": mx.float32, "F16": mx.float16, "BF16": mx.bfloat16}
N_GROUPS = 1_000_000
CHUNK = 250_000


def random_groups(rng, n, gs):
    """n groups of gs values, mixing distributions and per-group magnitudes."""
    kind = rng.integers(0, 4, size=(n, 1))
    mag = np.float32(10.0) ** rng.uniform(-4, 3, size=(n, 1)).astype(np.float32)
    normal = rng.standard_normal((n, gs), dtype=np.float32)
    uniform = rng.uniform(-1, 1, (n, gs)).astype(np.float32)
    w = np.where(kind == 0, normal, uniform)
    w = np.where(kind == 2, np.abs(normal) + rng.uniform(0, 2, (n, 1)).astype(np.float32), w)  # all positive
    w = np.where(kind == 3, -np.abs(uniform) - rng.uniform(0, 2, (n, 1)).astype(np.float32), w)  # all negative
    return (w * mag).astype(np.float32)


def adversarial_groups(gs, bits):
    n_bins = (1 << bits) - 1
    rows = []
    for c in [0.0, -0.0, 1.0, -1.0, 3.25, -7.5, 1e-8, -1e-8, 5e-8, 6e-8, 65504.0, -2.5e-5, 1e30]:
        rows.append(np.full(gs, c, np.float32))  # constant groups
    grid = np.arange(gs, dtype=np.float32) % (n_bins + 1)
    rows.append(grid)  # exactly on the grid
    rows.append(-grid)
    half = (np.arange(gs, dtype=np.float32) % (2 * n_bins + 1)) / 2  # ties at every odd half step
    half[0], half[1] = 0, n_bins
    rows.append(half)
    rows.append(-half)
    rows.append(half - n_bins / 2)
    rows.append(1 + np.arange(gs, dtype=np.float32) * 1e-7)  # range below eps * n_bins
    rows.append(-1 - np.arange(gs, dtype=np.float32) * 1e-7)
    rows.append(np.linspace(-1e30, 3e29, gs, dtype=np.float32))  # huge range
    rows.append(np.linspace(-6e4, 6e4, gs, dtype=np.float32))
    rows.append(np.linspace(1e-7, 3e-5, gs, dtype=np.float32))  # f16 subnormals
    z = np.zeros(gs, np.float32)
    z[gs // 2] = -0.0
    z[3] = 1.0
    rows.append(z)
    z2 = np.zeros(gs, np.float32)
    z2[5] = -2.0
    rows.append(z2)
    rng = np.random.default_rng(bits * 1000 + gs)
    for _ in range(64):  # symmetric groups: |min| == |max| picks the max anchor
        v = rng.standard_normal(gs).astype(np.float32)
        v[0], v[1] = 1.5, -1.5
        v = np.clip(v, -1.5, 1.5)
        rows.append(v)
    return np.stack(rows)


def to_mx(w32, dt):
    return mx.array(w32).astype(DTYPES[dt])


def raw_bytes(a):
    """Bit pattern of an mx array as a numpy uint array (bf16 has no numpy dtype)."""
    if a.dtype in (mx.float16, mx.bfloat16):
        return np.array(a.view(mx.uint16))
    if a.dtype == mx.float32:
        return np.array(a).view(np.uint32)
    return np.array(a)


def tqlm_quantize(lib, wbits, dt, rows, cols, bits, gs):
    half = dt != "F32"
    sdt = np.uint16 if half else np.uint32
    wq = np.empty((rows, cols * bits // 32), np.uint32)
    s = np.empty((rows, cols // gs), sdt)
    b = np.empty((rows, cols // gs), sdt)
    p = lambda a: a.ctypes.data_as(ctypes.c_void_p)
    check(lib, lib.tqlm_affine_quantize(p(wbits), dt.encode(), ctypes.c_int64(rows), ctypes.c_int64(cols),
                                        bits, gs, p(wq), p(s), p(b)))
    return wq, s, b


def compare(lib, w32, dt, bits, gs, label):
    # Rows of several groups, so packing across group boundaries inside a row is exercised too.
    per_row = 4 if w32.shape[0] % 4 == 0 else 1
    w32 = w32.reshape(-1, gs * per_row)
    wm = to_mx(w32, dt)
    q, s, b = mx.quantize(wm, group_size=gs, bits=bits)
    mx.eval(q, s, b)
    wbits = np.ascontiguousarray(raw_bytes(wm))
    tq, ts, tb = tqlm_quantize(lib, wbits, dt, w32.shape[0], w32.shape[1], bits, gs)
    rq, rs, rb = np.array(q), raw_bytes(s), raw_bytes(b)
    for name, mine, ref in [("packed words", tq, rq), ("scales", ts, rs), ("biases", tb, rb)]:
        bad = np.argwhere(mine != ref)
        assert bad.size == 0, (f"{label}: {len(bad)} {name} differ from mx.quantize; first at {bad[0].tolist()}: "
                               f"tqlm {mine[tuple(bad[0])]:#x} mlx {ref[tuple(bad[0])]:#x}")
    return q, s, b, wbits


@pytest.mark.parametrize("dt", list(DTYPES))
@pytest.mark.parametrize("gs", GROUPS)
def test_quantize_matches_mlx(testapi, dt, gs):
    rng = np.random.default_rng(gs * 7 + len(dt))
    done = 0
    while done < N_GROUPS:
        n = min(CHUNK, N_GROUPS - done)
        w32 = random_groups(rng, n, gs)
        for bits in BITS:
            compare(testapi, w32, dt, bits, gs, f"random {dt} bits={bits} gs={gs} chunk@{done}")
        done += n
    for bits in BITS:
        adv = adversarial_groups(gs, bits)
        if dt == "F16":
            adv = np.clip(adv, -65504, 65504)
        compare(testapi, adv, dt, bits, gs, f"adversarial {dt} bits={bits} gs={gs}")


@pytest.mark.parametrize("dt", list(DTYPES))
@pytest.mark.parametrize("bits", BITS)
def test_dequantize_matches_mlx(testapi, dt, bits):
    rng = np.random.default_rng(bits)
    for gs in GROUPS:
        w32 = np.concatenate([random_groups(rng, 20_000, gs), adversarial_groups(gs, bits)])
        if dt == "F16":
            w32 = np.clip(w32, -65504, 65504)
        q, s, b, _ = compare(testapi, w32, dt, bits, gs, "dequant input")
        ref = mx.dequantize(q, s, b, group_size=gs, bits=bits)
        ref_bits = raw_bytes(ref)
        rows, cols = ref.shape
        out = np.empty_like(ref_bits)
        sb, bb = np.ascontiguousarray(raw_bytes(s)), np.ascontiguousarray(raw_bytes(b))
        qn = np.ascontiguousarray(np.array(q))
        p = lambda a: a.ctypes.data_as(ctypes.c_void_p)
        check(testapi, testapi.tqlm_affine_dequantize(p(qn), p(sb), p(bb), dt.encode(), ctypes.c_int64(rows),
                                                      ctypes.c_int64(cols), bits, gs, p(out)))
        bad = np.argwhere(out != ref_bits)
        assert bad.size == 0, f"{dt} bits={bits} gs={gs}: {len(bad)} values differ from mx.dequantize"


def test_rejects_what_mlx_rejects(testapi):
    w = np.zeros((1, 96), np.float32)
    with pytest.raises(ValueError):
        mx.quantize(mx.array(w), group_size=64, bits=4)
    with pytest.raises(RuntimeError, match="multiple of the group size"):
        tqlm_quantize(testapi, w, "F32", 1, 96, 4, 64)
    with pytest.raises(RuntimeError, match="bits"):
        tqlm_quantize(testapi, np.zeros((1, 64), np.float32), "F32", 1, 64, 7, 64)
