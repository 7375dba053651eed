"""TurboQuant Lloyd-Max codebooks checked against the distribution they are built for, sampled
independently: coordinates of uniformly random unit vectors in R^d (normalised Gaussian vectors).
A Lloyd-Max quantizer's centroids are the conditional means of their cells, and its distortion is the
reported MSE; both are measured on 2^20 samples."""
import ctypes

import numpy as np
import pytest

from conftest import check


@pytest.mark.parametrize("d", [64, 128, 256])
@pytest.mark.parametrize("bits", [2, 3, 4])
def test_centroids_are_cell_means(testapi, d, bits):
    c = np.empty(1 << bits, np.float32)
    mse = ctypes.c_double()
    check(testapi, testapi.tqlm_codebook(d, bits, c.ctypes.data_as(ctypes.c_void_p), ctypes.byref(mse)))
    rng = np.random.default_rng(d * 10 + bits)
    v = rng.standard_normal(((1 << 20) // d * 4, d))
    x = (v / np.linalg.norm(v, axis=1, keepdims=True)).ravel()  # coordinates of random unit vectors
    edges = (c[1:] + c[:-1]) / 2
    idx = np.searchsorted(edges, x)
    for k in range(len(c)):
        cell = x[idx == k]
        se = cell.std() / np.sqrt(len(cell)) if len(cell) > 1 else 1
        assert abs(cell.mean() - c[k]) < 5 * se + 1e-6, (k, cell.mean(), c[k])
    measured = np.mean((x - c[idx]) ** 2)
    assert measured == pytest.approx(mse.value, rel=0.02)
