"""Shared fixtures for the oracle tests: where the tqlm build is, and the ctypes test API."""
import ctypes
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("TQLM_BUILD", ROOT / "build"))
if not BUILD.is_absolute():
    BUILD = ROOT / BUILD


@pytest.fixture(scope="session")
def tqlm_bin():
    exe = BUILD / "tqlm"
    assert exe.exists(), f"{exe} not built: run `make build` (or set TQLM_BUILD)"
    return str(exe)


@pytest.fixture(scope="session")
def testapi():
    path = BUILD / "libtqlm_testapi.so"
    assert path.exists(), f"{path} not built: run `make build`"
    lib = ctypes.CDLL(str(path))
    lib.tqlm_last_error.restype = ctypes.c_char_p
    return lib


def check(lib, rc):
    """Raises with tqlm's message when a testapi call failed."""
    if rc != 0:
        raise RuntimeError(lib.tqlm_last_error().decode())
