#!/usr/bin/env python3
"""Quality of the weight policies on SmolLM2-135M-Instruct (issue: tqlm convert, item 7), one script.

    .venv/bin/python bench/quality_table.py [--ctx 2048] [--samples 5] [--out docs/quality.md]

Reference: the default model dequantized to bf16 (`tqlm convert --policy keep-bf16.json`). Each policy
converts that reference; `tqlm perplexity` on wiki.test.raw (same windows) gives PPL, and with
`--kl-base` the KL divergence and top-1 agreement against the reference run. Sizes and bits per weight come
from `tqlm inspect`. The MoE rows use an exact MoE version of SmolLM2 (every MLP split into E=8 expert
slices, down projections scaled by E, zero router so top-k = E selects all with weight 1/E), whose bf16
perplexity must equal the dense model's, converted with `config-i`.
"""
import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import mlx.core as mx

ROOT = Path(__file__).resolve().parents[1]
POLICIES = ["config-i-dense", "uniform-4", "uniform-3", "uniform-2", "mixed-3-6"]


def run(*args):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(map(str, args))}\n{r.stderr}")
    return r.stdout


def make_moe(dense: Path, out: Path, experts: int = 8):
    """Exact MoE version of a dense llama checkpoint (bf16), in mixtral layout with per-expert HF tensors."""
    cfg = json.loads((dense / "config.json").read_text())
    w = {}
    for f in sorted(dense.glob("*.safetensors")):
        w.update(mx.load(str(f)))
    I, L = cfg["intermediate_size"], cfg["num_hidden_layers"]
    assert I % experts == 0
    s = I // experts
    new = {}
    for k, v in w.items():
        if ".mlp." not in k:
            new[k] = v
    for l in range(L):
        p = f"model.layers.{l}."
        g, u, d = (w[p + f"mlp.{n}.weight"] for n in ("gate_proj", "up_proj", "down_proj"))
        for e in range(experts):
            new[p + f"block_sparse_moe.experts.{e}.w1.weight"] = g[e * s:(e + 1) * s]
            new[p + f"block_sparse_moe.experts.{e}.w3.weight"] = u[e * s:(e + 1) * s]
            new[p + f"block_sparse_moe.experts.{e}.w2.weight"] = d[:, e * s:(e + 1) * s] * experts  # exact: power of 2
        new[p + "block_sparse_moe.gate.weight"] = mx.zeros((experts, cfg["hidden_size"]), dtype=g.dtype)
    if cfg.get("tie_word_embeddings", True):
        new["lm_head.weight"] = w["model.embed_tokens.weight"]
    out.mkdir(parents=True)
    mx.save_safetensors(str(out / "model.safetensors"), new, metadata={"format": "mlx"})
    cfg.update(model_type="mixtral", num_local_experts=experts, num_experts_per_tok=experts,
               intermediate_size=s, tie_word_embeddings=False)
    cfg.pop("quantization", None)
    cfg.pop("quantization_config", None)
    (out / "config.json").write_text(json.dumps(cfg, indent=2))
    for f in dense.iterdir():
        if f.name.startswith("tokenizer") or f.name in ("special_tokens_map.json", "generation_config.json"):
            shutil.copy(f, out / f.name)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "models" / "smollm2-135m-instruct"))
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "wikitext-2" / "wiki.test.raw"))
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--samples", type=int, default=5)
    ap.add_argument("--work", default=str(ROOT / ".cache" / "quality"))
    ap.add_argument("--tqlm", default=str(ROOT / "build" / "tqlm"))
    ap.add_argument("--out", default=None, help="also write the markdown table here")
    a = ap.parse_args()
    work = Path(a.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    keep = work / "keep-bf16.json"
    keep.write_text(json.dumps({"name": "keep-bf16", "rules": [{"keep": "bf16"}]}))

    def ppl(model, base=None, save=None):
        args = [a.tqlm, "perplexity", model, "--data", a.data, "--ctx", a.ctx, "--samples", a.samples, "--json"]
        if base:
            args += ["--kl-base", base]
        if save:
            args += ["--save-logits", save]
        return json.loads(run(*args))

    def size(model):
        t = json.loads(run(a.tqlm, "inspect", model, "--json"))["total"]
        return t["bytes"], t["bpw"]

    rows = []
    ref = work / "ref-bf16"
    run(a.tqlm, "convert", a.model, ref, "--policy", keep)
    base = work / "ref.kl"
    r = ppl(ref, save=base)
    rows.append(("bf16 (reference: default model dequantized)", *size(ref), r["ppl"], r["ppl_se"], 0.0, 1.0))
    for pol in POLICIES:
        d = work / pol
        run(a.tqlm, "convert", ref, d, "--policy", pol)
        r = ppl(d, base=base)
        rows.append((pol, *size(d), r["ppl"], r["ppl_se"], r["kl_mean"], r["top1_agreement"]))
        print(rows[-1], flush=True)

    moe = work / "moe-bf16"
    make_moe(ref, moe)
    moe_base = work / "moe.kl"
    r = ppl(moe, save=moe_base)
    rows.append(("MoE SmolLM2 (8 exact experts) bf16", *size(moe), r["ppl"], r["ppl_se"], 0.0, 1.0))
    moe_q = work / "moe-config-i"
    run(a.tqlm, "convert", moe, moe_q, "--policy", "config-i")
    r = ppl(moe_q, base=moe_base)
    rows.append(("MoE SmolLM2 config-i", *size(moe_q), r["ppl"], r["ppl_se"], r["kl_mean"], r["top1_agreement"]))

    lines = [f"SmolLM2-135M-Instruct, wiki.test.raw, ctx {a.ctx}, {a.samples} windows; KL and top-1 vs the bf16 "
             f"reference of the same architecture (`bench/quality_table.py --ctx {a.ctx} --samples {a.samples}`)", "",
             "| weights | size (MiB) | bpw | PPL | +/- | KL | top-1 agreement |", "|---|---|---|---|---|---|---|"]
    for name, b, bpw, p, se, kl, top1 in rows:
        lines.append(f"| {name} | {b / 2**20:.1f} | {bpw:.3f} | {p:.4f} | {se:.4f} | {kl:.5f} | {100 * top1:.2f}% |")
    text = "\n".join(lines)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
