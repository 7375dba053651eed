"""tqlm's tokenizer against HF `tokenizers` (the oracle): ids of encode(text, add_special_tokens) and
text of decode(ids, skip_special_tokens) must be identical. The oracle tokenizers are trained offline
(tokenizer_fixtures.py); the real default model's tokenizer.json is used too when it can be produced."""
import json
import os
import pathlib
import random
import subprocess
import tempfile
import time

import pytest
from tokenizers import Tokenizer

import tokenizer_fixtures as fx
from conftest import ROOT

REAL_MODEL = ROOT / "models" / "smollm2-135m-instruct"
GET_MODEL = ROOT / "scripts" / "get-default-model.sh"
ALL_KINDS = fx.KINDS + ["smollm2-135m-instruct"]


def _real_tokenizer_json():
    path = REAL_MODEL / "tokenizer.json"
    if not path.exists() and GET_MODEL.exists():
        subprocess.run(["bash", str(GET_MODEL)], cwd=ROOT, check=True, timeout=1800)
    if not path.exists():
        pytest.skip(f"{path} missing and scripts/get-default-model.sh not available yet")
    return path


@pytest.fixture(scope="module", params=ALL_KINDS)
def tok(request):
    """(tokenizer.json path, HF oracle Tokenizer)."""
    path = _real_tokenizer_json() if request.param == "smollm2-135m-instruct" else fx.tokenizer_path(request.param)
    return str(path), Tokenizer.from_file(str(path))


def _run(tqlm_bin, args, data):
    with tempfile.NamedTemporaryFile("wb", suffix=".txt", delete=False) as f:
        f.write(data)
        name = f.name
    try:
        return subprocess.run([tqlm_bin, "tokenize", *args, "--file", name], capture_output=True, timeout=120)
    finally:
        os.unlink(name)


def tqlm_encode(tqlm_bin, path, text, add_special_tokens):
    args = [path, "--json"] + (["--add-special-tokens"] if add_special_tokens else [])
    r = _run(tqlm_bin, args, text.encode("utf-8"))
    assert r.returncode == 0, r.stderr.decode()
    return json.loads(r.stdout)


def tqlm_decode(tqlm_bin, path, ids, skip_special_tokens):
    args = [path, "--decode", "--json"] + (["--skip-special-tokens"] if skip_special_tokens else [])
    r = _run(tqlm_bin, args, json.dumps(ids).encode())
    assert r.returncode == 0, r.stderr.decode()
    return json.loads(r.stdout)


def assert_same_ids(got, want, hf, label):
    if got == want:
        return
    n = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
    ctx = slice(max(0, n - 3), n + 4)
    pytest.fail(f"{label}: ids differ at {n} (lengths {len(got)} vs {len(want)}): "
                f"tqlm {[hf.id_to_token(i) for i in got[ctx]]} vs HF {[hf.id_to_token(i) for i in want[ctx]]}")


def test_wiki_ids_identical(tqlm_bin, tok):
    path, hf = tok
    text = fx._read_wiki()
    want = hf.encode(text, add_special_tokens=False).ids
    got = tqlm_encode(tqlm_bin, path, text, False)
    assert_same_ids(got, want, hf, "wiki.test.raw")
    print(f"{pathlib.Path(path).parent.name}: {len(got)} ids identical on wiki.test.raw")


@pytest.mark.parametrize("add", [False, True])
def test_torture_ids_identical(tqlm_bin, tok, add):
    path, hf = tok
    assert_same_ids(tqlm_encode(tqlm_bin, path, fx.TORTURE, add), hf.encode(fx.TORTURE, add_special_tokens=add).ids,
                    hf, "torture text")


def test_torture_lines_identical(tqlm_bin, tok):
    # Each line alone (and with its leading/trailing whitespace), so line starts are exercised too.
    path, hf = tok
    lines = fx.TORTURE.splitlines(keepends=True)
    texts = lines + [" " + l.strip() for l in lines] + [l.rstrip("\n") + "  " for l in lines]
    for t in texts:
        assert_same_ids(tqlm_encode(tqlm_bin, path, t, True), hf.encode(t, add_special_tokens=True).ids, hf, repr(t))


WHITESPACE_PROBES = ["x \u180ey", "x \x85y", "x \u200by", "x \u2028y", "a\u3000\u3000 b", "\u00a0\u00a0x",
                     "x \u180e\u180e\n", "tab\t\t\u0085 end  ", "\r\n\r\n  x", "  \n"]


def test_pre_tokenized_pieces_identical(tqlm_bin, tok):
    # Pieces are compared directly: a wrong split is often hidden in the ids when no merge crosses it.
    path, hf = tok
    texts = fx.TORTURE.splitlines(keepends=True) + WHITESPACE_PROBES + [fx.TORTURE]
    for t in texts:
        norm = hf.normalizer.normalize_str(t) if hf.normalizer else t
        want = [p for p, _ in hf.pre_tokenizer.pre_tokenize_str(norm)] if hf.pre_tokenizer else [norm]
        r = _run(tqlm_bin, [path, "--pieces"], t.encode("utf-8"))
        assert r.returncode == 0, r.stderr.decode()
        assert json.loads(r.stdout) == [p for p in want if p], repr(t)


def test_nfc_matches_hf(tqlm_bin, tmp_path):
    # Random strings over every code point that has a canonical decomposition or a combining class, plus
    # Hangul jamo and ASCII, through an NFC-only tokenizer: tqlm's pieces must equal HF's normalize_str.
    import unicodedata
    j = json.loads(fx.tokenizer_path("qwen2").read_text(encoding="utf-8"))
    j["pre_tokenizer"] = None
    j["added_tokens"] = []
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(j), encoding="utf-8")
    hf = Tokenizer.from_file(str(path))
    pool = [chr(c) for c in range(0x80, 0x30000) if not 0xD800 <= c < 0xE000 and
            (unicodedata.decomposition(chr(c)) and not unicodedata.decomposition(chr(c)).startswith("<")
             or unicodedata.combining(chr(c)))]
    pool += [chr(c) for c in range(0x1100, 0x1200)] + list("abcdeoAEOU ") * 40
    rng = random.Random(7)
    for _ in range(4):
        text = "".join(rng.choice(pool) for _ in range(20000))
        r = _run(tqlm_bin, [str(path), "--pieces"], text.encode("utf-8"))
        assert r.returncode == 0, r.stderr.decode()
        got, want = json.loads(r.stdout)[0], hf.normalizer.normalize_str(text)
        if got != want:
            n = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
            pytest.fail(f"NFC differs at {n}: tqlm {got[n - 3:n + 3]!r} vs HF {want[n - 3:n + 3]!r}")


@pytest.mark.parametrize("add", [False, True])
def test_special_token_texts_identical(tqlm_bin, tok, add):
    path, hf = tok
    for t in fx.SPECIAL_TEXTS:
        assert_same_ids(tqlm_encode(tqlm_bin, path, t, add), hf.encode(t, add_special_tokens=add).ids, hf, repr(t))


@pytest.mark.parametrize("skip", [False, True])
def test_decode_identical(tqlm_bin, tok, skip):
    path, hf = tok
    seqs = [hf.encode(fx.TORTURE, add_special_tokens=True).ids]
    seqs += [hf.encode(t, add_special_tokens=True).ids for t in fx.SPECIAL_TEXTS]
    seqs.append(hf.encode(fx._read_wiki()[:20000], add_special_tokens=True).ids)
    rng = random.Random(1234)
    n = hf.get_vocab_size()
    seqs += [[rng.randrange(n) for _ in range(rng.randrange(1, 40))] for _ in range(30)]
    for ids in seqs:
        want = hf.decode(ids, skip_special_tokens=skip)
        got = tqlm_decode(tqlm_bin, path, ids, skip)
        assert got == want, f"decode({ids[:20]}...)"


def test_decode_plain_id_list(tqlm_bin, tok):
    path, hf = tok
    ids = hf.encode("Hello world, don't panic!", add_special_tokens=False).ids
    r = _run(tqlm_bin, [path, "--decode"], "\n".join(map(str, ids)).encode())
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode() == hf.decode(ids)


@pytest.mark.parametrize("bad", [b"abc\xff", b"caf\xc3", b"\xed\xa0\x80 surrogate", b"ok \xc0\xaf overlong",
                                 b"\xf4\x90\x80\x80 too big", b"\x80 lone continuation"])
def test_invalid_utf8_is_a_clear_error(tqlm_bin, bad):
    r = _run(tqlm_bin, [str(fx.tokenizer_path("llama3"))], bad)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert b"invalid UTF-8" in r.stderr


def test_plain_output_one_id_per_line(tqlm_bin):
    path = str(fx.tokenizer_path("qwen2"))
    r = subprocess.run([tqlm_bin, "tokenize", path, "--text", "<|im_start|>user\nhi"], capture_output=True)
    assert r.returncode == 0, r.stderr.decode()
    want = Tokenizer.from_file(path).encode("<|im_start|>user\nhi", add_special_tokens=False).ids
    assert [int(x) for x in r.stdout.split()] == want


def test_encode_speed(tqlm_bin):
    # Whole wiki.test.raw (1.29 MB) on one core, load included: well under 2 s.
    for kind in ("llama3", "llama2"):
        path = str(fx.tokenizer_path(kind))
        t0 = time.perf_counter()
        r = subprocess.run([tqlm_bin, "tokenize", path, "--file", str(fx.WIKI), "--json"], capture_output=True,
                           env={**os.environ, "OMP_NUM_THREADS": "1"})
        dt = time.perf_counter() - t0
        assert r.returncode == 0, r.stderr.decode()
        mb = fx.WIKI.stat().st_size / 1e6
        print(f"{kind}: {mb / dt:.1f} MB/s ({dt:.2f} s)")
        assert dt < 2.0
