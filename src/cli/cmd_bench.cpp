#include <cstdio>

#include "cli/bench_output.h"
#include "cli/bench_synthetic.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "cli/progress.h"
#include "core/error.h"
#include "core/json.h"
#include "eval/bench.h"
#include "eval/bench_concurrency.h"
#include "runtime/scheduler.h"
#include "tokenizer/tokenizer.h"

namespace tqlm::cli {

namespace {
void run_concurrency(Model& model, const ConcurrencyOptions& c, const std::string& name, bool json) {
  const uint64_t budget = c.kv_mem ? c.kv_mem : default_kv_budget();
  if (!json)
    std::fprintf(stderr, "KV pool: %.2f GB (%s), %s cache, %lld-token prompts, %lld generated tokens each\n",
                 double(budget) / 1e9, c.kv_mem ? "--kv-mem" : "default: half the available memory",
                 c.kv.mode.c_str(), (long long)c.prompt, (long long)c.generate);
  auto pts = run_concurrency_bench(model, c, bench_progress());
  end_bench_progress();
  PrefixReuse pr;
  if (c.prefix > 0) pr = run_prefix_reuse_bench(model, c);
  const double base = pts.empty() ? 0 : pts[0].aggregate_decode_tps;
  if (json) {
    nlohmann::json j = {{"model", name},
                        {"kv", c.kv.mode},
                        {"threads", model.pool().size()},
                        {"isa", kernel_isa()},
                        {"linear", linear_family()},
                        {"attention", attention_isa()},
                        {"prompt", c.prompt},
                        {"generate", c.generate},
                        {"kv_pool_budget", budget},
                        {"levels", nlohmann::json::array()}};
    for (const auto& p : pts)
      j["levels"].push_back({{"concurrency", p.concurrency},
                             {"aggregate_decode_tps", p.aggregate_decode_tps},
                             {"speedup_vs_first", base > 0 ? p.aggregate_decode_tps / base : 0.0},
                             {"wall_tps", p.wall_tps},
                             {"itl_p50_ms", p.itl_p50_ms},
                             {"itl_p99_ms", p.itl_p99_ms},
                             {"ttft_p50_ms", p.ttft_p50_ms},
                             {"ttft_max_ms", p.ttft_max_ms},
                             {"kv_pool_bytes", p.kv_pool_bytes},
                             {"rss_bytes", p.rss_bytes},
                             {"preemptions", p.preemptions},
                             {"seconds", p.seconds}});
    if (c.prefix > 0)
      j["prefix_reuse"] = {{"prefix", pr.prefix},
                           {"suffix", pr.suffix},
                           {"cached_tokens", pr.cached_tokens},
                           {"ttft_cold_ms", pr.ttft_cold_ms},
                           {"ttft_warm_ms", pr.ttft_warm_ms},
                           {"speedup", pr.speedup()}};
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  std::printf("model %s  kv %s  threads %d  %s  linear %s  attention %s\n", name.c_str(), c.kv.mode.c_str(),
              model.pool().size(), kernel_isa(), linear_family().c_str(), attention_isa());
  std::printf("%6s %12s %8s %10s %9s %9s %10s %10s %10s %9s %8s\n", "streams", "decode tok/s", "x first",
              "wall tok/s", "ITL p50", "ITL p99", "TTFT p50", "TTFT max", "KV MB", "RSS MB", "preempt");
  for (const auto& p : pts)
    std::printf("%6lld %12.1f %8.2f %10.1f %7.1fms %7.1fms %8.0fms %8.0fms %10.1f %9.1f %8lld\n",
                (long long)p.concurrency, p.aggregate_decode_tps,
                base > 0 ? p.aggregate_decode_tps / base : 0.0, p.wall_tps, p.itl_p50_ms, p.itl_p99_ms,
                p.ttft_p50_ms, p.ttft_max_ms, double(p.kv_pool_bytes) / 1e6, double(p.rss_bytes) / 1e6,
                (long long)p.preemptions);
  if (c.prefix > 0)
    std::printf(
        "prefix reuse: %lld-token prefix + %lld new tokens: time to first token %.0f ms computed, %.0f ms "
        "with the prefix cached (%lld tokens reused): %.1fx\n",
        (long long)pr.prefix, (long long)pr.suffix, pr.ttft_cold_ms, pr.ttft_warm_ms,
        (long long)pr.cached_tokens, pr.speedup());
}
}  // namespace

void add_bench(CLI::App& app) {
  struct Opts {
    ModelOptions m;
    BenchOptions b;
    std::string data;
    bool json = false, no_bandwidth = false;
    ConcurrencyOptions c;
    std::string kv_mem;
    SyntheticBenchOptions syn;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand(
      "bench",
      "Prefill and greedy-decode speed at each --contexts length for one --kv mode: tokens/s, the bytes each "
      "decoded token reads (active weights + KV cache), the bandwidth that implies and its share of this "
      "machine's read bandwidth measured beside each point's decode (the median of 512 MiB read passes as it "
      "starts, every 16 tokens and as it ends; their time is not counted), and the cache's reported bytes "
      "beside the process's resident-memory growth. --synthetic minimax-m2 instead measures a few of "
      "MiniMax-M2's layers with random weights and "
      "predicts the full model's speed.");
  add_model_options(cmd, o->m, false);
  cmd->get_option("--model")->required(false);  // or --synthetic
  cmd->add_option("--contexts", o->b.contexts, "Prompt lengths in tokens, comma separated")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--decode,-n", o->b.decode, "Tokens decoded (timed) after each prompt")
      ->capture_default_str();
  cmd->add_option("--chunk", o->b.chunk, "Prefill tokens per forward")->capture_default_str();
  cmd->add_option("--data,-f", o->data,
                  "Text file whose tokens make the prompt (default: pseudo-random token ids)")
      ->check(regular_file_check("--data"));
  cmd->add_flag("--no-bandwidth", o->no_bandwidth,
                "Skip the read-bandwidth measurement (and its 512 MiB buffer)");
  cmd->add_option(
         "--concurrency", o->c.levels,
         "Instead of --contexts: streams at once, comma separated (e.g. 1,2,4,8,16); each level submits "
         "that many requests of --prompt tokens generating --gen tokens, and reports aggregate decode "
         "tokens/s, inter-token latency p50/p99, time to first token, KV pool bytes and RSS; then the "
         "time to first token of a request whose --prefix tokens are cached vs computed")
      ->delimiter(',');
  cmd->add_option("--prompt", o->c.prompt, "With --concurrency: prompt tokens per request")
      ->capture_default_str();
  cmd->add_option("--gen", o->c.generate, "With --concurrency: tokens generated per request")
      ->capture_default_str();
  cmd->add_option("--prefix", o->c.prefix,
                  "With --concurrency: shared prefix for the prefix-reuse figure (0: skip)")
      ->capture_default_str();
  cmd->add_option("--kv-mem", o->kv_mem, "KV pool budget, e.g. 6GB (default: half the available memory)");
  cmd->add_flag("--json", o->json, "Print the results as JSON");
  add_synthetic_options(cmd, o->syn);
  cmd->callback([o] {
    if (o->b.decode < 0 || o->b.chunk < 1) fail("bench: --decode must be >= 0 and --chunk >= 1");
    if (o->m.model.empty() == o->syn.model.empty())
      fail("bench: give a MODEL directory or --synthetic NAME (one of them)");
    if (!o->syn.model.empty()) {
      if (!o->data.empty() || !o->c.levels.empty())
        fail(
            "bench --synthetic: --data and --concurrency need a real model (the synthetic one has no "
            "tokenizer and is measured one sequence at a time)");
      run_synthetic_bench(o->syn, o->m, o->b, !o->no_bandwidth, o->json);
      return;
    }
    Model model(o->m.model, o->m.threads);
    print_config_warnings(model.config());
    o->b.kv = o->m.kv_spec();
    const KVLayout layout = kv_layout(o->b.kv, model.config().kv_shape());
    if (!o->data.empty()) {
      Tokenizer tok = Tokenizer::from_file(o->m.model);
      o->b.tokens = tok.encode(read_text_file(o->data, "--data"), false);
      if (o->b.tokens.empty()) fail("{}: no tokens", o->data);
    }
    if (!o->c.levels.empty()) {
      o->c.kv = o->b.kv;
      o->c.tokens = o->b.tokens;
      o->c.step_tokens = o->b.chunk;
      o->c.kv_mem = o->kv_mem.empty() ? 0 : uint64_t(parse_size(o->kv_mem, "--kv-mem"));
      run_concurrency(model, o->c, o->m.model, o->json);
      return;
    }
    o->b.probe_bandwidth = !o->no_bandwidth;
    auto pts = run_bench(model, o->b, bench_progress());
    end_bench_progress();
    const double bw = median_read_gbps(pts);
    if (o->json) {
      nlohmann::json j = {{"model", o->m.model},
                          {"kv", o->m.kv},
                          {"kv_boundary", layout.boundary},
                          {"kv_bytes_per_token", layout.bytes_per_token()},
                          {"kv_nominal_ratio", layout.nominal_ratio()},
                          {"kv_real_ratio", layout.real_ratio()},
                          {"threads", model.pool().size()},
                          {"isa", kernel_isa()},
                          {"linear", linear_family()},
                          {"attention", attention_isa()},
                          {"read_bandwidth_gbps", bw},
                          {"points", bench_points_json(pts)}};
      std::printf("%s\n", j.dump(2).c_str());
      return;
    }
    std::printf(
        "model %s  kv %s (boundary %d: %lld B/token, %.2fx smaller than bf16; nominal %.2fx)  threads %d  "
        "%s  linear %s  attention %s\n",
        o->m.model.c_str(), o->m.kv.c_str(), layout.boundary, (long long)layout.bytes_per_token(),
        layout.real_ratio(), layout.nominal_ratio(), model.pool().size(), kernel_isa(),
        linear_family().c_str(), attention_isa());
    if (bw > 0) std::printf("measured read bandwidth %.1f GB/s (median of the points)\n", bw);
    print_bench_points(pts);
  });
}

}  // namespace tqlm::cli
