#!/usr/bin/env python3
"""MiniMax-M2's decode and prefill speed on this machine from a few of its layers with random weights: a thin
wrapper over `tqlm bench --synthetic minimax-m2` (issue 16, item 7), kept so that the commands recorded in
docs/results.md still run. Use the binary directly:

    build/tqlm bench --synthetic minimax-m2 [--layers 4] [--policy config-i] [--contexts 128,2048] [-n 32]
        [-t 0] [--bandwidth 400] [--dir DIR] [--keep] [--json]

This script's flags map onto it (--decode -> -n, --threads -> -t); anything else is passed through. The
checkpoints now go under ~/.cache/tqlm/synthetic (or $XDG_CACHE_HOME/tqlm/synthetic) unless --dir says
otherwise, and the default layer count is the binary's (4). `build/tqlm bench --help` describes every
option and the prediction.
"""
import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tqlm", default=str(ROOT / "build" / "tqlm"))
    ap.add_argument("--decode", help="tokens decoded per context (tqlm's -n)")
    ap.add_argument("--threads", help="worker threads (tqlm's -t)")
    a, rest = ap.parse_known_args()
    cmd = [a.tqlm, "bench", "--synthetic", "minimax-m2"]
    if a.decode:
        cmd += ["-n", a.decode]
    if a.threads:
        cmd += ["-t", a.threads]
    os.execv(a.tqlm, cmd + rest)


if __name__ == "__main__":
    sys.exit(main())
