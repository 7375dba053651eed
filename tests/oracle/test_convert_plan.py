"""`tqlm convert --dry-run`: the card's MiniMax-M2 figures from config.json alone, and mlx_lm's mixed recipes
(per-module bits) reproduced exactly, checked against mlx_lm's own predicate."""
import json
import subprocess

import mlx.nn as nn
import pytest
from mlx_lm.convert import mixed_quant_predicate_builder
from mlx_lm.utils import _get_classes

from conftest import ROOT

MINIMAX = ROOT / "tests" / "fixtures" / "configs" / "minimax-m2.json"


def plan(tqlm_bin, src, policy, *extra):
    r = subprocess.run([tqlm_bin, "convert", str(src), "--dry-run", "--json", "--policy", policy, *extra],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_minimax_config_i_matches_the_card(tqlm_bin):
    p = plan(tqlm_bin, MINIMAX, "config-i")
    t = p["total"]
    assert round(t["params"] / 1e9, 1) == 228.7
    assert round(t["bpw"], 2) == 3.25
    assert round(p["gib"], 1) == 86.5 and round(p["gb"], 1) == 92.9
    bits = {(e["role"], e["layer"]): e.get("bits", e.get("keep")) for e in p["tensors"]}
    assert bits[("expert_gate", 30)] == 2 and bits[("expert_down", 30)] == 3 and bits[("attn_q", 30)] == 4
    assert bits[("expert_gate", 0)] == 8 and bits[("expert_down", 61)] == 8 and bits[("attn_o", 1)] == 8
    assert bits[("embed", -1)] == 8 and bits[("lm_head", -1)] == 8
    by_module = {e["module"]: e.get("bits", e.get("keep")) for e in p["tensors"]}
    assert by_module["model.layers.30.block_sparse_moe.gate"] == "F16"
    assert by_module["model.layers.30.block_sparse_moe.e_score_correction_bias"] == "F32"


@pytest.mark.parametrize("recipe", ["mixed_2_6", "mixed_3_4", "mixed_3_6", "mixed_4_6"])
@pytest.mark.parametrize("arch", ["llama", "qwen3_moe"])
def test_mixed_recipes_match_mlx_lm(tqlm_bin, tmp_path, recipe, arch):
    cfg = {"model_type": arch, "hidden_size": 128, "num_hidden_layers": 20, "num_attention_heads": 4,
           "num_key_value_heads": 2, "rms_norm_eps": 1e-5, "vocab_size": 256, "intermediate_size": 256,
           "max_position_embeddings": 512, "tie_word_embeddings": False, "rope_theta": 10000.0}
    if arch == "qwen3_moe":
        cfg.update(num_experts=4, num_experts_per_tok=2, decoder_sparse_step=1, mlp_only_layers=[],
                   moe_intermediate_size=64, head_dim=32, norm_topk_prob=True)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    model_cls, args_cls = _get_classes(cfg)
    model = model_cls(args_cls.from_dict(cfg))
    pred = mixed_quant_predicate_builder(recipe, model)
    ref = {path: pred(path, m)["bits"] for path, m in model.named_modules()
           if hasattr(m, "to_quantized") and m.weight.shape[-1] % 64 == 0}
    p = plan(tqlm_bin, tmp_path, recipe.replace("_", "-"))
    mine = {e["module"]: e["bits"] for e in p["tensors"] if "bits" in e}
    assert mine == ref


def test_policy_errors(tqlm_bin, tmp_path):
    bad = tmp_path / "p.json"
    bad.write_text('{"rules": [{"roles": ["attention"], "bits": 4}]}')
    r = subprocess.run([tqlm_bin, "convert", str(MINIMAX), "--dry-run", "--policy", str(bad)],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "unknown role 'attention'" in r.stderr
    bad.write_text('{"rules": [{"roles": ["attn_q"], "bits": 7}]}')
    r = subprocess.run([tqlm_bin, "convert", str(MINIMAX), "--dry-run", "--policy", str(bad)],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "bits 7" in r.stderr
    r = subprocess.run([tqlm_bin, "convert", str(MINIMAX), "--dry-run", "--policy", "config-x"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "config-i-dense" in r.stderr
