"""Tiny mlx_lm-made checkpoints (scripts/make-fixtures.py), created on first use and cached."""
import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

FIXTURES = Path(os.environ.get("TQLM_FIXTURES", ROOT / ".cache" / "fixtures"))
ARCHS = ["llama", "llama-untied", "qwen2", "qwen3", "qwen3_moe", "mixtral", "minimax"]
VARIANTS = ["bf16", "q4", "mixed"]
MOE_ARCHS = ["qwen3_moe", "mixtral", "minimax"]
# (arch, variant) pairs for forward-pass parity: every variant, plus HF per-expert layouts for MoE.
CASES = [(a, v) for a in ARCHS for v in VARIANTS] + [(a, "hf") for a in MOE_ARCHS]


def fixture_dir(arch, variant):
    d = FIXTURES / f"{arch}-{variant}"
    if not (d / "config.json").exists() or not (FIXTURES / "minimax-hf" / "config.json").exists():
        subprocess.run([sys.executable, str(ROOT / "scripts" / "make-fixtures.py"), str(FIXTURES)], check=True)
    return d
