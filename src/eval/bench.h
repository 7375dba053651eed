// Speed measurement: prefill and greedy decode at given context lengths for one KV cache mode, with the
// bytes each decoded token has to read (active weights + the KV cache so far), the bandwidth that implies,
// and the cache's reported bytes beside the process's resident-memory growth.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/memory.h"
#include "model/model.h"

namespace tqlm {

struct BenchOptions {
  std::vector<int64_t> contexts = {128, 4096};  // prompt tokens before decoding
  int64_t decode = 32;                          // tokens decoded (timed) after each prefill
  int64_t chunk = 512;                          // prefill tokens per forward
  KVSpec kv;
  std::vector<int32_t> tokens;  // prompt source (repeated as needed); empty: pseudo-random ids
};

struct BenchPoint {
  int64_t context = 0;
  double prefill_seconds = 0, decode_seconds = 0;
  double prefill_tps = 0, decode_tps = 0;
  double weight_bytes_per_token = 0;  // active weights read per decoded token
  double kv_bytes_per_token = 0;      // cache bytes read per decoded token (mean over the decoded tokens)
  double achieved_gbps = 0;           // (weights + KV bytes) / seconds per decoded token
  uint64_t cache_bytes = 0;           // the cache's report after decoding
  int64_t rss_growth = 0;             // resident memory growth while the sequence ran (after a warm-up step)
  uint64_t cache_growth = 0;          // cache bytes growth over the same span
};

// Bytes of weights one token reads: every dense tensor, top_k of the experts, one embedding row.
double active_weight_bytes(const Model& m);

// The instruction-set family of the linear kernels in use ("avx512", "avx2", ...).
const char* kernel_isa();
const char* attention_isa();  // the KV attention kernel family (kv_kernels().isa)
std::string linear_family();  // the quantized linear path and family, e.g. "int8 avx512vbmi"

// n prompt tokens for a benchmark: source[(offset + i) % size] when a source text was given, else
// pseudo-random ids in [100, vocab) from an LCG seeded with `seed` (repeatable, no shared prefixes across
// seeds).
std::vector<int32_t> bench_prompt(const std::vector<int32_t>& source, int64_t vocab, int64_t n, uint64_t seed,
                                  int64_t offset = 0);

// Read bandwidth of this machine with the model's threads (GB/s, best of a few passes over 512 MiB).
double measure_read_bandwidth(ThreadPool& pool);

std::vector<BenchPoint> run_bench(Model& model, const BenchOptions& opt,
                                  const std::function<void(const std::string&)>& on_progress);

}  // namespace tqlm
