"""`tqlm convert` against stock mlx_lm: uniform-4 output bit-identical to mlx_lm's own quantization of the
same weights; config-i / config-i-dense output loads in mlx_lm.load_model and its logits equal tqlm's;
a failed conversion leaves no destination behind."""
import ctypes
import json
import shutil
import subprocess

import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten
from mlx_lm.utils import load_model, quantize_model

from fixtures import fixture_dir
from test_model_parity import Tqlm, tol


def convert(tqlm_bin, src, dst, policy):
    # --block-rows 128: stream several row blocks per tensor even on tiny fixtures
    r = subprocess.run([tqlm_bin, "convert", str(src), str(dst), "--policy", policy, "--block-rows", "128"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return dst


def assert_mlx_lm_agrees(testapi, out):
    """Stock mlx_lm loads `out` and its logits equal tqlm's on a fixed prompt."""
    model, _ = load_model(out)  # stock mlx_lm reads what tqlm wrote
    model.set_dtype(mx.float32)
    prompt = np.arange(7, 31, dtype=np.int32)
    ref = np.array(model(mx.array(prompt[None]))[0])
    # the f32 linear path, as mlx_lm's f32 activations: tol() is summation order only (the int8 default's
    # activation rounding is checked against f32 in test_model_parity.py)
    t = Tqlm(testapi, out, linear="f32")
    try:
        got = t.forward(prompt)
    finally:
        t.close()
    assert np.abs(got - ref).max() <= tol(ref)


def load_weights(d):
    w = {}
    for f in sorted(d.glob("*.safetensors")):
        w.update(mx.load(str(f)))
    return w


def as_bits(a):
    return np.array(a.view(mx.uint16)) if a.dtype in (mx.bfloat16, mx.float16) else np.array(a)


@pytest.mark.parametrize("src", [("llama", "bf16"), ("mixtral", "bf16"), ("mixtral", "hf"), ("qwen3", "bf16")])
def test_uniform4_bit_identical_to_mlx_lm(tqlm_bin, tmp_path, src):
    d = fixture_dir(*src)
    out = convert(tqlm_bin, d, tmp_path / "out", "uniform-4")
    model, config = load_model(d)
    model, qcfg = quantize_model(model, config, group_size=64, bits=4)
    ref = dict(tree_flatten(model.parameters()))
    mine = load_weights(out)
    assert set(mine) == set(ref)
    for k, v in ref.items():
        assert mine[k].dtype == v.dtype and mine[k].shape == v.shape, k
        assert np.array_equal(as_bits(mine[k]), as_bits(v)), k
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["quantization"] == cfg["quantization_config"]
    assert cfg["quantization"]["bits"] == 4 and cfg["quantization"]["group_size"] == 64


@pytest.mark.parametrize("src,policy", [(("minimax", "bf16"), "config-i"), (("minimax", "hf"), "config-i"),
                                        (("qwen3_moe", "hf"), "config-i"), (("llama", "bf16"), "config-i-dense"),
                                        (("qwen2", "bf16"), "config-i-dense"), (("mixtral", "q4"), "config-i")])
def test_policy_output_loads_in_mlx_lm_and_agrees(tqlm_bin, testapi, tmp_path, src, policy):
    out = convert(tqlm_bin, fixture_dir(*src), tmp_path / "out", policy)
    assert_mlx_lm_agrees(testapi, out)
    if policy == "config-i":
        cfg = json.loads((out / "config.json").read_text())
        q = cfg["quantization"]
        layer = [k for k in q if ".layers.1." in k and "switch_mlp.gate_proj" in k]
        assert layer and q[layer[0]]["bits"] == 8  # boundary layer (first 2)


def test_failed_conversion_leaves_nothing(tqlm_bin, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(fixture_dir("llama", "bf16"), src)
    w = mx.load(str(src / "model.safetensors"))
    del w["model.layers.2.mlp.down_proj.weight"]
    mx.save_safetensors(str(src / "model.safetensors"), w, metadata={"format": "mlx"})
    (src / "model.safetensors.index.json").unlink()
    r = subprocess.run([tqlm_bin, "convert", str(src), str(tmp_path / "dst"), "--policy", "uniform-4"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "down_proj" in r.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["src"]
    r = subprocess.run([tqlm_bin, "convert", str(fixture_dir("llama", "bf16")), str(src), "--policy", "uniform-4"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "exists" in r.stderr


def write_safetensors(path, tensors):
    """Minimal safetensors writer for dtypes mlx cannot save (F8_E4M3); tensors: name -> (dtype, ndarray)."""
    import struct
    header, blobs, off = {}, [], 0
    for name, (dt, arr) in tensors.items():
        b = np.ascontiguousarray(arr).tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def test_fp8_source_matches_mlx_lm(tqlm_bin, tmp_path):
    """An HF MiniMax checkpoint with FP8 e4m3 weights and 128x128 block scales: tqlm's uniform-4 conversion
    equals mlx_lm's own path (sanitize dequantizes FP8 to bf16, then quantize_model)."""
    import ml_dtypes
    src = tmp_path / "fp8"
    shutil.copytree(fixture_dir("minimax", "hf"), src)
    w = load_weights(src)
    out = {}
    for k, v in w.items():
        a = np.array(v.astype(mx.float32))
        if k.endswith(".weight") and ("_proj" in k or ".experts." in k) and a.ndim == 2:
            r, c = a.shape
            br, bc = -(-r // 128), -(-c // 128)
            scale = np.zeros((br, bc), np.float32)
            q = np.zeros_like(a)
            for i in range(br):
                for j in range(bc):
                    blk = a[i * 128:(i + 1) * 128, j * 128:(j + 1) * 128]
                    scale[i, j] = max(np.abs(blk).max(), 1e-12) / 448.0
                    q[i * 128:(i + 1) * 128, j * 128:(j + 1) * 128] = blk / scale[i, j]
            out[k] = ("F8_E4M3", q.astype(ml_dtypes.float8_e4m3fn).view(np.uint8))
            out[k + "_scale_inv"] = ("F32", scale)
        else:
            bits = as_bits(v)
            out[k] = ({mx.bfloat16: "BF16", mx.float32: "F32", mx.float16: "F16"}[v.dtype], bits)
    for f in src.glob("model*"):
        f.unlink()
    write_safetensors(src / "model.safetensors", out)
    cfg = json.loads((src / "config.json").read_text())
    cfg["quantization_config"] = {"quant_method": "fp8", "fmt": "float8_e4m3fn", "weight_block_size": [128, 128]}
    (src / "config.json").write_text(json.dumps(cfg))

    dst = convert(tqlm_bin, src, tmp_path / "out", "uniform-4-all")
    model, config = load_model(src)  # mlx_lm: FP8 -> bf16 in sanitize
    # every module at 4 bits (uniform-4 would follow MiniMax's own predicate: the router at 8)
    model, _ = quantize_model(model, {k: v for k, v in config.items() if k != "quantization_config"}, 64, 4,
                              quant_predicate=lambda path, module: True)
    ref = {k: v for k, v in tree_flatten(model.parameters())}
    mine = load_weights(dst)
    for k, v in ref.items():
        if k.endswith("e_score_correction_bias"):
            continue
        assert np.array_equal(as_bits(mine[k]), as_bits(v)), k
