// Attention over the KV cache alone: a cache of --layers layers (30: larger than the last-level cache, as in
// a real model) of --ctx tokens (random keys and values, the same in every layer), then
// decode (one query token, T = 1) and a prefill chunk (--chunk query tokens at the end of the context), for
// each KV mode asked. Prints ns per (cached token, kv head) for decode, and per (query token, cached token,
// kv head) for prefill, with the cache bytes read per second in decode. Each timed step attends every
// layer in turn.
//
//   build/tqlm_attn_bench [--ctx 8192] [--chunk 256] [--layers 30] [--heads 9] [--kv-heads 3] [--head-dim 64]
//                         [--threads 2] [--reps 20] [--modes bf16,turbo4v2,...]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kv/kv_cache.h"

using namespace tqlm;

namespace {

double seconds_of(const auto& fn, int reps) {  // best of reps
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t ctx = 8192, chunk = 256, layers = 30, H = 9, KV = 3, hd = 64, threads = 2, reps = 20;
  std::string modes = "bf16,q8,turbo4,turbo4v2,turbo3";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--modes") {
      modes = argv[i + 1];
      continue;
    }
    const int64_t v = std::atoll(argv[i + 1]);
    int64_t* opt = a == "--ctx"        ? &ctx
                   : a == "--chunk"    ? &chunk
                   : a == "--layers"   ? &layers
                   : a == "--heads"    ? &H
                   : a == "--kv-heads" ? &KV
                   : a == "--head-dim" ? &hd
                   : a == "--threads"  ? &threads
                   : a == "--reps"     ? &reps
                                       : nullptr;
    if (!opt || v <= 0) {
      std::fprintf(stderr, "bad option %s\n", a.c_str());
      return 2;
    }
    *opt = v;
  }
  ThreadPool pool{static_cast<int>(threads)};
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  const int64_t n = ctx + chunk;  // keys and values of every position
  std::vector<float> k(size_t(n * KV * hd)), v(k.size()), q(size_t(chunk * H * hd)), out(q.size());
  for (auto& x : k) x = nd(rng);
  for (auto& x : v) x = nd(rng);
  for (auto& x : q) x = 2.0f * nd(rng);
  std::printf("%ld layers, ctx %ld, chunk %ld, heads %ld/%ld of %ld, %ld thread(s), best of %ld\n",
              long(layers), long(ctx), long(chunk), long(H), long(KV), long(hd), long(threads), long(reps));
  std::printf("%-10s %10s %12s %10s %14s\n", "mode", "bytes/tok", "decode ns/th", "GB/s", "prefill ns/qth");
  std::stringstream ss(modes);
  for (std::string mode; std::getline(ss, mode, ',');) {
    const KVShape shape{layers, H, KV, hd};
    auto cache = make_kv_cache(KVSpec(mode, 0), shape);
    for (int64_t t = 0; t < n; t += 256) {
      const int64_t T = std::min<int64_t>(256, n - t);
      for (int64_t l = 0; l < layers; ++l)
        cache->write(l, t, T, &k[size_t(t * KV * hd)], &v[size_t(t * KV * hd)]);
    }
    auto step = [&](int64_t T) {
      for (int64_t l = 0; l < layers; ++l) cache->attend(l, ctx, T, q.data(), out.data(), pool);
    };
    const double dec = seconds_of([&] { step(1); }, int(reps));
    const double pre = seconds_of([&] { step(chunk); }, std::max<int>(1, int(reps) / 4));
    const double bpt = cache->bytes_per_token();  // all layers
    const double th = double(ctx + 1) * double(KV * layers);
    const double qth = double(chunk) * (double(ctx) + double(chunk) / 2) * double(KV * layers);
    std::printf("%-10s %10.0f %12.2f %10.1f %14.3f\n", mode.c_str(), bpt, dec * 1e9 / th,
                double(ctx + 1) * bpt / dec / 1e9, pre * 1e9 / qth);
  }
}
