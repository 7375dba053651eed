#!/usr/bin/env python3
"""Calibrated vs round-to-nearest weights at the same bytes, and the automatic policy (issue 15), one script.

    .venv/bin/python bench/calib_table.py [--ctx 512] [--samples 4] [--out docs/calib-table.md]

Reference: the default model dequantized to bf16 (as bench/quality_table.py), and the exact-MoE split of it
(quality_table.make_moe). Calibration: `tqlm calibrate` on the SECOND half of wiki.test.raw (--start 0.5),
disjoint from the perplexity windows, which are the FIRST windows of the same file. Each policy is converted
twice, round to nearest (mx.quantize's parameters) and calibrated (`--stats`), and `auto` is allocated at the
bytes of config-i (dense model: config-i-dense). KL and top-1 against the bf16 reference on wiki.test.raw's
first windows, and KL on a second text that shares nothing with the calibration text: MMLU test questions
(the subjects present in ../shared/data/mmlu/test, concatenated as plain text).
"""
import argparse
import csv
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality_table import make_moe  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
U2_ATTN4 = {"name": "uniform-2-attn4", "default": {"bits": 2, "group_size": 64},
            "rules": [{"roles": ["attn_q", "attn_k", "attn_v", "attn_o"], "bits": 4}]}


def run(*args):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(map(str, args))}\n{r.stderr}")
    return r.stdout


def mmlu_text(out: Path):
    parts = []
    for f in sorted((DATA / "mmlu" / "test").glob("*.csv")):
        with f.open() as fh:
            for row in csv.DictReader(fh):
                parts.append(row["question"] + " " + " ".join(row[f"choice{i}"] for i in range(4)))
    out.write_text("\n".join(parts) + "\n")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "models" / "smollm2-135m-instruct"))
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--calib-windows", type=int, default=16, help="calibration windows of --ctx tokens")
    ap.add_argument("--work", default=str(ROOT / ".cache" / "calib15" / "table"))
    ap.add_argument("--tqlm", default=str(ROOT / "build" / "tqlm"))
    ap.add_argument("--only", default="dense,moe", help="dense, moe or both")
    ap.add_argument("--out", default=None, help="also write the markdown table here")
    a = ap.parse_args()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    wiki = DATA / "wikitext-2" / "wiki.test.raw"
    second = mmlu_text(work / "mmlu-questions.txt")
    (work / "u2-attn4.json").write_text(json.dumps(U2_ATTN4))
    keep = work / "keep-bf16.json"
    keep.write_text(json.dumps({"name": "keep-bf16", "rules": [{"keep": "bf16"}]}))

    def ppl(model, data, base=None, save=None):
        args = [a.tqlm, "perplexity", model, "--data", data, "--ctx", a.ctx, "--samples", a.samples, "--json"]
        args += ["--kl-base", base] if base else []
        args += ["--save-logits", save] if save else []
        return json.loads(run(*args))

    def size(model):
        t = json.loads(run(a.tqlm, "inspect", model, "--json"))["total"]
        return t["bytes"], t["bpw"]

    def convert(src, dst, *args):
        if not dst.exists():
            t0 = time.time()
            out = run(a.tqlm, "convert", src, dst, *args)
            print(f"  {dst.name}: {time.time() - t0:.0f} s {out.strip().splitlines()[-1]}", flush=True)
        return dst

    rows = []

    def evaluate(label, model, bases):
        b, bpw = size(model)
        r1 = ppl(model, wiki, base=bases[0])
        r2 = ppl(model, second, base=bases[1])
        rows.append((label, b, bpw, r1["ppl"], r1["kl_mean"], r1["top1_agreement"], r2["kl_mean"]))
        print(rows[-1], flush=True)

    ref = convert(a.model, work / "ref-bf16", "--policy", keep)
    models = []
    if "dense" in a.only:
        models.append(("SmolLM2", ref, ["uniform-3", work / "u2-attn4.json", "config-i-dense"], "config-i-dense"))
    if "moe" in a.only:
        moe = work / "moe-bf16"
        if not moe.exists():
            make_moe(ref, moe)
        models.append(("MoE SmolLM2", moe, ["uniform-3", work / "u2-attn4.json", "config-i"], "config-i"))
    for name, src, policies, budget_policy in models:
        tag = src.name
        stats = work / f"{tag}.stats"
        if not stats.exists():
            run(a.tqlm, "calibrate", src, "--data", wiki, "--start", "0.5", "--ctx", a.ctx, "--windows",
                a.calib_windows, "-o", stats)
        bases = [work / f"{tag}.wiki.kl", work / f"{tag}.mmlu.kl"]
        r1 = ppl(src, wiki, save=bases[0])
        ppl(src, second, save=bases[1])
        rows.append((f"{name} bf16 (reference)", *size(src), r1["ppl"], 0.0, 1.0, 0.0))
        for pol in policies:
            pname = Path(str(pol)).stem if str(pol).endswith(".json") else str(pol)
            d = convert(src, work / f"{tag}-{pname}-rtn", "--policy", pol)
            evaluate(f"{name} {pname} RTN", d, bases)
            d = convert(src, work / f"{tag}-{pname}-cal", "--policy", pol, "--stats", stats)
            evaluate(f"{name} {pname} calibrated", d, bases)
        budget = size(work / f"{tag}-{budget_policy}-rtn")[0]
        for mode, extra in (("RTN", ["--rtn"]), ("calibrated", [])):
            d = convert(src, work / f"{tag}-auto-{mode}", "--policy", "auto", "--size", budget, "--stats", stats,
                        *extra, "--policy-out", work / f"{tag}-auto-{mode}.policy.json")
            evaluate(f"{name} auto at {budget_policy}'s bytes, {mode}", d, bases)

    lines = [f"SmolLM2-135M-Instruct and its exact-MoE split; calibration: `tqlm calibrate --start 0.5` on the second "
             f"half of wiki.test.raw ({a.calib_windows} windows of {a.ctx}); PPL, KL and top-1 on the FIRST "
             f"{a.samples} windows of {a.ctx} of wiki.test.raw; KL (MMLU) on {a.samples} windows of MMLU test "
             f"questions (text unrelated to the calibration text). KL vs the bf16 reference of the same "
             f"architecture (`bench/calib_table.py --ctx {a.ctx} --samples {a.samples}`)", "",
             "| weights | size (MiB) | bpw | PPL | KL (wiki) | top-1 (wiki) | KL (MMLU) |", "|---|---|---|---|---|---|---|"]
    for name, b, bpw, p, kl, top1, kl2 in rows:
        lines.append(f"| {name} | {b / 2**20:.1f} | {bpw:.3f} | {p:.3f} | {kl:.4f} | {100 * top1:.2f}% | {kl2:.4f} |")
    text = "\n".join(lines)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
