#include "cli/bench_output.h"

#include <cstdio>

#include "cli/progress.h"

namespace tqlm::cli {

nlohmann::json bench_points_json(const std::vector<BenchPoint>& pts) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& p : pts)
    a.push_back({{"context", p.context},
                 {"prefill_tps", p.prefill_tps},
                 {"decode_tps", p.decode_tps},
                 {"prefill_seconds", p.prefill_seconds},
                 {"decode_seconds", p.decode_seconds},
                 {"weight_bytes_per_token", p.weight_bytes_per_token},
                 {"kv_bytes_per_token", p.kv_bytes_per_token},
                 {"achieved_gbps", p.achieved_gbps},
                 {"prefill_layer_seconds", p.prefill_layer_seconds},
                 {"decode_layer_seconds", p.decode_layer_seconds},
                 {"read_gbps", p.read_gbps},
                 {"bandwidth_fraction", p.bandwidth_share()},
                 {"cache_bytes", p.cache_bytes},
                 {"cache_growth", p.cache_growth},
                 {"rss_growth", p.rss_growth}});
  return a;
}

void print_bench_points(const std::vector<BenchPoint>& pts) {
  std::printf("%8s %10s %10s %9s %10s %10s %8s %8s %7s %10s %12s\n", "context", "prefill/s", "decode/s",
              "ms/tok", "weights MB", "KV MB/tok", "GB/s", "read GB/s", "% bw", "cache MB", "RSS grew MB");
  for (const auto& p : pts)
    std::printf("%8lld %10.1f %10.2f %9.2f %10.1f %10.2f %8.2f %9.1f %6.1f%% %10.1f %12.1f\n",
                (long long)p.context, p.prefill_tps, p.decode_tps,
                p.decode_tps > 0 ? 1000.0 / p.decode_tps : 0.0, p.weight_bytes_per_token / 1e6,
                p.kv_bytes_per_token / 1e6, p.achieved_gbps, p.read_gbps, 100.0 * p.bandwidth_share(),
                double(p.cache_bytes) / 1e6, double(p.rss_growth) / 1e6);
  std::printf(
      "(read GB/s = this machine's read bandwidth measured beside the point's decode (the median of read "
      "passes "
      "as it starts, every %d tokens and as it ends), %% bw the decode's share of it; RSS grew = resident "
      "memory growth while the "
      "sequence ran (after a warm-up step), beside the cache's own growth over that span: %s)\n",
      kProbeEvery,
      pts.empty() ? "-"
                  : (std::to_string(pts.back().cache_growth / 1000000) + " MB in the last row").c_str());
}

std::function<void(const std::string&)> bench_progress() {
  return [](const std::string& s) {
    if (stderr_is_tty()) std::fprintf(stderr, "\r%s   ", s.c_str());
  };
}

void end_bench_progress() {
  if (stderr_is_tty()) std::fputc('\n', stderr);
}

}  // namespace tqlm::cli
