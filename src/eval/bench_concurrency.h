// Many streams at once through the scheduler: for each concurrency level, that many requests of distinct
// prompts submitted together, greedy, a fixed number of generated tokens each. Reports the aggregate decode
// speed (tokens of all streams per second over the steps that only decoded: the weights are read once per
// step for all of them), per-stream inter-token latency, time to first token, the KV pool's bytes and RSS;
// and the prefix-reuse figure: time to first token of a request whose long prefix is already cached against
// the same request computed from scratch.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/model.h"

namespace tqlm {

struct ConcurrencyOptions {
  std::vector<int64_t> levels;  // streams at once per level, e.g. {1, 2, 4, 8, 16}
  int64_t prompt = 512;         // tokens per request
  int64_t generate = 128;       // tokens generated per request
  int64_t step_tokens = 512;
  uint64_t kv_mem = 0;  // KV pool budget (0: default_kv_budget())
  KVSpec kv;
  int64_t prefix = 2048;        // prefix-reuse figure: shared prefix length (0: skip)
  std::vector<int32_t> tokens;  // prompt source (repeated as needed); empty: pseudo-random ids
};

struct ConcurrencyPoint {
  int64_t concurrency = 0;
  double aggregate_decode_tps = 0;  // decode-only steps: rows / seconds
  double wall_tps = 0;              // all generated tokens / wall time of the level
  double itl_p50_ms = 0, itl_p99_ms = 0;
  double ttft_p50_ms = 0, ttft_max_ms = 0;
  uint64_t kv_pool_bytes = 0;  // peak
  int64_t rss_bytes = 0;       // at the end of the level
  int64_t preemptions = 0;
  double seconds = 0;
};

struct PrefixReuse {
  int64_t prefix = 0, suffix = 0;
  double ttft_cold_ms = 0, ttft_warm_ms = 0;
  int64_t cached_tokens = 0;
  double speedup() const { return ttft_warm_ms > 0 ? ttft_cold_ms / ttft_warm_ms : 0; }
};

std::vector<ConcurrencyPoint> run_concurrency_bench(
    Model& model, const ConcurrencyOptions& opt, const std::function<void(const std::string&)>& on_progress);
PrefixReuse run_prefix_reuse_bench(Model& model, const ConcurrencyOptions& opt);

}  // namespace tqlm
