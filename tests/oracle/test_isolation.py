"""Crash isolation (issue 9): a segfault inside a third-party native library fails the one test that called it,
with a message naming the library and this CPU, and every later test still runs and reports. Proven on a nested
pytest run of isolation_probe.py, configured exactly as `make oracle` runs the suite (pytest-xdist, -n 1)."""
import os
import subprocess
import sys

from conftest import ROOT

HERE = ROOT / "tests" / "oracle"


def test_a_crashing_library_fails_one_test_and_the_run_continues():
    env = dict(os.environ, TQLM_ISOLATION_PROBE="1")
    env.pop("TQLM_CRASH_DIR", None)
    # rootdir and config pinned: the node ids and the conftest in use must not depend on where the clone lives
    r = subprocess.run([sys.executable, "-m", "pytest", "-n", "1", "-p", "no:cacheprovider", "-rfE", "-c", os.devnull,
                        "--rootdir", str(HERE), "isolation_probe.py"],
                       cwd=HERE, env=env, capture_output=True, text=True, timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out  # 1 = some tests failed (not 2/3: interrupted or internal error)
    assert "2 failed, 2 passed" in out, out
    # the crash in the child: named as llama.cpp's, with the signal and the CPU
    assert "llama.cpp crashed: its child process was killed by signal SIGSEGV" in out, out
    assert "not in tqlm" in out and "CPU: " in out and "flags:" in out and "llama.cpp build: " in out, out
    # the crash in the test process itself: xdist replaced the worker and the report names the frame and CPU
    assert "crashed while running 'isolation_probe.py::test_3_in_process_segfault'" in out, out
    assert "innermost Python frame in" in out, out
