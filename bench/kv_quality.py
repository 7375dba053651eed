#!/usr/bin/env python3
"""Quality of the KV cache modes on SmolLM2-135M-Instruct (head dim 64): perplexity on wiki.test.raw and KL
divergence against the same checkpoint with a bf16 cache, for every mode, on the default checkpoint and a
config-i-dense one; plus the K-bits x V-bits grid, the norm-correction study and the centring study.

    .venv/bin/python bench/kv_quality.py [--ctx 2048] [--samples 3] [--out docs/kv-quality.md]
        [--models default,config-i-dense] [--modes ...] [--norm-study] [--centre-study] [--linear f32]

Centred (...c), sink (...s) and auto:R modes read a calibration file: `tqlm kv-calibrate` on the second half
of the same text (disjoint from the perplexity windows, which are its first ones), written once per checkpoint
into --work (--kv-calib FILE to give one). The linear layers run on the f32 path by default (--linear): the
int8 path's own rounding puts a floor of about 0.0015 KL under any change to the cache.

For each checkpoint: `tqlm perplexity --kv bf16 --save-logits REF`, then every mode with `--kl-base REF` (same
windows): PPL +/- SE, PPL change, mean KL(bf16 || mode) over the reference's top-64 tokens + rest, top-1
agreement. Bytes per token are the cache's real ones (`tqlm kv-plan --json`: codes, fp16 norms, the 2 + 2 bf16
boundary layers). --llamacpp (default q8_0,q4_0,q4_1,q5_1,q8_0/q4_0; '' skips it) measures llama.cpp's own cache types on the same
windows of the default model's GGUF (llama-cpp-python in a child process, flash attention on), each against
llama.cpp's f32 cache with the same KL definition. --norm-study reruns the TurboQuant modes with TQLM_KV_NORM=raw (store |x|) beside the default
(store |x| / |c|, the norm of the centroid vector) to justify the default.

Time on 2 cores: about 12 s per mode per 2048-token window (prefill-bound).
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GRID_K, GRID_V = [2, 3, 4, 8], [2, 3, 4]
MODES = ["f16", "q8"] + [f"turbo{k}" if k == v else f"turbo{k}v{v}" for k in GRID_K for v in GRID_V] + ["turbo8"]
NEW_MODES = ["f32", "f32c", "turbo4c", "turbo4s", "turbo4cs", "turbo4v3cs", "turbo4v2c", "turbo4v2s", "turbo4v2cs",
             "turbo3cs", "turbo8v4cs", "auto:3s", "auto:3.5s", "auto:4s"]
CENTRE_BASES = ["turbo4", "turbo4v2"]


def run(args, env=None):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"{' '.join(map(str, args))}\n{r.stderr}")
    return r.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="default,config-i-dense",
                    help="comma list: 'default' (models/smollm2-135m-instruct), 'config-i-dense' (converted from it "
                         "into --work if missing) or checkpoint directories")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "wikitext-2" / "wiki.test.raw"))
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--samples", type=int, default=3)
    ap.add_argument("--modes", default=",".join(MODES + NEW_MODES))
    ap.add_argument("--kv-calib", default=None, help="calibration file (default: written into --work per checkpoint)")
    ap.add_argument("--linear", default="f32", help="TQLM_LINEAR for every run (f32 or int8)")
    ap.add_argument("--centre-study", action="store_true",
                    help="centring of keys / values / slow key dims, sink, per-window (oracle) means")
    ap.add_argument("--kv-boundary", type=int, default=2)
    ap.add_argument("--norm-study", action="store_true", help="also run the turbo modes with TQLM_KV_NORM=raw")
    ap.add_argument("--work", default=str(ROOT / ".cache" / "kv-quality"))
    ap.add_argument("--tqlm", default=str(ROOT / "build" / "tqlm"))
    ap.add_argument("--out", default=None, help="write the markdown tables here")
    ap.add_argument("--llamacpp", default="q8_0,q4_0,q4_1,q5_1,q8_0/q4_0",
                    help="llama.cpp KV cache types (K or K/V) measured on the same windows of the default model's "
                         "GGUF, each against llama.cpp's own f32 cache ('' to skip)")
    ap.add_argument("--gguf", default=None, help="default: the Q4_1 GGUF cached by scripts/get-default-model.sh")
    a = ap.parse_args()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    default = ROOT / "models" / "smollm2-135m-instruct"
    modes = [m for m in a.modes.split(",") if m]

    def checkpoint(name):
        if name == "default":
            return default
        if name == "config-i-dense":
            d = work / "config-i-dense"
            if not (d / "config.json").exists():
                run([a.tqlm, "convert", default, d, "--policy", "config-i-dense"])
            return d
        return Path(name)

    os.environ["TQLM_LINEAR"] = a.linear
    cache_file = work / "results.json"  # finished runs, so that a rerun only adds what is missing
    done = json.loads(cache_file.read_text()) if cache_file.exists() else {}

    def calibrate(model, offset=0.5, tokens=4096, window=1024, sensitivity=True, tag=""):
        if a.kv_calib and not tag:
            return a.kv_calib
        f = work / f"{Path(str(model)).name}.kv-calib{tag}.json"
        if not f.exists():
            run([a.tqlm, "kv-calibrate", model, "--data", a.data, "--offset", offset, "--tokens", tokens, "--window",
                 window, "--out", f] + ([] if sensitivity else ["--no-sensitivity"]))
        return f

    def ppl(model, mode, base=None, save=None, env=None, calib=None):
        key = json.dumps([str(model), mode, a.ctx, a.samples, a.linear, str(calib), str(base),
                          {k: v for k, v in (env or {}).items() if k.startswith("TQLM_KV")}])
        if key in done and (not save or Path(save).exists()):
            return done[key]
        args = [a.tqlm, "perplexity", model, "--data", a.data, "--ctx", a.ctx, "--samples", a.samples, "--kv", mode,
                "--kv-boundary", a.kv_boundary, "--json"] + (["--kv-calib", calib] if calib else [])
        args += ["--kl-base", base] if base else []
        args += ["--save-logits", save] if save else []
        r = json.loads(run(args, env))
        print(f"  {mode:10s} PPL {r['ppl']:.4f}  KL {r.get('kl_mean', 0):.5f}", file=sys.stderr, flush=True)
        done[key] = r
        cache_file.write_text(json.dumps(done, indent=1))
        return r

    out = [f"SmolLM2-135M-Instruct (head dim 64, 30 layers, 3 KV heads), wiki.test.raw, ctx {a.ctx}, {a.samples} "
           f"windows, KV boundary {a.kv_boundary} + {a.kv_boundary} layers bf16 (fixed modes), linear layers "
           f"{a.linear}. KL and top-1 against the same checkpoint with a bf16 cache. "
           f"`bench/kv_quality.py --ctx {a.ctx} --samples {a.samples}`", ""]
    results = {}
    for name in a.models.split(","):
        model = checkpoint(name)
        print(f"[{name}] {model}", file=sys.stderr, flush=True)
        calib = calibrate(model)
        plan = {}
        for m in json.loads(run([a.tqlm, "kv-plan", model, "--modes", ",".join(["bf16"] + modes), "--kv-boundary",
                                 a.kv_boundary, "--kv-calib", calib, "--json"]))["modes"]:
            plan[m["mode"]] = m
        ref = work / f"{Path(str(model)).name}.ctx{a.ctx}.s{a.samples}.{a.linear}.ref"
        base = ppl(model, "bf16", save=ref)
        rows = {"bf16": base}
        for mode in modes:
            rows[mode] = ppl(model, mode, base=ref, calib=calib)
        results[name] = rows
        out += [f"### {name} checkpoint (`{model.relative_to(ROOT) if model.is_relative_to(ROOT) else model}`)", "",
                "| KV mode | K/V | bytes/token | real ratio | nominal | PPL | +/- | PPL change | KL | top-1 |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        for mode, r in rows.items():
            p = plan[mode]
            change = 100 * (r["ppl"] / base["ppl"] - 1)
            out.append(f"| {mode} | {p['formats']} | {p['bytes_per_token']:,} | "
                       f"{p['real_ratio']:.2f}x | {p['nominal_ratio']:.2f}x | {r['ppl']:.4f} | {r['ppl_se']:.4f} | "
                       f"{change:+.2f}% | {r.get('kl_mean', 0):.5f} | {100 * r.get('top1_agreement', 1):.2f}% |")
        grid = [f"K bits \\ V bits ({name}: KL vs bf16 cache, PPL)", "", "| K \\ V | " +
                " | ".join(f"V{v}" for v in GRID_V) + " |", "|---|" + "---|" * len(GRID_V)]
        for k in GRID_K:
            cells = []
            for v in GRID_V:
                m = f"turbo{k}" if k == v else f"turbo{k}v{v}"
                cells.append(f"{rows[m]['kl_mean']:.4f} ({rows[m]['ppl']:.2f})" if m in rows else "-")
            grid.append(f"| K{k} | " + " | ".join(cells) + " |")
        out += [""] + grid + [""]
        if a.norm_study:
            env = dict(os.environ, TQLM_KV_NORM="raw")
            out += [f"Norm correction ({name}): scale = |x| / |c| (default) vs |x| (TQLM_KV_NORM=raw)", "",
                    "| mode | KL corrected | KL raw | PPL corrected | PPL raw |", "|---|---|---|---|---|"]
            for mode in [m for m in modes if m.startswith("turbo")][:: 1]:
                if mode not in ("turbo2", "turbo3", "turbo4", "turbo4v2", "turbo8v4", "turbo3v2"):
                    continue
                raw = ppl(model, mode, base=ref, env=env)
                c = rows[mode]
                out.append(f"| {mode} | {c['kl_mean']:.5f} | {raw['kl_mean']:.5f} | {c['ppl']:.4f} | {raw['ppl']:.4f} |")
            out.append("")
        if a.centre_study:
            out += centre_study(model, calib, ref, rows, ppl, calibrate, a)
        if "k_kl" in json.loads(Path(calib).read_text()):
            out += sensitivity_table(calib, a.kv_boundary)
        if name == "default" and a.llamacpp:
            out += llamacpp_table(a, model, done, cache_file)
    text = "\n".join(out)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")
        (work / "kv-quality.json").write_text(json.dumps(results, indent=1))


def llamacpp_table(a, model, done, cache_file):
    """llama.cpp's own cache types on the same token windows (HF tokenizer ids, no BOS), each against llama.cpp's
    f32 cache with the same KL definition as tqlm's --kl-base (top 64 + rest). Bits per element: q8_0 8.5, q5_1 6,
    q4_1 5, q4_0 4.5 (a block of 32 codes with an f16 scale, and an f16 minimum for the _1 types); llama.cpp keeps
    every layer at that type (no boundary layers)."""
    import numpy as np
    from tokenizers import Tokenizer
    sys.path.insert(0, str(ROOT / "tests" / "oracle"))
    from isolation import llama_cpp_oracle
    if a.gguf:
        gguf = a.gguf
    else:
        from default_gguf import q4_gguf
        gguf = q4_gguf()
    ids = Tokenizer.from_file(str(Path(model) / "tokenizer.json")).encode(
        Path(a.data).read_text(encoding="utf-8"), add_special_tokens=False).ids
    windows = [ids[i * a.ctx:(i + 1) * a.ctx] for i in range(a.samples)]
    bits = {"f32": 32, "f16": 16, "q8_0": 8.5, "q5_1": 6, "q5_0": 5.5, "q4_1": 5, "q4_0": 4.5}
    types = [t.split("/") * (2 // len(t.split("/"))) for t in ["f32"] + a.llamacpp.split(",")]
    oracle, rows = None, {}
    try:
        for k, v in types:
            key = json.dumps(["llama.cpp", str(gguf), k, v, a.ctx, a.samples])
            if key not in done:
                if oracle is None:
                    oracle = llama_cpp_oracle()
                    refs = [oracle.call("window_kv_stats", str(gguf), a.ctx, w, "f32", "f32") for w in windows]
                r = [oracle.call("window_kv_stats", str(gguf), a.ctx, w, k, v, ref) for w, ref in zip(windows, refs)]
                nll = np.concatenate([x["nll"] for x in r])
                kl = np.concatenate([x.get("kl", [0.0] * len(x["nll"])) for x in r])
                agree = np.concatenate([x.get("agree", [True] * len(x["nll"])) for x in r])
                done[key] = {"ppl": float(np.exp(nll.mean())), "ppl_se": float(np.exp(nll.mean()) * nll.std() /
                             np.sqrt(len(nll))), "kl_mean": float(kl.mean()), "top1_agreement": float(agree.mean())}
                cache_file.write_text(json.dumps(done, indent=1))
                print(f"  llama.cpp {k}/{v:5s} PPL {done[key]['ppl']:.4f}  KL {done[key]['kl_mean']:.5f}",
                      file=sys.stderr, flush=True)
            rows[(k, v)] = done[key]
    finally:
        if oracle is not None:
            oracle.close()
    base = rows[("f32", "f32")]
    out = [f"llama.cpp's cache types on the same windows (`{Path(gguf).name}`, llama-cpp-python, flash attention "
           f"on; KL and top-1 against llama.cpp's own f32 cache; ratio = 16 / mean bits of K and V)", "",
           "| cache K / V | bits K / V | ratio vs 16-bit | PPL | +/- | PPL change | KL | top-1 |",
           "|---|---|---|---|---|---|---|---|"]
    for (k, v), r in rows.items():
        out.append(f"| {k} / {v} | {bits[k]} / {bits[v]} | {32 / (bits[k] + bits[v]):.2f}x | {r['ppl']:.4f} | "
                   f"{r['ppl_se']:.4f} | {100 * (r['ppl'] / base['ppl'] - 1):+.2f}% | {r['kl_mean']:.5f} | "
                   f"{100 * r['top1_agreement']:.2f}% |")
    return out + [""]


def sensitivity_table(calib, boundary):
    """Where the loss comes from: the calibration's KL of each layer side alone at each bit width (centred keys,
    sink copy), summed over the layers a fixed mode compresses and over all layers, and the most sensitive
    layers."""
    c = json.loads(Path(calib).read_text())
    n = c["layers"]
    mid = range(boundary, n - boundary)
    out = [f"Sensitivity ({c['kl_tokens']}-token calibration window, `tqlm kv-calibrate`): KL vs bf16 cache with one "
           f"side of one layer alone quantized; the sums predict a whole mode's KL when losses add", "",
           f"| side | bits | sum, layers {boundary}..{n - boundary - 1} | sum, all layers | top 5 layers (KL) |",
           "|---|---|---|---|---|"]
    for side in ("k", "v"):
        for b, v in sorted(c[f"{side}_kl"].items(), key=lambda kv: int(kv[0])):
            top = sorted(range(n), key=lambda i: -v[i])[:5]
            out.append(f"| {side.upper()} | {b} | {sum(v[i] for i in mid):.4f} | {sum(v):.4f} | " +
                       ", ".join(f"{i} ({v[i]:.4f})" for i in top) + " |")
    return out + [""]


def centre_study(model, calib, ref, rows, ppl, calibrate, a):
    """KL of each base mode with centring of keys, values or both, key centring restricted to the slowly
    rotating RoPE dims, the sink copy, and means measured on each perplexity window itself (an upper bound for
    per-sequence means)."""
    oracle = calibrate(model, offset=0.0, tokens=a.ctx * a.samples, window=a.ctx, sensitivity=False, tag=".oracle")
    variants = [("as is", "", {}, calib), ("sink", "s", {}, calib), ("centre K", "c", {}, calib),
                ("centre K + sink", "cs", {}, calib), ("centre V + sink", "cs", {"TQLM_KV_CENTRE": "v"}, calib),
                ("centre K, V + sink", "cs", {"TQLM_KV_CENTRE": "kv"}, calib),
                ("centre K slow dims (period >= 2048) + sink", "cs", {"TQLM_KV_CENTRE_KDIMS": "slow:2048"}, calib),
                ("centre K + sink, per-window means (oracle)", "cs", {}, oracle)]
    out = ["Centring study (KL vs bf16 cache; PPL in brackets): keys are centred by default; `oracle` means are "
           "measured on the very windows scored, the best that per-sequence means could do", "",
           "| variant | " + " | ".join(CENTRE_BASES) + " |", "|---|" + "---|" * len(CENTRE_BASES)]
    for label, suffix, env, cal in variants:
        cells = []
        for b in CENTRE_BASES:
            r = ppl(model, b + suffix, base=ref, env=dict(os.environ, **env), calib=cal)
            cells.append(f"{r['kl_mean']:.5f} ({r['ppl']:.2f})")
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    return out + [""]


if __name__ == "__main__":
    main()
