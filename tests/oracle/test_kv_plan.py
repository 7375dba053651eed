"""`tqlm kv-plan`: KV cache bytes per mode from config.json alone, checked against an independent Python
computation of the stored formats (codes + fp16 norm/scale per vector, bf16 boundary layers)."""
import json
import math
import re
import subprocess

import pytest

from conftest import ROOT

MINIMAX = ROOT / "tests" / "fixtures" / "configs" / "minimax-m2.json"
SMOLLM = ROOT / "models" / "smollm2-135m-instruct" / "config.json"
LLAMA = ROOT / ".cache" / "fixtures" / "llama-bf16" / "config.json"
DEFAULT_MODES = ["bf16", "q8", "turbo8v4", "turbo4", "turbo4v3", "turbo4v2", "turbo3", "turbo3v2", "turbo2"]
DEFAULT_CONTEXTS = [8192, 16384, 32768, 65536, 131072]


def run(tqlm_bin, *args):
    return subprocess.run([tqlm_bin, "kv-plan", *map(str, args)], capture_output=True, text=True)


def plan(tqlm_bin, *args):
    r = run(tqlm_bin, *args, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def side_bytes(fmt, hd):
    """Bytes per token per kv head for one side (keys or values) stored as fmt."""
    if fmt == "bf16":
        return 2 * hd
    if fmt == "q8":
        return hd + 2
    bits = int(fmt[len("turbo"):])
    rd = 1 << (hd - 1).bit_length()  # rotation length: head_dim rounded up to a power of two
    return math.ceil(rd * bits / 8) + 2


def mode_sides(mode):
    if mode in ("bf16", "q8"):
        return mode, mode
    m = re.fullmatch(r"turbo(\d)(?:v(\d))?", mode)
    return f"turbo{m[1]}", f"turbo{m[2] or m[1]}"


def expected_bpt(cfg, mode, boundary=2):
    layers, kv = cfg["num_hidden_layers"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    kf, vf = mode_sides(mode)
    b = 0 if mode == "bf16" else min(boundary, layers // 2)
    full = 2 * (2 * hd)
    return kv * (2 * b * full + (layers - 2 * b) * (side_bytes(kf, hd) + side_bytes(vf, hd)))


def check_modes(p, cfg, boundary=2, mem=36 * 10**9):
    assert [m["mode"] for m in p["modes"]] == DEFAULT_MODES
    bf16 = expected_bpt(cfg, "bf16")
    for m in p["modes"]:
        bpt = expected_bpt(cfg, m["mode"], boundary)
        assert m["bytes_per_token"] == bpt, m["mode"]
        assert m["real_ratio"] == pytest.approx(bf16 / bpt), m["mode"]
        assert m["max_context"] == mem // bpt, m["mode"]
        assert m["totals"] == {str(c): c * bpt for c in DEFAULT_CONTEXTS}, m["mode"]


def test_minimax_text_and_json(tqlm_bin):
    r = run(tqlm_bin, MINIMAX)
    assert r.returncode == 0, r.stderr
    assert "253,952" in r.stdout and "62,784" in r.stdout and "turbo4/turbo2" in r.stdout
    assert "5.33x" in r.stdout and "4.04x" in r.stdout
    assert "141,759" in r.stdout  # floor(36e9 / 253952)
    cfg = json.loads(MINIMAX.read_text())
    p = plan(tqlm_bin, MINIMAX)
    assert (p["model_type"], p["layers"], p["kv_heads"], p["head_dim"]) == ("minimax_m2", 62, 8, 128)
    check_modes(p, cfg)
    by = {m["mode"]: m for m in p["modes"]}
    assert by["bf16"]["bytes_per_token"] == 253952 and by["turbo4v2"]["bytes_per_token"] == 62784
    assert (by["turbo4v2"]["k_format"], by["turbo4v2"]["v_format"]) == ("turbo4", "turbo2")
    assert by["turbo4v2"]["nominal_ratio"] == pytest.approx(16 / 3)


def test_smollm_directory(tqlm_bin):
    if not SMOLLM.exists():
        pytest.skip(f"{SMOLLM} not present")
    check_modes(plan(tqlm_bin, SMOLLM.parent), json.loads(SMOLLM.read_text()))


def test_head_dim_80_pads_rotation(tqlm_bin, tmp_path):
    cfg = json.loads(LLAMA.read_text()) if LLAMA.exists() else {
        "model_type": "llama", "num_hidden_layers": 3, "num_key_value_heads": 2, "rms_norm_eps": 1e-5,
        "vocab_size": 512, "intermediate_size": 256, "rope_theta": 10000.0}
    cfg.update(hidden_size=320, num_attention_heads=4, num_hidden_layers=6)  # hd = 80 -> rotation 128
    cfg.pop("head_dim", None)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    p = plan(tqlm_bin, tmp_path)
    assert p["head_dim"] == 80
    check_modes(p, cfg)
    by = {m["mode"]: m for m in p["modes"]}
    assert by["turbo4"]["bytes_per_token"] == 2 * (4 * 2 * 160 + 2 * 2 * (64 + 2))  # 2 kv heads, 4 bf16 layers
    cfg["head_dim"] = 80  # explicit head_dim wins over hidden_size / heads
    cfg["hidden_size"] = 128
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    check_modes(plan(tqlm_bin, tmp_path / "config.json"), cfg)


@pytest.mark.parametrize("boundary", [0, 1, 100])
def test_boundary(tqlm_bin, boundary):
    cfg = json.loads(MINIMAX.read_text())
    p = plan(tqlm_bin, MINIMAX, "--kv-boundary", boundary)
    check_modes(p, cfg, boundary)
    assert p["boundary_effective"] == min(boundary, 31)
    if boundary == 100:  # capped at layers // 2: every layer bf16
        assert all(m["bytes_per_token"] == 253952 for m in p["modes"])


@pytest.mark.parametrize("mem,nbytes", [("36GB", 36 * 10**9), ("36G", 36 * 10**9), ("36GiB", 36 * 2**30),
                                        ("1.5GB", 1_500_000_000), ("512MiB", 512 * 2**20), ("123456789", 123456789)])
def test_mem_units(tqlm_bin, mem, nbytes):
    p = plan(tqlm_bin, MINIMAX, "--mem", mem)
    assert p["mem_bytes"] == nbytes
    check_modes(p, json.loads(MINIMAX.read_text()), mem=nbytes)


def test_modes_and_contexts(tqlm_bin):
    p = plan(tqlm_bin, MINIMAX, "--modes", "turbo4v2,f32", "--contexts", "8K,1000,1M")
    assert [m["mode"] for m in p["modes"]] == ["turbo4v2", "f32"]
    assert p["modes"][0]["totals"] == {"8192": 8192 * 62784, "1000": 1000 * 62784, "1048576": 1048576 * 62784}
    assert p["modes"][1]["bytes_per_token"] == 2 * 253952
    r = run(tqlm_bin, MINIMAX, "--modes", "bf16", "--contexts", "1000")
    assert r.returncode == 0 and "1,000 GB" in r.stdout


@pytest.mark.parametrize("args,needle", [
    (["/nonexistent/dir"], "/nonexistent/dir"),
    (["--mem", "abc"], "abc"),
    (["--mem", "5XB"], "XB"),
    (["--modes", "turbo7"], "turbo7"),
    (["--modes", "bf17"], "bf17"),
    (["--contexts", "8Q"], "8Q"),
])
def test_errors(tqlm_bin, args, needle):
    a = args if args[0].startswith("/") else [MINIMAX, *args]
    r = run(tqlm_bin, *a)
    assert r.returncode != 0 and needle in r.stderr, r.stderr


def test_bad_config_files(tqlm_bin, tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    r = run(tqlm_bin, tmp_path)
    assert r.returncode != 0 and str(bad) in r.stderr and "JSON" in r.stderr
    bad.write_text(json.dumps({"model_type": "nosuch_arch", "hidden_size": 8}))
    r = run(tqlm_bin, bad)
    assert r.returncode != 0 and str(bad) in r.stderr and "nosuch_arch" in r.stderr
    r = run(tqlm_bin, tmp_path / "missing.json")
    assert r.returncode != 0 and "missing.json" in r.stderr
