"""Hostile inputs (issue 12): every crafted file, flag and config of tests/hostile/make_cases.py must end in the
expected exit code with the expected words in the error, within a time and memory limit per case, so that a
hang or a blow-up fails that case instead of the run. Never a signal.

Each case runs twice: against the Release build (TQLM_BUILD) and against the ASan+UBSan build (TQLM_BUILD_ASAN,
default build-asan; `make test` builds it in `unit-asan` before the oracle step; skipped when it is not built).
Under ASan a sanitizer report (memory error, leak, undefined behaviour) fails the case. Limits: Release, an
address-space limit (RLIMIT_AS); ASan reserves terabytes of shadow address space, so there the limit is ASan's
own hard_rss_limit_mb (a process over it is killed with a report) plus max_allocation_size_mb (one allocation
over it is an error), and the time limit is longer (the ASan build is -O1 with checks)."""
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import BUILD, ROOT
import fixtures as fx

sys.path.insert(0, str(ROOT / "tests" / "hostile"))
from make_cases import make_cases  # noqa: E402

TIMEOUT_S = {"release": 20, "asan": 60}
MEMORY_BYTES = 4 << 30  # address space per case (RLIMIT_AS): far above what any of them needs
MEMORY_MB_ASAN = 4096   # resident memory per case under ASan (hard_rss_limit_mb)
BUILD_ASAN = Path(os.environ.get("TQLM_BUILD_ASAN", ROOT / "build-asan"))
if not BUILD_ASAN.is_absolute():
    BUILD_ASAN = ROOT / BUILD_ASAN
SANITIZER_WORDS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "SUMMARY: UndefinedBehavior")


def _limits_release():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _limits_asan():
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    """One case directory per build: some cases write outputs that must not exist yet (convert's destination)."""
    made = {}

    def get(build):
        if build not in made:
            out = tmp_path_factory.mktemp(f"hostile-{build}")
            made[build] = out, {c["name"]: c for c in make_cases(fx.fixture_dir("llama", "bf16"), out)}
        return made[build]
    return get


def _names():
    # the table is built from files; names only need the structure, so build it once in a scratch dir
    import tempfile
    fixture = fx.fixture_dir("llama", "bf16")
    with tempfile.TemporaryDirectory() as d:
        return [c["name"] for c in make_cases(fixture, d)]


def _binary(build):
    if build == "release":
        exe = BUILD / "tqlm"
        assert exe.exists(), f"{exe} not built: run `make build` (or set TQLM_BUILD)"
        return str(exe)
    exe = BUILD_ASAN / "tqlm"
    if not exe.exists():
        pytest.skip(f"{exe} not built: run `make asan` (or set TQLM_BUILD_ASAN)")
    return str(exe)


@pytest.mark.parametrize("build", ["release", "asan"])
@pytest.mark.parametrize("name", _names())
def test_hostile(cases, name, build):
    exe = _binary(build)
    out, table = cases(build)
    c = table[name]
    argv = [str(a).replace("{dir}", str(out)).replace("{model}", str(out / "model")) for a in c["argv"]]
    env = {k: v for k, v in os.environ.items() if k != "TQLM_DATA"}
    env.update(c.get("env", {}))
    if build == "asan":
        env["ASAN_OPTIONS"] = (f"detect_leaks=1:hard_rss_limit_mb={MEMORY_MB_ASAN}:"
                               f"max_allocation_size_mb={MEMORY_MB_ASAN}:allocator_may_return_null=0:"
                               "abort_on_error=0:symbolize=1")
        env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    timeout = TIMEOUT_S[build]
    try:
        r = subprocess.run([exe, *argv], capture_output=True, text=True, errors="replace", cwd=out,
                           timeout=timeout, env=env, stdin=subprocess.DEVNULL,
                           preexec_fn=_limits_release if build == "release" else _limits_asan)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{name}: no answer within {timeout} s (hang): tqlm {' '.join(argv)[:200]}")
    where = f"{name} ({build}): tqlm {' '.join(argv)[:200]}\nrc {r.returncode}\nstderr: {r.stderr[-3000:]}"
    assert r.returncode >= 0, f"killed by signal {-r.returncode}: {where}"
    for w in SANITIZER_WORDS:
        assert w not in r.stderr, f"sanitizer report: {where}"
    if c["rc"] == "nonzero":
        assert r.returncode != 0, where
    else:
        assert r.returncode == c["rc"], where
    for w in c["words"]:
        assert w in r.stderr, f"'{w}' missing: {where}"
    assert "bad_alloc" not in r.stderr and "type_error" not in r.stderr and "stoi" not in r.stderr, where
    for a in c.get("absent", []):
        assert not (out / a).exists(), f"{a} left behind: {where}"
