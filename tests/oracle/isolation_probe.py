"""Run only by test_isolation.py (a nested pytest with TQLM_ISOLATION_PROBE=1): tests that crash the way a
third-party native library would, between tests that must still run and pass."""
import ctypes
import os

import pytest

from isolation import llama_cpp_oracle

if os.environ.get("TQLM_ISOLATION_PROBE") != "1":
    pytest.skip("crash probe: run by test_isolation.py only", allow_module_level=True)

lib = llama_cpp_oracle()


def test_1_child_segfault():
    lib.call("crash_for_test", "segv")


def test_2_child_restarts_after_a_crash():
    assert lib.call("version")


def test_3_in_process_segfault():
    ctypes.string_at(0)


def test_4_still_runs():
    assert True
