"""Calibration (`tqlm calibrate`, `convert --calib/--stats`, `--policy auto`) and router parity with mlx_lm:
calibrated outputs load in stock mlx_lm with logits equal to tqlm's; uniform-N equals mlx_lm's quantize_model
(the model's own quant_predicate: qwen3_moe / MiniMax routers at 8 bits) for every MoE architecture, and
uniform-N-all equals quantizing every weight at N; an auto policy's JSON reproduces its conversion; bad inputs
are clear errors."""
import json
import subprocess

import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten
from mlx_lm.utils import load_model, quantize_model

from fixtures import MOE_ARCHS, fixture_dir
from test_convert_mlx import as_bits, assert_mlx_lm_agrees, load_weights


def tqlm(tqlm_bin, *args, check=True):
    r = subprocess.run([tqlm_bin, *map(str, args)], capture_output=True, text=True)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def ids_file(path, n=300, vocab=512, seed=0):
    rng = np.random.default_rng(seed)
    path.write_text(" ".join(str(int(t)) for t in rng.integers(3, vocab, n)))
    return path


def calibrate(tqlm_bin, src, tmp_path):
    stats = tmp_path / "stats.safetensors"
    tqlm(tqlm_bin, "calibrate", src, "--data", ids_file(tmp_path / "calib.ids"), "--ids", "--ctx", 64, "-o", stats)
    return stats


@pytest.mark.parametrize("arch", MOE_ARCHS)
@pytest.mark.parametrize("variant", ["bf16", "hf"])
def test_uniform_router_parity_with_mlx_lm(tqlm_bin, tmp_path, arch, variant):
    d = fixture_dir(arch, variant)
    for policy, predicate in (("uniform-4", None), ("uniform-4-all", lambda p, m: True)):
        out = tmp_path / policy
        tqlm(tqlm_bin, "convert", d, out, "--policy", policy)
        model, config = load_model(d)
        cfg = {k: v for k, v in config.items() if k != "quantization_config"}
        model, qcfg = quantize_model(model, cfg, 64, 4, quant_predicate=predicate)  # None: the model's own
        ref = dict(tree_flatten(model.parameters()))
        mine = load_weights(out)
        for k, v in ref.items():
            if k.endswith("e_score_correction_bias"):
                continue  # kept f32 by tqlm, as mlx_lm's loader casts it back
            assert mine[k].shape == v.shape and np.array_equal(as_bits(mine[k]), as_bits(v)), (policy, k)
        routers = [k for k in ref if k.endswith(".gate.weight") and "switch" not in k]
        assert routers
        want = 8 if predicate is None and arch in ("qwen3_moe", "minimax") else 4
        for k in routers:  # packed uint32 [E, in * bits / 32]
            assert mine[k].shape[-1] * 32 == want * cfg["hidden_size"], (policy, k)


@pytest.mark.parametrize("src,policy", [(("llama", "bf16"), "uniform-3"), (("qwen3_moe", "hf"), "config-i"),
                                        (("minimax", "bf16"), "uniform-2"), (("mixtral", "bf16"), "uniform-3")])
def test_calibrated_output_loads_in_mlx_lm_and_agrees(tqlm_bin, testapi, tmp_path, src, policy):
    d = fixture_dir(*src)
    stats = calibrate(tqlm_bin, d, tmp_path)
    out = tmp_path / "out"
    tqlm(tqlm_bin, "convert", d, out, "--policy", policy, "--stats", stats, "--block-rows", 128)
    rtn = tmp_path / "rtn"
    tqlm(tqlm_bin, "convert", d, rtn, "--policy", policy)
    mine, plain = load_weights(out), load_weights(rtn)
    assert set(mine) == set(plain)
    assert any(not np.array_equal(as_bits(mine[k]), as_bits(plain[k])) for k in mine if k.endswith(".scales"))
    assert_mlx_lm_agrees(testapi, out)  # stock mlx_lm reads the calibrated output, same logits


def test_stats_counts_per_expert(tqlm_bin, tmp_path):
    d = fixture_dir("mixtral", "bf16")
    stats = calibrate(tqlm_bin, d, tmp_path)
    from safetensors.numpy import load_file  # mlx does not read F64
    s = load_file(str(stats))
    cfg = json.loads((d / "config.json").read_text())
    k, T = cfg.get("num_experts_per_tok", 2), 256  # 4 full windows of 64 of the 300 ids
    assert int(np.array(s["lm_head.tokens"]).sum()) == T
    assert int(np.array(s["model.layers.0.self_attn.q_proj.tokens"]).sum()) == T
    per = np.array(s["model.layers.0.block_sparse_moe.switch_mlp.gate_proj.tokens"])
    assert per.shape == (cfg["num_local_experts"],) and int(per.sum()) == T * k
    assert s["model.layers.0.block_sparse_moe.switch_mlp.down_proj.sumsq"].shape == (
        cfg["num_local_experts"], cfg["intermediate_size"])


def test_auto_policy_json_reproduces_conversion(tqlm_bin, tmp_path):
    d = fixture_dir("qwen3_moe", "bf16")
    stats = calibrate(tqlm_bin, d, tmp_path)
    a, pol = tmp_path / "auto", tmp_path / "auto.json"
    r = tqlm(tqlm_bin, "convert", d, a, "--policy", "auto", "--bpw", "4.5", "--stats", stats, "--policy-out", pol)
    assert "auto policy" in r.stdout
    b = tmp_path / "again"
    tqlm(tqlm_bin, "convert", d, b, "--policy", pol, "--stats", stats)
    wa, wb = load_weights(a), load_weights(b)
    assert set(wa) == set(wb) and all(np.array_equal(as_bits(wa[k]), as_bits(wb[k])) for k in wa)
    size = json.loads(tqlm(tqlm_bin, "inspect", a, "--json").stdout)["total"]
    assert size["bpw"] <= 4.5 + 1e-9
    bits = {json.dumps(r.get("bits")) for r in json.loads(pol.read_text())["rules"]}
    assert len(bits) >= 2  # a real allocation, not one width everywhere
    load_model(a)  # stock mlx_lm loads it


def test_calibrate_errors(tqlm_bin, tmp_path):
    d = fixture_dir("llama", "bf16")
    r = tqlm(tqlm_bin, "calibrate", d, "--data", tmp_path / "missing.txt", "-o", tmp_path / "s", check=False)
    assert r.returncode != 0 and "missing.txt" in r.stderr
    bad = tmp_path / "bad.ids"
    bad.write_text("1 2 three")
    r = tqlm(tqlm_bin, "calibrate", d, "--data", bad, "--ids", "-o", tmp_path / "s", check=False)
    assert r.returncode != 0 and "bad.ids" in r.stderr and "three" in r.stderr
    big = tmp_path / "big.ids"
    big.write_text("1 2 999999")
    r = tqlm(tqlm_bin, "calibrate", d, "--data", big, "--ids", "-o", tmp_path / "s", check=False)
    assert r.returncode != 0 and "999999" in r.stderr and "vocabulary" in r.stderr
    one = tmp_path / "one.ids"
    one.write_text("5")
    r = tqlm(tqlm_bin, "calibrate", d, "--data", one, "--ids", "-o", tmp_path / "s", check=False)
    assert r.returncode != 0 and "at least 2" in r.stderr
    r = tqlm(tqlm_bin, "calibrate", d, "--data", bad, "-o", tmp_path / "s", check=False)  # no tokenizer
    assert r.returncode != 0
    assert not (tmp_path / "s").exists()
    # a file that is not calibration statistics
    notstats = tmp_path / "w.safetensors"
    mx.save_safetensors(str(notstats), {"a": mx.zeros((2,))})
    r = tqlm(tqlm_bin, "convert", d, tmp_path / "o", "--stats", notstats, check=False)
    assert r.returncode != 0 and "tqlm-calib" in r.stderr and not (tmp_path / "o").exists()
    r = tqlm(tqlm_bin, "convert", d, tmp_path / "o", "--policy", "auto", "--bpw", "4", check=False)
    assert r.returncode != 0 and "--policy auto needs" in r.stderr
    stats = calibrate(tqlm_bin, d, tmp_path)
    r = tqlm(tqlm_bin, "convert", d, tmp_path / "o", "--policy", "auto", "--bpw", "1", "--stats", stats,
             check=False)
    assert r.returncode != 0 and "below the smallest" in r.stderr and not (tmp_path / "o").exists()
    # statistics of another model
    r = tqlm(tqlm_bin, "convert", fixture_dir("qwen3_moe", "bf16"), tmp_path / "o", "--policy", "auto", "--bpw",
             "4", "--stats", stats, check=False)
    assert r.returncode != 0 and "statistics" in r.stderr


def test_convert_calib_in_one_step_equals_calibrate_then_stats(tqlm_bin, tmp_path):
    d = fixture_dir("llama", "bf16")
    ids = ids_file(tmp_path / "calib.ids")
    one = tmp_path / "one"
    tqlm(tqlm_bin, "convert", d, one, "--policy", "uniform-3", "--calib", ids, "--calib-ids", "--calib-ctx", 64)
    stats = calibrate(tqlm_bin, d, tmp_path)  # the same ids, ctx 64
    two = tmp_path / "two"
    tqlm(tqlm_bin, "convert", d, two, "--policy", "uniform-3", "--stats", stats)
    wa, wb = load_weights(one), load_weights(two)
    assert set(wa) == set(wb) and all(np.array_equal(as_bits(wa[k]), as_bits(wb[k])) for k in wa)
    r = tqlm(tqlm_bin, "convert", d, tmp_path / "x", "--calib", ids, "--stats", stats, check=False)
    assert r.returncode != 0 and "not both" in r.stderr
