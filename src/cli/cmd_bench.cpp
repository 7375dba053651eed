#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli/commands.h"
#include "cli/options.h"
#include "cli/progress.h"
#include "core/error.h"
#include "eval/bench.h"
#include "tokenizer/tokenizer.h"

namespace tqlm::cli {

void add_bench(CLI::App& app) {
  struct Opts {
    ModelOptions m;
    BenchOptions b;
    std::string data;
    bool json = false, no_bandwidth = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand(
      "bench",
      "Prefill and greedy-decode speed at each --contexts length for one --kv mode: tokens/s, the bytes each "
      "decoded "
      "token reads (active weights + KV cache), the bandwidth that implies and its share of this machine's "
      "measured "
      "read bandwidth, and the cache's reported bytes beside the process's resident-memory growth.");
  add_model_options(cmd, o->m, false);
  cmd->add_option("--contexts", o->b.contexts, "Prompt lengths in tokens, comma separated")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--decode,-n", o->b.decode, "Tokens decoded (timed) after each prompt")
      ->capture_default_str();
  cmd->add_option("--chunk", o->b.chunk, "Prefill tokens per forward")->capture_default_str();
  cmd->add_option("--data,-f", o->data,
                  "Text file whose tokens make the prompt (default: pseudo-random token ids)")
      ->check(CLI::ExistingFile);
  cmd->add_flag("--no-bandwidth", o->no_bandwidth, "Skip the read-bandwidth measurement");
  cmd->add_flag("--json", o->json, "Print the results as JSON");
  cmd->callback([o] {
    if (o->b.decode < 0 || o->b.chunk < 1) fail("bench: --decode must be >= 0 and --chunk >= 1");
    Model model(o->m.model, o->m.threads);
    o->b.kv = o->m.kv_spec();
    const KVLayout layout = kv_layout(o->b.kv, model.config().kv_shape());
    if (!o->data.empty()) {
      Tokenizer tok = Tokenizer::from_file(o->m.model);
      std::ifstream in(o->data, std::ios::binary);
      std::stringstream ss;
      ss << in.rdbuf();
      o->b.tokens = tok.encode(ss.str(), false);
      if (o->b.tokens.empty()) fail("{}: no tokens", o->data);
    }
    const double bw = o->no_bandwidth ? 0.0 : measure_read_bandwidth(model.pool());
    auto pts = run_bench(model, o->b, [](const std::string& s) {
      if (stderr_is_tty()) std::fprintf(stderr, "\r%s   ", s.c_str());
    });
    if (stderr_is_tty()) std::fputc('\n', stderr);
    if (o->json) {
      nlohmann::json j = {{"model", o->m.model},
                          {"kv", o->m.kv},
                          {"kv_boundary", layout.boundary},
                          {"kv_bytes_per_token", layout.bytes_per_token()},
                          {"kv_nominal_ratio", layout.nominal_ratio()},
                          {"kv_real_ratio", layout.real_ratio()},
                          {"threads", model.pool().size()},
                          {"isa", kernel_isa()},
                          {"read_bandwidth_gbps", bw},
                          {"points", nlohmann::json::array()}};
      for (const auto& p : pts)
        j["points"].push_back({{"context", p.context},
                               {"prefill_tps", p.prefill_tps},
                               {"decode_tps", p.decode_tps},
                               {"prefill_seconds", p.prefill_seconds},
                               {"decode_seconds", p.decode_seconds},
                               {"weight_bytes_per_token", p.weight_bytes_per_token},
                               {"kv_bytes_per_token", p.kv_bytes_per_token},
                               {"achieved_gbps", p.achieved_gbps},
                               {"bandwidth_fraction", bw > 0 ? p.achieved_gbps / bw : 0.0},
                               {"cache_bytes", p.cache_bytes},
                               {"cache_growth", p.cache_growth},
                               {"rss_growth", p.rss_growth}});
      std::printf("%s\n", j.dump(2).c_str());
      return;
    }
    std::printf(
        "model %s  kv %s (boundary %d: %lld B/token, %.2fx smaller than bf16; nominal %.2fx)  threads %d  "
        "%s\n",
        o->m.model.c_str(), o->m.kv.c_str(), layout.boundary, (long long)layout.bytes_per_token(),
        layout.real_ratio(), layout.nominal_ratio(), model.pool().size(), kernel_isa());
    if (bw > 0) std::printf("measured read bandwidth %.1f GB/s\n", bw);
    std::printf("%8s %10s %10s %9s %10s %10s %8s %7s %10s %12s\n", "context", "prefill/s", "decode/s",
                "ms/tok", "weights MB", "KV MB/tok", "GB/s", "% bw", "cache MB", "RSS grew MB");
    for (const auto& p : pts)
      std::printf("%8lld %10.1f %10.2f %9.2f %10.1f %10.2f %8.2f %6.1f%% %10.1f %12.1f\n",
                  (long long)p.context, p.prefill_tps, p.decode_tps,
                  p.decode_tps > 0 ? 1000.0 / p.decode_tps : 0.0, p.weight_bytes_per_token / 1e6,
                  p.kv_bytes_per_token / 1e6, p.achieved_gbps, bw > 0 ? 100.0 * p.achieved_gbps / bw : 0.0,
                  double(p.cache_bytes) / 1e6, double(p.rss_growth) / 1e6);
    std::printf(
        "(RSS grew = resident memory growth from the first prefill chunk to the end, beside the cache's own "
        "growth over that span: %s)\n",
        pts.empty() ? "-"
                    : (std::to_string(pts.back().cache_growth / 1000000) + " MB in the last row").c_str());
  });
}

}  // namespace tqlm::cli
