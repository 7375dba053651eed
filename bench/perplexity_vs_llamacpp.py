#!/usr/bin/env python3
"""Perplexity of the default model: tqlm (MLX checkpoint) beside llama.cpp (the GGUF it came from),
on the same windows of the same text, in one run.

    .venv/bin/python bench/perplexity_vs_llamacpp.py [--ctx 2048] [--samples 10] [--threads 2]

Both tokenize the text once without special tokens (the token ids are checked to be identical), take
windows [i*ctx, (i+1)*ctx) for the first --samples windows, and score each window's ctx-1 next-token
predictions from an empty cache. llama.cpp runs with f32 KV (its default f16 KV would add its own error).
"""
import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "models" / "smollm2-135m-instruct"))
    ap.add_argument("--gguf", default=None, help="default: the GGUF cached by scripts/get-default-model.sh")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "wikitext-2" / "wiki.test.raw"))
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--kv", default="bf16", help="tqlm KV cache mode")
    ap.add_argument("--tqlm", default=str(ROOT / "build" / "tqlm"))
    a = ap.parse_args()

    import llama_cpp
    from tokenizers import Tokenizer

    gguf = a.gguf
    if gguf is None:  # the default model's own GGUF (a glob over .cache finds the speed twins' random-weight ones)
        sys.path.insert(0, str(ROOT / "tests" / "oracle"))
        from default_gguf import q4_gguf
        gguf = q4_gguf()
    text = Path(a.data).read_text(encoding="utf-8")
    ids = Tokenizer.from_file(str(Path(a.model) / "tokenizer.json")).encode(text, add_special_tokens=False).ids
    llm = llama_cpp.Llama(str(gguf), n_ctx=a.ctx, n_batch=512, n_ubatch=512, logits_all=True, n_threads=a.threads,
                          type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32, verbose=False)
    llama_ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
    n_used = a.ctx * a.samples
    if llama_ids[:n_used] != ids[:n_used]:
        sys.exit("token ids differ between the MLX checkpoint's tokenizer.json and llama.cpp")

    # llama.cpp
    nll = []
    t0 = time.time()
    for w in range(a.samples):
        win = ids[w * a.ctx:(w + 1) * a.ctx]
        llm.reset()
        llm.eval(win)
        logits = np.array(llm.scores[:a.ctx - 1], dtype=np.float64)
        m = logits.max(-1, keepdims=True)
        lse = np.log(np.exp(logits - m).sum(-1)) + m[:, 0]
        nll.extend(lse - logits[np.arange(a.ctx - 1), win[1:]])
    llama_s = time.time() - t0
    llama_ppl = math.exp(float(np.mean(nll)))
    llama_se = llama_ppl * float(np.std(nll, ddof=1)) / math.sqrt(len(nll))

    # tqlm
    r = subprocess.run([a.tqlm, "perplexity", a.model, "--data", a.data, "--ctx", str(a.ctx), "--samples",
                        str(a.samples), "--threads", str(a.threads), "--kv", a.kv, "--json"],
                       check=True, capture_output=True, text=True)
    t = json.loads(r.stdout)

    toks = a.ctx * a.samples
    print(f"SmolLM2-135M-Instruct Q4_1, {Path(a.data).name}, ctx {a.ctx}, {a.samples} windows "
          f"({a.samples * (a.ctx - 1)} predictions), {a.threads} threads")
    print(f"| engine | weights | KV | PPL | +/- | prefill tok/s |")
    print(f"|---|---|---|---|---|---|")
    print(f"| llama.cpp (llama-cpp-python {llama_cpp.__version__}) | GGUF Q4_1 | f32 | {llama_ppl:.4f} | "
          f"{llama_se:.4f} | {toks / llama_s:.0f} |")
    print(f"| tqlm | MLX affine 4-bit g32 (lossless copy) | {a.kv} | {t['ppl']:.4f} | {t['ppl_se']:.4f} | "
          f"{t['tokens_per_second']:.0f} |")
    print(f"PPL ratio tqlm / llama.cpp = {t['ppl'] / llama_ppl:.5f}")


if __name__ == "__main__":
    main()
