"""`tqlm report --quick` on the default model end to end: every file is written, the SVG plots parse, the PNG copies
exist where rsvg-convert does, and its figures agree with the single commands run on their own (perplexity of the
same windows, KV bytes per token from kv-plan, MMLU question counts), so the report wires the steps as documented."""
import json
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from conftest import ROOT

MODEL = ROOT / "models" / "smollm2-135m-instruct"
WIKI = ROOT.parent / "shared" / "data" / "wikitext-2" / "wiki.test.raw"


@pytest.fixture(scope="module")
def report(tqlm_bin, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    calib = out / "kv-calib.json"  # a small calibration (2- and 4-bit sensitivities) for the auto mode
    subprocess.run([tqlm_bin, "kv-calibrate", str(MODEL), "--data", str(WIKI), "--tokens", "512", "--window", "512",
                    "--kl-tokens", "64", "--bits", "2,4", "--out", str(calib)], check=True, capture_output=True)
    r = subprocess.run([tqlm_bin, "report", str(MODEL), "--quick", "--kv", "bf16,turbo4v2,auto:3s", "--kv-calib",
                        str(calib), "-o", str(out)], capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stderr
    return out, json.loads((out / "report.json").read_text()), r.stderr


def test_a_mode_without_its_calibration_fails_before_any_work(tqlm_bin, tmp_path):
    r = subprocess.run([tqlm_bin, "report", str(MODEL), "--quick", "--kv", "bf16,auto:3", "-o", str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "calib" in r.stderr and "report: perplexity" not in r.stderr, r.stderr


def test_files_and_plots(report):
    out, j, stderr = report
    for step in ("inspect", "perplexity", "mmlu", "niah", "bench", "plots"):
        assert f"report: {step}" in stderr
    md = (out / "report.md").read_text()
    # "auto:3s" is written as niah-auto_3s (no ':' in file names or links)
    for name in ("perplexity-vs-bpw", "kv-bytes", "speed-vs-depth", "niah-bf16", "niah-turbo4v2", "niah-auto_3s"):
        ET.parse(out / f"{name}.svg")  # well-formed
        assert f"({name}.svg)" in md
        if shutil.which("rsvg-convert"):
            assert (out / f"{name}.png").stat().st_size > 1000
    assert not (out / "reference.logits").exists()  # the temporary reference is removed
    assert [r["kv"] for r in j["mmlu"]["runs"]] == ["bf16", "turbo4v2", "auto:3s"]
    assert all(r["n"] == 60 for r in j["mmlu"]["runs"])
    assert all(r["total"] == 6 for r in j["niah"])
    assert all(len(r["points"]) == 2 and r["points"][0]["decode_tps"] > 0 for r in j["speed"]["runs"])


def test_figures_match_the_single_commands(report, tqlm_bin):
    out, j, _ = report
    calib = str(out / "kv-calib.json")
    runs = {r["kv"]: r for r in j["perplexity"]["runs"]}
    assert runs["bf16"]["kl"] == 0 and runs["turbo4v2"]["kl"] > 0 and runs["auto:3s"]["kl"] > 0
    for kv in ("turbo4v2", "auto:3s"):  # the calibration reaches the auto mode as it does on the command line
        p = subprocess.run([tqlm_bin, "perplexity", str(MODEL), "--data", str(WIKI), "--ctx", "512", "--samples", "4",
                            "--kv", kv, "--kv-calib", calib, "--json"], capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stderr
        assert abs(json.loads(p.stdout)["ppl"] - runs[kv]["ppl"]) < 1e-9, kv
    k = json.loads(subprocess.run([tqlm_bin, "kv-plan", str(MODEL), "--modes", "bf16,turbo4v2,auto:3s", "--kv-calib",
                                   calib, "--json"], capture_output=True, text=True, check=True).stdout)
    plan = {m["mode"]: m["bytes_per_token"] for m in k["modes"]}
    for r in j["kv_plan"]:
        assert r["bytes_per_token"] == plan[r["kv"]]
    assert j["inspect"]["total"]["params"] == 134515008
