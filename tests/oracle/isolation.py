"""Runs a third-party native library (llama.cpp today) in a child process, so that a crash inside it fails the
one test that called it, with a message naming the library, the signal and this CPU, and every other test still
runs (issue 9: llama.cpp's AMX path segfaulted inside pytest and took the whole oracle run with it).

    llama = IsolatedLibrary("llama.cpp", "llamacpp_worker")   # spawns nothing yet
    logits = llama.call("logits", str(gguf), ids)                 # runs llamacpp_worker.logits(...) in the child

The child is a fresh interpreter (multiprocessing "spawn": no fork of a process that already holds mlx or
OpenMP threads); it imports the worker module once and keeps its state (loaded models) between calls. Results
come back pickled. If the child dies, the call fails the current test through pytest.fail and the next call
starts a new child. An exception inside the child is re-raised in the parent as ChildError with its traceback.
"""
from __future__ import annotations

import faulthandler
import multiprocessing as mp
import signal
import sys
import traceback
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


class ChildError(RuntimeError):
    """An ordinary Python exception raised by the worker (the child is still alive)."""


def cpu_model_and_flags() -> tuple[str, set[str]]:
    """The first CPU's model name and flag set from /proc/cpuinfo ("unknown CPU", {} when unreadable)."""
    model, flags = "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model == "unknown CPU":
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return model, flags


def cpu_description() -> str:
    """The CPU's model name and the SIMD/matrix flags that decide which native code paths libraries take."""
    model, flags = cpu_model_and_flags()
    keep = sorted(f for f in flags if f.startswith(("avx", "amx", "fma", "f16c", "bmi2", "sse4")))
    return f"{model}; flags: {' '.join(keep) or 'unknown'}"


def llama_build_description() -> str:
    """How scripts/install-deps.sh built llama-cpp-python (recorded in the venv), or a note that it is unknown."""
    rec = Path(sys.prefix) / "llama-cpp-build.txt"
    try:
        return " | ".join(rec.read_text().strip().splitlines())
    except OSError:
        return f"build flags unknown ({rec} missing: not installed by scripts/install-deps.sh)"


def _child_main(conn, worker_module: str) -> None:
    faulthandler.enable()  # a native crash prints the Python stack of the child to stderr
    sys.path.insert(0, str(HERE))
    try:
        worker = __import__(worker_module)
    except BaseException:
        conn.send(("err", traceback.format_exc()))
        return
    conn.send(("ready", None))
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        name, args, kwargs = msg
        try:
            conn.send(("ok", getattr(worker, name)(*args, **kwargs)))
        except BaseException:
            conn.send(("err", traceback.format_exc()))


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "did not answer in time"
    if code < 0:
        try:
            return f"was killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


class IsolatedLibrary:
    def __init__(self, library: str, worker_module: str, build_info=None, timeout: float = 1800.0):
        self.library = library
        self.worker_module = worker_module
        self.build_info = build_info or (lambda: "")
        self.timeout = timeout
        self._proc = None
        self._conn = None

    def _start(self) -> None:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        self._proc = ctx.Process(target=_child_main, args=(child, self.worker_module), daemon=True,
                                 name=f"{self.library} oracle")
        self._proc.start()
        child.close()
        self._conn = parent
        self._receive("starting")

    def _crashed(self, what: str) -> None:
        proc, self._proc, self._conn = self._proc, None, None
        code = None
        if proc is not None:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
            else:
                code = proc.exitcode
        info = self.build_info()
        pytest.fail(
            f"{self.library} crashed: its child process {_describe_exit(code)} while {what}. The crash is inside "
            f"the third-party library {self.library}, not in tqlm (its Python stack, if any, is on stderr above).\n"
            f"  CPU: {cpu_description()}\n" + (f"  {self.library} build: {info}\n" if info else ""),
            pytrace=False)

    def _receive(self, what: str):
        try:
            kind, value = self._conn.recv() if self._conn.poll(self.timeout) else ("timeout", None)
        except (EOFError, OSError, ConnectionError):
            kind, value = "died", None
        if kind in ("timeout", "died"):
            self._crashed(what)  # outside the except block: the report shows no chained exception
        if kind == "err":
            if what == "starting":
                self.close()
            raise ChildError(f"{self.library} worker raised:\n{value}")
        return value

    def call(self, name: str, *args, **kwargs):
        if self._proc is None or not self._proc.is_alive():
            self._start()
        what = f"running {self.worker_module}.{name}"
        try:
            self._conn.send((name, args, kwargs))
        except (OSError, ConnectionError):
            pass  # the child is gone: _receive reports it
        return self._receive(what)

    def close(self) -> None:
        if self._proc is not None:
            try:
                self._conn.send(None)
            except (OSError, ConnectionError):
                pass
            self._proc.join(10)
            if self._proc.is_alive():
                self._proc.kill()
        self._proc = self._conn = None


def llama_cpp_oracle() -> IsolatedLibrary:
    """The llama.cpp oracle (llama-cpp-python) behind a child process; see llamacpp_worker.py."""
    return IsolatedLibrary("llama.cpp", "llamacpp_worker", build_info=llama_build_description)

