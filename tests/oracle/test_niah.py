"""`tqlm niah` on the default model (SmolLM2-135M-Instruct) and wiki.test.raw: the prompts are checked
independently of tqlm (HF `tokenizers` for token counts and the needle's depth, the haystack is consecutive
text of the file), the records are well-formed, the prompts do not depend on the KV mode, and bad input is a
clear error. Two 1024-token trials in bf16 and one in f32 (about 20 s on 2 cores)."""
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from conftest import ROOT

MODEL = ROOT / "models" / "smollm2-135m-instruct"
DATA = Path("/work/shared/data/wikitext-2/wiki.test.raw")
if not DATA.exists():
    DATA = ROOT.parent / "shared" / "data" / "wikitext-2" / "wiki.test.raw"
QUESTION = "What is the special magic number mentioned in the text? Answer with the number only."
RECORD = {"context_target": int, "prompt_tokens": int, "depth": float, "needle": str, "value": str, "answer": str, "trial": int, "kind": str,
          "pass": bool, "pass_contains": bool, "pass_exact": bool, "seconds": float, "prefill_seconds": float, "needle_depth": float, "needle_token": int,
          "needle_tokens": int, "haystack_begin_token": int, "haystack_end_token": int, "needle_char": int,
          "haystack_offset": int, "haystack_chars": int, "kv_tokens": int, "kv_bytes": int}


@pytest.fixture(scope="module")
def model_dir():
    if not (MODEL / "config.json").exists():
        subprocess.run(["bash", str(ROOT / "scripts" / "get-default-model.sh"), str(MODEL)], check=True)
    return MODEL


def niah(tqlm_bin, model_dir, *args, check=True):
    r = subprocess.run([tqlm_bin, "niah", str(model_dir), "--haystack", str(DATA), "-t", "2", *map(str, args)],
                       capture_output=True, text=True)
    if check:
        assert r.returncode == 0, r.stderr
    return r


@pytest.fixture(scope="module")
def bf16_run(tqlm_bin, model_dir):
    r = niah(tqlm_bin, model_dir, "--contexts", 1024, "--depths", "10,90", "--json", "--verbose")
    return json.loads(r.stdout), r.stderr


def test_prompts_and_records(bf16_run, model_dir):
    j, stderr = bf16_run
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    raw = DATA.read_bytes()
    text = raw.decode("utf-8")
    assert j["kv"] == "bf16" and j["kv_mode"] == "bf16" and j["kv_bytes_per_token"] > 0
    assert [t["depth"] for t in j["trials"]] == [10, 90]
    for t in j["trials"]:
        for key, typ in RECORD.items():
            assert isinstance(t[key], typ), (key, t[key])
        assert t["context_target"] == 1024
        assert 0.9 * 1024 <= t["prompt_tokens"] <= 1024 - j["max_tokens"]
        assert t["needle"] == f"The special magic number is {t['value']}." and len(t["value"]) == 5
        assert t["kv_tokens"] == t["prompt_tokens"] and t["kv_bytes"] >= t["kv_tokens"] * j["kv_bytes_per_token"]
        assert 0 < t["prefill_seconds"] <= t["seconds"]

        # The rendered prompt, tokenized by HF tokenizers: same length as tqlm's prompt.
        p = t["prompt"]
        ids = tok.encode(p, add_special_tokens=False).ids
        assert len(ids) == t["prompt_tokens"]
        assert p.count(t["needle"]) == 1 and p.count(t["value"]) == 1 and p.find(t["needle"]) == t["needle_char"]
        # The haystack sits between the chat template's user header and the question.
        begin = p.index("<|im_start|>user\n") + len("<|im_start|>user\n")
        end = p.index("\n\n" + QUESTION)
        hay = p[begin:end]
        # Without the needle it is consecutive text of the file, starting at haystack_offset.
        # (the needle is followed by one added space unless the text after it starts with whitespace)
        pre, post = hay.split(t["needle"])
        plain = next(c.strip() for c in (pre + post, pre + post[1:]) if c.strip() in text)
        assert len(plain) >= t["haystack_chars"] - 4
        assert raw.find(plain.encode(), t["haystack_offset"]) - t["haystack_offset"] in range(0, 4)  # bytes
        # Depth: haystack tokens before the needle / haystack tokens, counted by HF tokenizers.
        n = lambda s: len(tok.encode(s, add_special_tokens=False).ids)
        needle_at = p.index(t["needle"])
        before = n(p[:needle_at]) - n(p[:begin])
        needle_len = n(p[:needle_at + len(t["needle"])]) - n(p[:needle_at])
        depth = before / (n(p[:end]) - n(p[:begin]) - needle_len)
        assert abs(depth - t["depth"] / 100) <= 0.10, (depth, t["depth"])
        assert abs(depth - t["needle_depth"]) <= 0.01
    s = j["summary"]
    assert s["total"] == 2 and s["passed"] == sum(t["pass"] for t in j["trials"])
    assert s["by_context"][0]["context_target"] == 1024 and s["by_context"][0]["total"] == 2
    assert stderr.count("niah ") >= 2 and "depth 90%" in stderr  # one progress line per trial
    print("\nbf16 1024:", [(t["depth"], t["value"], t["answer"], t["pass"], round(t["seconds"], 1))
                           for t in j["trials"]])
    # SmolLM2-135M finds the needle at 1K in bf16 (both depths with seed 0 when this was written).
    assert s["passed"] >= 1


def test_prompt_independent_of_kv_mode(bf16_run, tqlm_bin, model_dir):
    j16, _ = bf16_run
    j32 = json.loads(niah(tqlm_bin, model_dir, "--contexts", 1024, "--depths", 10, "--kv", "f32", "--json").stdout)
    a, b = j16["trials"][0], j32["trials"][0]
    for key in ("prompt_tokens", "value", "needle_token", "haystack_offset", "haystack_chars"):
        assert a[key] == b[key], key
    assert j32["kv_mode"] == "f32" and j32["kv_bytes_per_token"] == 2 * j16["kv_bytes_per_token"]
    print("\nf32 1024:", b["answer"], b["pass"])


def test_dry_run_fills_long_contexts(tqlm_bin, model_dir):
    j = json.loads(niah(tqlm_bin, model_dir, "--contexts", "2048,8192", "--depths", "0,50,100", "--dry-run",
                        "--json").stdout)
    assert j["dry_run"] and len(j["trials"]) == 6
    for t in j["trials"]:
        assert 0.98 * t["context_target"] <= t["prompt_tokens"] <= t["context_target"] - j["max_tokens"]
        assert abs(t["needle_depth"] - t["depth"] / 100) <= 0.03
        assert t["answer"] == "" and t["kv_bytes"] == 0


def test_errors(tqlm_bin, model_dir, tmp_path):
    r = niah(tqlm_bin, model_dir, "--contexts", "1024,16384", check=False)
    assert r.returncode != 0 and "max_position_embeddings" in r.stderr and "8192" in r.stderr
    r = niah(tqlm_bin, model_dir, "--contexts", 4096, "--ctx", 2048, check=False)
    assert r.returncode != 0 and "--ctx" in r.stderr and "2048" in r.stderr
    r = niah(tqlm_bin, model_dir, "--depths", "10,120", check=False)
    assert r.returncode != 0 and "--depths" in r.stderr and "120" in r.stderr
    missing = tmp_path / "no-such-haystack.txt"
    r = subprocess.run([tqlm_bin, "niah", str(model_dir), "--haystack", str(missing)], capture_output=True, text=True)
    assert r.returncode != 0 and str(missing) in r.stderr
    short = tmp_path / "short.txt"
    short.write_text(DATA.read_text(encoding="utf-8")[:3000], encoding="utf-8")
    r = subprocess.run([tqlm_bin, "niah", str(model_dir), "--haystack", str(short), "--contexts", "1024"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and str(short) in r.stderr and "too short" in r.stderr


NEEDLES = [
    {"name": "number", "sentence": "The special magic number is {value}.",
     "question": "What is the special magic number mentioned in the text? Answer with the number only.", "digits": 5},
    {"name": "city", "sentence": "The secret city of the treasure is {value}.",
     "question": "What is the secret city of the treasure mentioned in the text? Answer with the city only.",
     "values": ["Reykjavik", "Kathmandu", "Ulaanbaatar", "Timbuktu"]},
]


def contains_rule(answer, value):
    plain = re.sub(r"(?<=\d),(?=\d)", "", answer)
    return value.lower() in plain.lower()


def exact_rule(answer, value):
    a = answer.strip(" \t\r\n\"'")
    if a.endswith("."):
        a = a[:-1]
    return a.strip(" \t\r\n\"'").lower() == value.lower()


def test_grid_needles_trials_scores_and_heatmap(tqlm_bin, model_dir, tmp_path):
    """Several needles cycled over --trials, both scores computed by the documented rules (written again here),
    and the heatmap: a valid SVG with one cell per (depth, context) showing the cell's passes."""
    nf = tmp_path / "needles.json"
    nf.write_text(json.dumps(NEEDLES))
    svg = tmp_path / "grid.svg"
    r = niah(tqlm_bin, model_dir, "--contexts", "512,1024", "--depths", "25,75", "--trials", 2, "--needles", nf,
             "--svg", svg, "--json")
    j = json.loads(r.stdout)
    assert j["trials_per_cell"] == 2 and j["score"] == "contains" and len(j["trials"]) == 8
    hay = DATA.read_text(encoding="utf-8")
    for i, t in enumerate(j["trials"]):
        assert t["trial"] == i % 2 and t["kind"] == NEEDLES[i % 2]["name"]
        assert t["needle"] == NEEDLES[i % 2]["sentence"].replace("{value}", t["value"])
        if t["kind"] == "city":
            assert t["value"] in NEEDLES[1]["values"]
        else:
            assert len(t["value"]) == 5 and t["value"] not in hay
        assert t["pass_contains"] == contains_rule(t["answer"], t["value"])
        assert t["pass_exact"] == exact_rule(t["answer"], t["value"])
        assert t["pass"] == t["pass_contains"]
    # the two trials of a cell use different haystack offsets
    assert j["trials"][0]["haystack_offset"] != j["trials"][1]["haystack_offset"]
    root = ET.parse(svg).getroot()
    ns = "{http://www.w3.org/2000/svg}"
    cells = [e for e in root.iter(ns + "rect")][1:]  # the first rect is the background
    assert len(cells) == 4
    texts = [e.text for e in root.iter(ns + "text")]
    for c in range(2):
        for d in range(2):
            ok = sum(t["pass"] for t in j["trials"][(c * 2 + d) * 2:(c * 2 + d) * 2 + 2])
            assert f"{ok}/2" in texts
    if shutil.which("rsvg-convert"):
        assert svg.with_suffix(".png").stat().st_size > 1000


@pytest.mark.parametrize("bad, words", [
    ([], "a list of 1 to 1000"),
    ([{"sentence": "no placeholder", "question": "q?", "digits": 5}], "{value} exactly once"),
    ([{"sentence": "x {value}", "question": "q?"}], "either 'digits' or 'values'"),
    ([{"sentence": "x {value}", "question": "q?", "digits": 40}], "'digits' must be an integer in [1, 18]"),
    ([{"sentence": "x {value}", "question": "", "values": ["a"]}], "'question' must be a non-empty string"),
    ([{"sentence": "x {value}", "question": "q", "values": [1]}], "'values' entries"),
])
def test_needles_file_errors(tqlm_bin, model_dir, tmp_path, bad, words):
    nf = tmp_path / "needles.json"
    nf.write_text(json.dumps(bad))
    r = niah(tqlm_bin, model_dir, "--contexts", 512, "--needles", nf, "--dry-run", check=False)
    assert r.returncode != 0 and words in r.stderr and str(nf) in r.stderr, r.stderr
