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


# ------------------------------------------------------------------ native crashes fail one test, not the run
# `make oracle` runs pytest with pytest-xdist (`-n 1`): the tests execute in a worker process, and when a native
# library called in-process (mlx, numpy, tokenizers, tqlm's ctypes test API) crashes it, xdist reports that one
# test as failed and starts a new worker for the rest. Each worker writes faulthandler's stack to a file; the
# crash report below names the library from the innermost Python frame and states this CPU. llama.cpp is further
# isolated in a child process of its own (isolation.py).

_crash_log = None


@pytest.hookimpl(trylast=True)  # after pytest's own faulthandler plugin, which would otherwise take the handler
def pytest_configure(config):
    global _crash_log
    import faulthandler
    import tempfile
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None:
        os.environ.setdefault("TQLM_CRASH_DIR", tempfile.mkdtemp(prefix="tqlm-crash-"))
    elif "TQLM_CRASH_DIR" in os.environ:
        _crash_log = open(pathlib.Path(os.environ["TQLM_CRASH_DIR"]) / f"{worker}.txt", "w")
        faulthandler.enable(file=_crash_log, all_threads=True)


def crashed_library(stack: str) -> str:
    """The package (or project file) of the innermost Python frame in a faulthandler dump."""
    import re
    if "Current thread" in stack:  # all_threads=True: the crashing thread's section comes last
        stack = stack[stack.index("Current thread"):]
    for m in re.finditer(r'File "([^"]+)", line \d+', stack):
        path = m.group(1)
        if "/site-packages/" in path:
            return path.split("/site-packages/", 1)[1].split("/", 1)[0]
        try:
            return str(pathlib.Path(path).resolve().relative_to(ROOT))
        except ValueError:
            return path
    return "unknown (no Python frame recorded)"


@pytest.hookimpl(optionalhook=True)
def pytest_handlecrashitem(crashitem, report, sched):
    from isolation import cpu_description
    worker = report.node.gateway.id
    stack = ""
    try:
        stack = (pathlib.Path(os.environ["TQLM_CRASH_DIR"]) / f"{worker}.txt").read_text()
    except (KeyError, OSError):
        pass
    report.longrepr = (
        f"{report.longrepr}\nThe test process died in native code: innermost Python frame in "
        f"{crashed_library(stack)}. A crash in a third-party library (mlx, numpy, tokenizers, llama.cpp) is that "
        f"library's bug on this CPU; a crash under tests/oracle/testapi or tqlm is ours.\n"
        f"  CPU: {cpu_description()}\n" + (f"  faulthandler:\n{stack}" if stack else ""))
