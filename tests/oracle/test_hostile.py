"""Hostile inputs (issue 12): every crafted file, flag and config of tests/hostile/make_cases.py must end in the
expected exit code with the expected words in the error, within a time and memory limit per case, so that a
hang or a blow-up fails that case instead of the run. Never a signal."""
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
import fixtures as fx

sys.path.insert(0, str(ROOT / "tests" / "hostile"))
from make_cases import make_cases  # noqa: E402

TIMEOUT_S = 20
MEMORY_BYTES = 4 << 30  # address space per case (RLIMIT_AS): far above what any of them needs


def _limits():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    out = tmp_path_factory.mktemp("hostile")
    return out, {c["name"]: c for c in make_cases(fx.fixture_dir("llama", "bf16"), out)}


def _names():
    # the table is built from files; names only need the structure, so build it once in a scratch dir
    import tempfile
    fixture = fx.fixture_dir("llama", "bf16")
    with tempfile.TemporaryDirectory() as d:
        return [c["name"] for c in make_cases(fixture, d)]


@pytest.mark.parametrize("name", _names())
def test_hostile(tqlm_bin, cases, name):
    out, table = cases
    c = table[name]
    argv = [str(a).replace("{dir}", str(out)).replace("{model}", str(out / "model")) for a in c["argv"]]
    env = {k: v for k, v in os.environ.items() if k != "TQLM_DATA"}
    env.update(c.get("env", {}))
    try:
        r = subprocess.run([tqlm_bin, *argv], capture_output=True, text=True, errors="replace", cwd=out,
                           timeout=TIMEOUT_S, preexec_fn=_limits, env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{name}: no answer within {TIMEOUT_S} s (hang): tqlm {' '.join(argv)[:200]}")
    where = f"{name}: tqlm {' '.join(argv)[:200]}\nrc {r.returncode}\nstderr: {r.stderr[-2000:]}"
    assert r.returncode >= 0, f"killed by signal {-r.returncode}: {where}"
    if c["rc"] == "nonzero":
        assert r.returncode != 0, where
    else:
        assert r.returncode == c["rc"], where
    for w in c["words"]:
        assert w in r.stderr, f"'{w}' missing: {where}"
    assert "bad_alloc" not in r.stderr and "type_error" not in r.stderr and "stoi" not in r.stderr, where
    for a in c.get("absent", []):
        assert not (out / a).exists(), f"{a} left behind: {where}"
