#!/usr/bin/env python3
"""Regenerates the README's "Results from `tqlm report`" section (issue 14): `tqlm report` on the default model and
on its exact-MoE split under config-i, with every KV mode, each against its bf16 reference; the reports and their
SVG plots go to docs/report/NAME/ and each report.md is spliced into README.md between its markers
(<!-- report:NAME begin --> ... <!-- report:NAME end -->), headings demoted and picture links made relative to
the README, so the pictures show on the repository page.

    .venv/bin/python bench/readme_results.py [--full] [--modes bf16,q8,...] [--work .cache/results] [-t 2]

The checkpoints are made once into --work: the default model dequantized to bf16 (the reference), its exact-MoE
split (each MLP cut into 8 expert slices, bench/quality_table.py's make_moe: the same function to summation
order), that split converted under config-i (2-bit experts), and a KV calibration per model (`tqlm kv-calibrate`,
second half of wiki.test.raw, bits 2-8) for the centred and auto modes. Without --full the reports are `--quick`
(about 5 minutes per model on 2 cores); --full takes hours (NIAH 1K-8K x 5 depths per mode).
"""
import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODES = "bf16,q8,turbo8v4,turbo4,turbo4v2,turbo3,turbo4cs,auto:3s"
WIKI = Path("..") / "shared" / "data" / "wikitext-2" / "wiki.test.raw"
MMLU = Path("..") / "shared" / "data" / "mmlu"


def run(*args):
    print("+ " + " ".join(map(str, args)), file=sys.stderr, flush=True)
    r = subprocess.run([str(a) for a in args], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.exit(f"failed ({r.returncode}): {' '.join(map(str, args))}")
    return r.stdout


def splice(readme: str, name: str, report_dir: Path, md: str) -> str:
    """report.md -> the README block of `name`: headings three levels down, links into report_dir."""
    rel = report_dir.relative_to(ROOT).as_posix()
    md = re.sub(r"^(#+) ", lambda m: "#" * min(6, len(m.group(1)) + 3) + " ", md, flags=re.M)
    md = re.sub(r"\]\(([^)/:]+\.svg)\)", lambda m: f"]({rel}/{m.group(1)})", md)
    begin, end = f"<!-- report:{name} begin -->", f"<!-- report:{name} end -->"
    if begin not in readme or end not in readme:
        sys.exit(f"README.md has no {begin} ... {end} markers")
    a, b = readme.index(begin) + len(begin), readme.index(end)
    return readme[:a] + "\n" + md.strip() + "\n" + readme[b:]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="full reports instead of --quick (hours)")
    ap.add_argument("--modes", default=MODES)
    ap.add_argument("--work", default=".cache/results")
    ap.add_argument("-t", "--threads", type=int, default=0)
    ap.add_argument("--tqlm", default="build/tqlm")
    a = ap.parse_args()
    work = Path(a.work)
    (ROOT / work).mkdir(parents=True, exist_ok=True)
    default = Path("models") / "smollm2-135m-instruct"
    ref, moe, moe_ci = work / "ref-bf16", work / "moe-bf16", work / "moe-config-i"
    if not (ROOT / ref / "config.json").exists():
        keep = ROOT / work / "keep-bf16.json"
        keep.write_text(json.dumps({"name": "keep-bf16", "rules": [{"keep": "bf16"}]}))
        run(a.tqlm, "convert", default, ref, "--policy", keep.relative_to(ROOT))
    if not (ROOT / moe / "config.json").exists():
        sys.path.insert(0, str(ROOT / "bench"))
        from quality_table import make_moe
        make_moe(ROOT / ref, ROOT / moe)
    if not (ROOT / moe_ci / "config.json").exists():
        run(a.tqlm, "convert", moe, moe_ci, "--policy", "config-i")
    threads = ["-t", str(a.threads)] if a.threads else []
    readme = (ROOT / "README.md").read_text()
    for name, model, base in (("default", default, ref), ("moe-config-i", moe_ci, moe)):
        calib = work / f"{name}.kv-calib.json"
        if not (ROOT / calib).exists():
            run(a.tqlm, "kv-calibrate", model, "--data", WIKI, "--bits", "2,3,4,5,6,8", "--out", calib, *threads)
        out = Path("docs") / "report" / name
        run(a.tqlm, "report", model, "--baseline", base, "--kv", a.modes, "--kv-calib", calib, "-o", out,
            "--wiki", WIKI, "--mmlu", MMLU, *threads, *([] if a.full else ["--quick"]))
        for png in (ROOT / out).glob("*.png"):  # the SVGs are what the repository page shows
            png.unlink()
        readme = splice(readme, name, ROOT / out, (ROOT / out / "report.md").read_text())
    (ROOT / "README.md").write_text(readme)
    print("README.md: results regenerated", file=sys.stderr)


if __name__ == "__main__":
    main()
