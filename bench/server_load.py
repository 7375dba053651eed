#!/usr/bin/env python3
"""Load on `tqlm serve`: N concurrent clients (the official openai package, streaming chat) for a fixed time.
Prints failed requests, aggregate streamed chunks/s, TTFT and inter-token p50/p99, the server's RSS minus its KV
pool over time (slope over the second half; the pool itself grows up to its budget with cached prefixes) and its KV pool at the end (must be back to zero blocks in use).

  .venv/bin/python bench/server_load.py --clients 32 --seconds 600 [--model models/smollm2-135m-instruct]

Starts its own server (build/tqlm serve --port 0) unless --url is given."""
import argparse
import json
import re
import statistics
import subprocess
import threading
import time

import openai


def start_server(args):
    p = subprocess.Popen([args.tqlm, "serve", args.model, "--port", "0", "--max-seqs", str(args.max_seqs)],
                         stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    for line in p.stderr:
        m = re.search(r"listening on (http://\S+)", line)
        if m:
            threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
            return p, m.group(1)
    raise RuntimeError("server did not start")


def metrics(url):
    import urllib.request
    text = urllib.request.urlopen(url + "/metrics", timeout=30).read().decode()
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(tqlm_\w+) (\S+)$", text, re.M)}


def run_load(url, clients, seconds, max_tokens, sample_rss=True):
    """`clients` threads streaming chat completions for `seconds`; returns the figures (latencies in ms)."""
    client = openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=600)
    model = client.models.list().data[0].id
    stop = time.time() + seconds
    ttft, itl, failed, tokens, done, lock = [], [], [0], [0], [0], threading.Lock()
    rss = []

    def worker(i):
        n = 0
        while time.time() < stop:
            n += 1
            t0 = time.time()
            last, first = None, None
            try:
                for ch in client.chat.completions.create(
                        model=model, stream=True, max_tokens=max_tokens, temperature=0.7, seed=i * 1000 + n,
                        messages=[{"role": "user", "content": f"Client {i}, request {n}: tell me a short story."}]):
                    if ch.choices and ch.choices[0].delta.content:
                        now = time.time()
                        with lock:
                            if first is None:
                                first = now
                                ttft.append(now - t0)
                            else:
                                itl.append(now - last)
                            tokens[0] += 1
                        last = now
                with lock:
                    done[0] += 1
            except Exception:  # noqa: BLE001 - every failure counts
                with lock:
                    failed[0] += 1

    def sampler():
        while time.time() < stop:
            m = metrics(url)  # RSS without the KV pool: the pool keeps finished prompts for reuse, by design
            rss.append((time.time(), m["tqlm_resident_bytes"] - m["tqlm_kv_pool_bytes"]))
            time.sleep(1)

    th = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    if sample_rss:
        th.append(threading.Thread(target=sampler))
    t0 = time.time()
    for t in th:
        t.start()
    for t in th:
        t.join()
    wall = time.time() - t0
    q = lambda v, p: (statistics.quantiles(v, n=100)[p - 1] if len(v) > 1 else v[0] if v else 0) * 1e3  # noqa: E731
    half = [(t, r) for t, r in rss if t > t0 + wall / 2]
    slope = 0.0
    if len(half) > 2:
        xs, ys = [t for t, _ in half], [r for _, r in half]
        mx, my = statistics.mean(xs), statistics.mean(ys)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    marks = [rss[min(len(rss) - 1, len(rss) * k // 8)][1] / 1e6 for k in range(1, 9)] if rss else []
    return {"clients": clients, "seconds": wall, "failed": failed[0], "requests": done[0], "chunks": tokens[0],
            "chunks_per_s": tokens[0] / wall, "ttft_p50_ms": q(ttft, 50), "ttft_p99_ms": q(ttft, 99),
            "itl_p50_ms": q(itl, 50), "itl_p99_ms": q(itl, 99), "rss_minus_kv_mb": marks,
            "slope_mb_per_min": slope / 1e6 * 60}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--max-seqs", type=int, default=16)
    ap.add_argument("--model", default="models/smollm2-135m-instruct")
    ap.add_argument("--tqlm", default="build/tqlm")
    ap.add_argument("--url", help="an already running server")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    proc, url = (None, args.url) if args.url else start_server(args)
    r = run_load(url, args.clients, args.seconds, args.max_tokens)
    time.sleep(1)
    m = metrics(url)
    r["kv_blocks_used_end"], r["running_end"] = m["tqlm_kv_blocks_used"], m["tqlm_sequences_running"]
    print(f"{args.clients} clients, {r['seconds']:.0f} s: {r['failed']} failed requests, {r['requests']} completed, "
          f"{r['chunks_per_s']:.1f} streamed content chunks/s, TTFT p50 {r['ttft_p50_ms']:.0f} ms p99 "
          f"{r['ttft_p99_ms']:.0f} ms, inter-token p50 {r['itl_p50_ms']:.1f} ms p99 {r['itl_p99_ms']:.1f} ms")
    print("RSS - KV pool at each eighth of the run (MB): " + " ".join(f"{x:.1f}" for x in r["rss_minus_kv_mb"]))
    print(f"slope over the second half {r['slope_mb_per_min']:.2f} MB/min; KV blocks in use at the end "
          f"{r['kv_blocks_used_end']:.0f}, running {r['running_end']:.0f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(r, f, indent=1)
    if proc:
        proc.terminate()
    if r["failed"] or r["kv_blocks_used_end"] != 0:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
