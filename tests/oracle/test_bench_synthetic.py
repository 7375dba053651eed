"""`tqlm bench --synthetic minimax-m2`: the checkpoint it writes holds exactly the tensors (names, shapes, dtypes,
bits) that `tqlm convert --dry-run` plans for those middle layers of MiniMax-M2, read back with mlx and loaded by
stock mlx_lm with logits equal to tqlm's; the JSON's bytes per token are the plan's; a checkpoint kept is reused;
without --keep nothing is left behind. Scaled down (--experts 16 --vocab 8192: the same active widths, a checkpoint
of ~0.2 GB) to run in seconds; the prediction's arithmetic is tests/unit/test_layer_prediction.cpp's."""
import json
import subprocess

import mlx.core as mx
import numpy as np
import pytest

from conftest import ROOT
from test_convert_mlx import assert_mlx_lm_agrees, load_weights

CONFIG = ROOT / "tests" / "fixtures" / "configs" / "minimax-m2.json"
EXPERTS, VOCAB, FIRST = 16, 8192, 31  # FIRST: the middle of 62 layers
SCALED = ["--experts", str(EXPERTS), "--vocab", str(VOCAB)]
DTYPES = {"BF16": mx.bfloat16, "F16": mx.float16, "F32": mx.float32}


def bench(tqlm_bin, d, *args, check=True):
    r = subprocess.run([tqlm_bin, "bench", "--synthetic", "minimax-m2", *SCALED, "--dir", str(d), "--contexts",
                        "16,40", "-n", "8", "--json", *args], capture_output=True, text=True, timeout=600)
    if check:
        assert r.returncode == 0, r.stderr
    return r


@pytest.fixture(scope="module")
def plan(tqlm_bin, tmp_path_factory):
    """The 62-layer plan of the scaled-down MiniMax-M2 config (the fixture file, as `tqlm convert` sees it)."""
    cfg = json.loads(CONFIG.read_text())
    cfg["num_local_experts"], cfg["vocab_size"] = EXPERTS, VOCAB
    p = tmp_path_factory.mktemp("plan") / "config.json"
    p.write_text(json.dumps(cfg))
    r = subprocess.run([tqlm_bin, "convert", str(p), "--policy", "config-i", "--dry-run", "--json"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["tensors"]


def layer_tensors(plan, n):
    """The plan's tensors of a checkpoint of n middle layers, renamed as it holds them."""
    out = []
    for t in plan:
        t = dict(t)
        if t["layer"] >= 0:
            if not FIRST <= t["layer"] < FIRST + n:
                continue
            t["module"] = t["module"].replace(f"model.layers.{t['layer']}.", f"model.layers.{t['layer'] - FIRST}.")
            t["layer"] -= FIRST
        out.append(t)
    return out


def read_bytes(tensors, top_k=8):
    """Bytes a decoded token reads: 2-D weights, top_k / E of stacked experts, one embedding row, the LM head."""
    b = 0.0
    for t in tensors:
        if len(t["shape"]) < 2:
            continue
        x = t["bytes"] * (top_k / t["shape"][0] if len(t["shape"]) == 3 else 1)
        b += x / t["shape"][0] if t["role"] == "embed" else x
    return b


def test_checkpoint_is_the_plan_and_loads_in_mlx_lm(tqlm_bin, testapi, plan, tmp_path):
    j = json.loads(bench(tqlm_bin, tmp_path, "--layers", "2", "--keep", "--no-bandwidth").stdout)
    assert j["synthetic"] == "minimax-m2" and j["policy"] == "config-i" and j["scaled"]
    assert j["model"] == {"hidden": 3072, "heads": 48, "kv_heads": 8, "head_dim": 128, "experts": EXPERTS,
                          "top_k": 8, "expert_width": 1536, "vocab": VOCAB, "layers": 62}
    assert j["first_layer"] == FIRST and j["read_bandwidth_gbps"] == 0
    # one layer count predicts too (the layers are timed apart from the rest); no bandwidth, no shares
    assert all(p["layer_ms"] > 0 and p["fixed_ms"] > 0 and p["layer_bandwidth_share"] == 0 and
               p["target_decode_tps"] == 0 for p in j["prediction"])
    (run,) = j["runs"]
    assert run["layers"] == 2 and run["written"] and not run["removed"]
    ckpt = tmp_path / "minimax-m2-config-i-2l-e16-v8192"
    assert run["dir"] == str(ckpt)

    # every tensor as planned: names, shapes, dtypes; the quantization block's bits and group sizes
    mine = layer_tensors(plan, 2)
    expect = {}
    for t in mine:
        if "bits" in t:
            *rows, cols = t["shape"]
            expect[t["module"] + ".weight"] = (mx.uint32, rows + [cols * t["bits"] // 32])
            for s in ("scales", "biases"):
                expect[f"{t['module']}.{s}"] = (mx.bfloat16, rows + [cols // t["group_size"]])
        else:
            name = t["module"] if t["module"].endswith("e_score_correction_bias") else t["module"] + ".weight"
            expect[name] = (DTYPES[t["keep"]], t["shape"])
    w = load_weights(ckpt)
    assert set(w) == set(expect)
    for k, (dt, shape) in expect.items():
        assert w[k].dtype == dt and list(w[k].shape) == shape, k
    assert run["checkpoint_bytes"] == sum(t["bytes"] for t in mine)
    cfg = json.loads((ckpt / "config.json").read_text())
    assert cfg["num_hidden_layers"] == 2 and cfg["quantization"] == cfg["quantization_config"]
    q = cfg["quantization"]
    for t in mine:
        if "bits" in t:
            got = q.get(t["module"], q)
            assert (got["bits"], got["group_size"]) == (t["bits"], t["group_size"]), t["module"]
    assert q["model.layers.0.block_sparse_moe.switch_mlp.gate_proj"]["bits"] == 2  # a middle layer, not a boundary
    # the compiled-in config is the fixture's, but for the layer count, the scaling and the quantization
    changed = {"num_hidden_layers", "attn_type_list", "num_local_experts", "vocab_size", "quantization",
               "quantization_config"}
    fixture = json.loads(CONFIG.read_text())
    assert {k: v for k, v in cfg.items() if k not in changed} == {k: v for k, v in fixture.items() if k not in changed}
    assert cfg["attn_type_list"] == fixture["attn_type_list"][:2]

    # the values: scales 0.02 / (2^b - 1), biases -scale (2^b - 1) / 2, norms 1, routing biases 0
    m = "model.layers.1.block_sparse_moe.switch_mlp.down_proj"
    def bf16(x):
        return mx.array(x, dtype=mx.float32).astype(mx.bfloat16).astype(mx.float32).item()

    scale = np.float32(0.02 / 7)
    assert np.all(np.array(w[m + ".scales"].astype(mx.float32)) == bf16(scale))
    assert np.all(np.array(w[m + ".biases"].astype(mx.float32)) == bf16(-scale * 7 / 2))
    assert np.all(np.array(w["model.layers.0.input_layernorm.weight"].astype(mx.float32)) == 1)
    assert np.all(np.array(w["model.layers.0.block_sparse_moe.e_score_correction_bias"]) == 0)
    codes = np.array(w[m + ".weight"])
    assert 0.45 < np.unpackbits(codes.view(np.uint8)).mean() < 0.55  # random codes

    # bytes each decoded token reads: the plan's, in the JSON and in the bench's own count
    assert run["plan_weight_bytes_per_token"] == pytest.approx(read_bytes(mine), rel=1e-12)
    for p in run["points"]:
        assert p["weight_bytes_per_token"] == pytest.approx(read_bytes(mine), rel=1e-12)
        assert p["decode_tps"] > 0 and p["prefill_tps"] > 0 and p["kv_bytes_per_token"] > 0
    assert j["plan"]["weight_bytes_per_token"] == pytest.approx(read_bytes(plan), rel=1e-12)

    assert_mlx_lm_agrees(testapi, ckpt)  # stock mlx_lm reads it, with tqlm's logits

    # kept: the next run reuses it (and, without --keep, removes it once measured)
    again = json.loads(bench(tqlm_bin, tmp_path, "--layers", "2", "--no-bandwidth", "--keep").stdout)["runs"][0]
    assert not again["written"] and not again["removed"] and (ckpt / "config.json").exists()
    again = json.loads(bench(tqlm_bin, tmp_path, "--layers", "2", "--no-bandwidth").stdout)["runs"][0]
    assert not again["written"] and again["removed"] and list(tmp_path.iterdir()) == []


def test_two_counts_predict_and_leave_nothing(tqlm_bin, plan, tmp_path):
    j = json.loads(bench(tqlm_bin, tmp_path, "--layers", "1,2", "--bandwidth", "400").stdout)
    assert [x["layers"] for x in j["runs"]] == [1, 2]
    assert all(x["written"] and x["removed"] for x in j["runs"])
    assert list(tmp_path.iterdir()) == []  # no checkpoint, no .partial directory
    assert j["read_bandwidth_gbps"] > 0 and j["target_bandwidth_gbps"] == 400
    fixed = read_bytes([t for t in plan if t["layer"] < 0])
    layer = read_bytes(layer_tensors(plan, 1)) - fixed
    for p, a, a1 in zip(j["prediction"], j["runs"][1]["points"], j["runs"][0]["points"]):
        assert p["context"] == a["context"]
        assert p["fixed_bytes"] == pytest.approx(fixed, rel=1e-9)
        kv_layer = a["kv_bytes_per_token"] / 2
        assert p["layer_bytes"] == pytest.approx(layer + kv_layer, rel=1e-9)
        # all 62 layers' weights (boundary layers at 8 bits) plus the full model's cache, read per token
        assert p["full_bytes_per_token"] > fixed + 62 * layer
        assert p["layer_ms"] > 0 and p["fixed_ms"] > 0 and p["full_decode_tps"] > 0 and p["full_prefill_tps"] > 0
        # a layer's time: both runs' time inside their layers, pooled (3 layers in all); each run's layers take
        # part of its decode time
        for x, n in ((a1, 1), (a, 2)):
            assert 0 < x["decode_layer_seconds"] < 1 / x["decode_tps"]
            assert 0 < x["prefill_layer_seconds"] < 1 / x["prefill_tps"]
        assert p["layer_ms"] == pytest.approx(1000 * (a1["decode_layer_seconds"] + a["decode_layer_seconds"]) / 3)
        # shares of the mean of the bandwidths measured beside the two runs' points
        assert a["read_gbps"] > 0 and a1["read_gbps"] > 0
        assert p["read_gbps"] == pytest.approx((a["read_gbps"] + a1["read_gbps"]) / 2)
        assert p["target_decode_tps"] == pytest.approx(p["full_decode_tps"] * 400 / p["read_gbps"])
        assert p["target_decode_tps_at_70pct"] == pytest.approx(0.7 * 400e9 / p["full_bytes_per_token"])


def test_refusals(tqlm_bin, tmp_path):
    def fails(*args):
        r = subprocess.run([tqlm_bin, "bench", *args], capture_output=True, text=True)
        assert r.returncode != 0
        return r.stderr

    assert "--layers 40" in fails("--synthetic", "minimax-m2", "--layers", "40", "--dir", str(tmp_path))
    assert "one of them" in fails(str(tmp_path), "--synthetic", "minimax-m2")
    assert "one of them" in fails()
    (tmp_path / "minimax-m2-config-i-1l-e16-v8192").mkdir()
    assert "not a synthetic checkpoint" in fails("--synthetic", "minimax-m2", *SCALED, "--layers", "1", "--dir",
                                                 str(tmp_path))
    assert "--experts 4" in fails("--synthetic", "minimax-m2", "--experts", "4", "--dir", str(tmp_path))


def test_bench_of_a_model_directory_is_unchanged(tqlm_bin):
    """The bench of MODEL shares its table and JSON with the synthetic one (cli/bench_output.cpp)."""
    from fixtures import fixture_dir
    r = subprocess.run([tqlm_bin, "bench", str(fixture_dir("llama", "q4")), "--contexts", "8,20", "-n", "2", "--json",
                        "--no-bandwidth"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert {"model", "kv", "kv_boundary", "kv_bytes_per_token", "threads", "isa", "linear", "attention",
            "read_bandwidth_gbps", "points"} <= set(j)
    assert [p["context"] for p in j["points"]] == [8, 20]
    assert set(j["points"][0]) == {"context", "prefill_tps", "decode_tps", "prefill_seconds", "decode_seconds",
                                   "weight_bytes_per_token", "kv_bytes_per_token", "achieved_gbps",
                                   "prefill_layer_seconds", "decode_layer_seconds", "read_gbps",
                                   "bandwidth_fraction", "cache_bytes", "cache_growth", "rss_growth"}
    text = subprocess.run([tqlm_bin, "bench", str(fixture_dir("llama", "q4")), "--contexts", "8", "-n", "2",
                           "--no-bandwidth"], capture_output=True, text=True).stdout
    assert "decode/s" in text and "RSS grew" in text
