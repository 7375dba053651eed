#!/usr/bin/env python3
"""The same load against `tqlm serve` and llama.cpp's own OpenAI server on the same weights: tqlm on the default
model's MLX copy, llama.cpp (`python -m llama_cpp.server`, llama-cpp-python[server]) on the Q4_1 GGUF it was
converted from losslessly. For each client count, N streaming chat clients (the official openai package) run for a
fixed time against one server, then the other; printed side by side: streamed tokens/s (content chunks: both
servers send one token per chunk), TTFT and inter-token p50/p99, failed requests, and the ratios.

  .venv/bin/python bench/server_vs_llamacpp.py [--clients 1,8,32] [--seconds 60] [--threads 2]

Note: llama-cpp-python's server runs one request at a time (one llama_context behind a lock); the others wait
(started with --interrupt_requests False: by default each new request cuts off the one streaming).
That is the server this package ships; llama.cpp's C++ llama-server (not built here) can batch slots."""
import argparse
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from server_load import run_load  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url, proc, what, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url + "/v1/models", timeout=5).read()
            return
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.5)
    raise RuntimeError(f"{what} did not start in {timeout} s")


def start_tqlm(a):
    p = subprocess.Popen([a.tqlm, "serve", a.model, "--port", "0", "-t", str(a.threads), "--ctx", str(a.ctx),
                          "--max-seqs", str(a.max_seqs)], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    for line in p.stderr:
        m = re.search(r"listening on (http://\S+)", line)
        if m:
            threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
            wait_ready(m.group(1), p, "tqlm serve")
            return p, m.group(1)
    raise RuntimeError("tqlm serve did not start")


def start_llamacpp(a):
    port = free_port()
    p = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(a.gguf), "--host", "127.0.0.1",
                          "--port", str(port), "--n_threads", str(a.threads), "--n_threads_batch", str(a.threads),
                          "--n_ctx", str(a.ctx), "--n_batch", "512", "--model_alias", "smollm2",
                          "--interrupt_requests", "False"],  # default: a new request cuts off the streaming one
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, p, "llama_cpp.server")
    return p, url


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", default="1,8,32")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--max-seqs", type=int, default=32)
    ap.add_argument("--model", default=str(ROOT / "models" / "smollm2-135m-instruct"))
    ap.add_argument("--gguf", default=None, help="default: the GGUF cached by scripts/get-default-model.sh")
    ap.add_argument("--tqlm", default=str(ROOT / "build" / "tqlm"))
    a = ap.parse_args()
    if a.gguf is None:  # the default model's own GGUF (a glob over .cache finds the speed twins' random-weight ones)
        sys.path.insert(0, str(ROOT / "tests" / "oracle"))
        from default_gguf import q4_gguf
        a.gguf = q4_gguf()
    levels = [int(x) for x in a.clients.split(",")]
    rows = {}
    for name, start in (("tqlm", start_tqlm), ("llama.cpp", start_llamacpp)):
        proc, url = start(a)
        try:
            run_load(url, 1, 5, 8, sample_rss=False)  # warm-up
            for n in levels:
                r = run_load(url, n, a.seconds, a.max_tokens, sample_rss=False)
                rows[(name, n)] = r
                print(f"{name:9s} {n:3d} clients: {r['chunks_per_s']:7.1f} tok/s, TTFT p50 {r['ttft_p50_ms']:7.0f} ms "
                      f"p99 {r['ttft_p99_ms']:7.0f} ms, ITL p50 {r['itl_p50_ms']:6.1f} ms p99 {r['itl_p99_ms']:6.1f} ms, "
                      f"{r['requests']} requests, {r['failed']} failed", flush=True)
        finally:
            proc.terminate()
            proc.wait(30)
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    print(f"\n{cpu}, {os.cpu_count()} cores, {a.threads} threads, {a.seconds:.0f} s per level, max_tokens "
          f"{a.max_tokens}, tqlm --max-seqs {a.max_seqs}\n")
    print("| clients | tqlm tok/s | llama.cpp tok/s | ratio | tqlm TTFT p50 / p99 ms | llama.cpp TTFT p50 / p99 ms "
          "| tqlm ITL p50 / p99 ms | llama.cpp ITL p50 / p99 ms |")
    print("|---|---|---|---|---|---|---|---|")
    for n in levels:
        t, l = rows[("tqlm", n)], rows[("llama.cpp", n)]
        ratio = t["chunks_per_s"] / l["chunks_per_s"] if l["chunks_per_s"] else float("inf")
        print(f"| {n} | {t['chunks_per_s']:.1f} | {l['chunks_per_s']:.1f} | {ratio:.2f}x | {t['ttft_p50_ms']:.0f} / "
              f"{t['ttft_p99_ms']:.0f} | {l['ttft_p50_ms']:.0f} / {l['ttft_p99_ms']:.0f} | {t['itl_p50_ms']:.1f} / "
              f"{t['itl_p99_ms']:.1f} | {l['itl_p50_ms']:.1f} / {l['itl_p99_ms']:.1f} |")
    if any(r["failed"] for r in rows.values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
