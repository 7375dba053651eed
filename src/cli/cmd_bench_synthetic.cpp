// `tqlm bench --synthetic minimax-m2`: checkpoints of a few middle layers of the model with random weights
// (eval/synthetic_model.h), the bench of each (eval/bench.h), and the full model's speed predicted from the
// two (eval/layer_prediction.h).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "cli/bench_output.h"
#include "cli/bench_synthetic.h"
#include "cli/progress.h"
#include "core/error.h"
#include "core/files.h"
#include "eval/layer_prediction.h"
#include "eval/synthetic_model.h"
#include "kv/kv_spec.h"
#include "model/model.h"
#include "quant/convert.h"

namespace tqlm::cli {

namespace fs = std::filesystem;

namespace {

std::string default_cache_dir() {
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x)
    return (fs::path(x) / "tqlm" / "synthetic").string();
  if (const char* h = std::getenv("HOME"); h && *h)
    return (fs::path(h) / ".cache" / "tqlm" / "synthetic").string();
  fail("bench --synthetic: neither XDG_CACHE_HOME nor HOME is set; give --dir");
}

std::string checkpoint_name(const SyntheticPlan& p) {
  std::string n = fmt::format("{}-{}-{}l", p.spec.model, safe_file_name(p.policy_name, 64), p.spec.layers);
  if (p.spec.experts) n += fmt::format("-e{}", p.spec.experts);
  if (p.spec.vocab) n += fmt::format("-v{}", p.spec.vocab);
  return n;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct Run {
  SyntheticPlan plan;
  std::string dir;
  bool written = false, removed = false;
  double write_seconds = 0;
  double plan_weight_bytes = 0;  // what a decoded token reads of this checkpoint, from its plan
  double plan_layer_bytes = 0;   // the part of it in the decoder layers
  std::vector<BenchPoint> points;
};

// Makes `r.dir` hold the plan's checkpoint: a matching one is reused, an outdated synthetic one replaced,
// anything else there refused; free space is checked before writing.
void ensure_checkpoint(Run& r) {
  std::error_code ec;
  for (const auto& p : stale_partial_outputs(r.dir)) fs::remove_all(p, ec);  // of killed runs
  if (synthetic_checkpoint_matches(r.plan, r.dir)) return;
  if (fs::exists(r.dir, ec)) {
    if (!is_synthetic_checkpoint(r.dir))
      fail(
          "bench --synthetic: {} exists and is not a synthetic checkpoint; remove it or choose another --dir",
          r.dir);
    std::fprintf(stderr, "replacing %s (written by another version or for another plan)\n", r.dir.c_str());
    fs::remove_all(r.dir);
  }
  const fs::path parent = fs::path(r.dir).parent_path();
  fs::create_directories(parent);
  const uint64_t need = r.plan.bytes + (64ull << 20), have = fs::space(parent).available;
  if (have < need)
    fail(
        "bench --synthetic: the {}-layer checkpoint needs {:.2f} GB in {}, but {:.2f} GB are free; free some "
        "space, choose another --dir or fewer --layers",
        r.plan.spec.layers, double(need) / 1e9, parent.string(), double(have) / 1e9);
  std::fprintf(stderr, "writing %s: middle layers %d..%d of %lld with the embedding and LM head, %.2f GB\n",
               r.dir.c_str(), r.plan.first_layer, r.plan.first_layer + r.plan.spec.layers - 1,
               (long long)r.plan.full.n_layers, double(r.plan.bytes) / 1e9);
  const auto t0 = std::chrono::steady_clock::now();
  write_synthetic_checkpoint(r.plan, r.dir, [&](uint64_t done, uint64_t total) {
    progress_line("write MB", double(done) / 1e6, double(total) / 1e6, seconds_since(t0), "MB");
  });
  r.written = true;
  r.write_seconds = seconds_since(t0);
}

struct Prediction {
  int64_t context = 0;
  LayerSplit decode;
  DecodePrediction full;
  double prefill_tps = 0;  // full model on this machine (0: the layer counts did not separate)
};

struct Machine {
  int threads = 0;
  double bw = 0;
};

std::string model_line(const SyntheticPlan& p) {
  const ModelConfig& c = p.full;
  return fmt::format(
      "hidden {}, {}/{} heads of {}, {} experts (top {}) of width {}, vocabulary {}{}; random weights under "
      "{}; middle layers {}.. of {}",
      c.hidden, c.n_heads, c.n_kv_heads, c.head_dim, c.n_experts, c.top_k, c.moe_intermediate, c.vocab,
      p.spec.experts || p.spec.vocab ? " (scaled down: not the model's checkpoint size)" : "", p.policy_name,
      p.first_layer, c.n_layers);
}

std::string run_line(const Run& r) {
  return fmt::format("{} middle layer{}: {} ({:.2f} GB, {}{})", r.plan.spec.layers,
                     r.plan.spec.layers == 1 ? "" : "s", r.dir, double(r.plan.bytes) / 1e9,
                     r.written ? fmt::format("written in {:.0f} s", r.write_seconds) : "reused",
                     r.removed ? ", removed" : ", kept");
}

void print_json(const SyntheticBenchOptions& o, const ModelOptions& m, const std::vector<Run>& runs,
                const Machine& mc, const PlanReads& full, const std::vector<Prediction>& preds,
                const std::string& note) {
  const SyntheticPlan& p0 = runs[0].plan;
  const ModelConfig& c = p0.full;
  nlohmann::json j = {{"synthetic", o.model},
                      {"policy", p0.policy_name},
                      {"model",
                       {{"hidden", c.hidden},
                        {"heads", c.n_heads},
                        {"kv_heads", c.n_kv_heads},
                        {"head_dim", c.head_dim},
                        {"experts", c.n_experts},
                        {"top_k", c.top_k},
                        {"expert_width", c.moe_intermediate},
                        {"vocab", c.vocab},
                        {"layers", c.n_layers}}},
                      {"scaled", p0.spec.experts != 0 || p0.spec.vocab != 0},
                      {"first_layer", p0.first_layer},
                      {"kv", m.kv},
                      {"full_model_kv_boundary", m.kv_boundary},
                      {"threads", mc.threads},
                      {"isa", kernel_isa()},
                      {"linear", linear_family()},
                      {"attention", attention_isa()},
                      {"read_bandwidth_gbps", mc.bw},
                      {"target_bandwidth_gbps", o.bandwidth},
                      {"plan",
                       {{"fixed_bytes_per_token", full.fixed},
                        {"layer_bytes_per_token", full.layer},
                        {"weight_bytes_per_token", full.fixed + full.layers()}}},
                      {"runs", nlohmann::json::array()}};
  for (const Run& r : runs)
    j["runs"].push_back({{"layers", r.plan.spec.layers},
                         {"dir", r.dir},
                         {"checkpoint_bytes", r.plan.bytes},
                         {"written", r.written},
                         {"write_seconds", r.write_seconds},
                         {"removed", r.removed},
                         {"plan_weight_bytes_per_token", r.plan_weight_bytes},
                         {"points", bench_points_json(r.points)}});
  if (preds.empty()) {
    j["prediction"] = nullptr;
    j["prediction_note"] = note;
  } else {
    j["prediction"] = nlohmann::json::array();
    for (const Prediction& p : preds)
      j["prediction"].push_back({{"context", p.context},
                                 {"layer_ms", 1000 * p.decode.layer_seconds},
                                 {"fixed_ms", 1000 * p.decode.fixed_seconds},
                                 {"layer_bytes", p.decode.layer_bytes},
                                 {"fixed_bytes", p.decode.fixed_bytes},
                                 {"read_gbps", p.decode.gbps},
                                 {"layer_bandwidth_share", p.decode.layer_share},
                                 {"fixed_bandwidth_share", p.decode.fixed_share},
                                 {"full_bytes_per_token", p.full.bytes},
                                 {"full_decode_ms", 1000 * p.full.seconds},
                                 {"full_decode_tps", p.full.tps},
                                 {"full_prefill_tps", p.prefill_tps},
                                 {"target_decode_tps", p.full.target_tps},
                                 {"target_decode_tps_at_70pct", p.full.target_tps_at_70}});
  }
  std::printf("%s\n", j.dump(2).c_str());
}

void print_text(const SyntheticBenchOptions& o, const ModelOptions& m, const std::vector<Run>& runs,
                const Machine& mc, const std::vector<Prediction>& preds, const std::string& note) {
  const SyntheticPlan& p0 = runs[0].plan;
  std::printf("synthetic %s: %s\n", o.model.c_str(), model_line(p0).c_str());
  std::printf("kv %s (no bf16 boundary: these are middle layers)  threads %d  %s  linear %s  attention %s\n",
              m.kv.c_str(), mc.threads, kernel_isa(), linear_family().c_str(), attention_isa());
  if (mc.bw > 0) std::printf("measured read bandwidth %.1f GB/s (median of the points)\n", mc.bw);
  for (const Run& r : runs) {
    std::printf("\n%s\n", run_line(r).c_str());
    print_bench_points(r.points);
  }
  if (preds.empty()) {
    if (!note.empty()) std::printf("\n%s\n", note.c_str());
    return;
  }
  const int L = int(p0.full.n_layers);
  std::string measured;
  for (const Run& r : runs)
    measured += fmt::format("{}{}", measured.empty() ? "" : " and ", r.plan.spec.layers);
  std::printf(
      "\nthe full model (%d layers), from %s middle layers: per decoded token, a layer and the fixed part "
      "(embedding row, LM head, sampling), each timed in the same run, their bytes and share of the read "
      "bandwidth measured beside them; predicted tokens/s here and on a %.0f GB/s machine\n",
      L, measured.c_str(), o.bandwidth);
  std::printf("%8s %9s %9s %9s %9s %9s %8s %8s %9s %10s %10s %11s %9s\n", "context", "layer ms", "fixed ms",
              "layer MB", "fixed MB", "read GB/s", "layer %", "fixed %", "GB/token", "decode/s", "prefill/s",
              "same shares", "at 70%");
  for (const Prediction& p : preds)
    std::printf("%8lld %9.2f %9.2f %9.1f %9.1f %9.1f %7.0f%% %7.0f%% %9.2f %10.2f %10.1f %11.1f %9.1f\n",
                (long long)p.context, 1000 * p.decode.layer_seconds, 1000 * p.decode.fixed_seconds,
                p.decode.layer_bytes / 1e6, p.decode.fixed_bytes / 1e6, p.decode.gbps,
                100 * p.decode.layer_share, 100 * p.decode.fixed_share, p.full.bytes / 1e9, p.full.tps,
                p.prefill_tps, p.full.target_tps, p.full.target_tps_at_70);
  std::printf(
      "(decode here: the fixed time plus the %d layers' bytes (weights at each layer's bits under %s, the KV "
      "cache with its %d+%d bf16 boundary layers) at the rate the measured layers reach; prefill here: the "
      "fixed time plus %d x the per-layer time; on the %.0f GB/s machine: each part at the share of "
      "bandwidth it reaches here, or every byte at 70%% of it)\n",
      L, p0.policy_name.c_str(), m.kv_boundary, m.kv_boundary, L, o.bandwidth);
}

}  // namespace

void add_synthetic_options(CLI::App* cmd, SyntheticBenchOptions& o) {
  std::string names;
  for (const auto& n : synthetic_model_names()) names += (names.empty() ? "" : ", ") + n;
  cmd->add_option(
         "--synthetic", o.model,
         "Instead of MODEL: a model's real widths with random weights (" + names +
             ": hidden 3072, 48/8 heads of 128, 256 experts top-8 of width 1536, vocabulary 200064). For "
             "each "
             "--layers count N, a checkpoint of N middle layers (31.. of 62) under --policy, laid out as "
             "`tqlm convert --dry-run` plans the full model, is written to --dir (under config-i 1.3 GB per "
             "layer "
             "plus 1.3 GB of embedding and LM head; free space is checked first) and benchmarked as MODEL "
             "would be (--contexts, -n, --chunk, --kv without bf16 boundary layers, -t). Then: per-layer "
             "and fixed decode time (timed separately in the same run) and bytes, the share of the read "
             "bandwidth measured beside the decode each reaches, and the full model's predicted decode (and "
             "prefill) tokens/s on this machine and on a machine of --bandwidth GB/s")
      ->check(CLI::IsMember(synthetic_model_names()));
  cmd->add_option("--layers", o.layers,
                  "--synthetic: one or two middle-layer counts, comma separated (default 4; with two, both "
                  "runs' layer times are pooled)")
      ->delimiter(',')
      ->expected(1, 2);
  cmd->add_option("--policy", o.policy, "--synthetic: weight policy (a preset or a policy JSON file)")
      ->capture_default_str();
  cmd->add_option("--bandwidth", o.bandwidth, "--synthetic: GB/s of the machine to predict for")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--dir", o.dir,
                  "--synthetic: where checkpoints go (default $XDG_CACHE_HOME/tqlm/synthetic or "
                  "~/.cache/tqlm/synthetic), one directory per layer count, written and measured one at a "
                  "time. One found there for the same model, policy, layers and tqlm format is reused; each "
                  "is removed once measured unless --keep");
  cmd->add_flag("--keep", o.keep,
                "--synthetic: leave the checkpoints in --dir (later runs reuse them instead of writing them "
                "again)");
  cmd->add_option("--experts", o.experts,
                  "--synthetic, for tests: experts per layer (default: the model's 256); each token still "
                  "reads 8 of their real width (only the router shrinks), the checkpoint is much smaller")
      ->group("Scaled-down synthetic checkpoints (tests)");
  cmd->add_option("--vocab", o.vocab,
                  "--synthetic, for tests: vocabulary size (default: the model's 200064; the LM head "
                  "shrinks with it)")
      ->group("Scaled-down synthetic checkpoints (tests)");
}

void run_synthetic_bench(const SyntheticBenchOptions& o, const ModelOptions& m, BenchOptions b,
                         bool bandwidth, bool json) {
  std::vector<int> counts = o.layers;
  std::sort(counts.begin(), counts.end());
  if (counts.empty() || counts.size() > 2 || (counts.size() == 2 && counts[0] == counts[1]))
    fail("--layers: one or two different layer counts, e.g. 1,4");
  if (b.decode < 1) fail("bench --synthetic: --decode must be at least 1 (decode speed is what it predicts)");
  // The synthetic layers are middle layers: their cache is all in the --kv mode; the prediction counts the
  // full model's bf16 boundary layers (--kv-boundary).
  const KVSpec full_kv = m.kv_spec();
  b.kv = full_kv;
  b.probe_bandwidth = bandwidth;
  b.kv.boundary = 0;
  const std::string root = o.dir.empty() ? default_cache_dir() : o.dir;
  std::vector<Run> runs;
  for (int n : counts) {
    Run r;
    r.plan = plan_synthetic({o.model, o.policy, n, o.experts, o.vocab});
    r.dir = (fs::path(root) / checkpoint_name(r.plan)).string();
    const PlanReads pr = plan_reads(r.plan.tensors, n, r.plan.full.top_k);
    r.plan_weight_bytes = pr.fixed + pr.layers();
    r.plan_layer_bytes = pr.layers();
    runs.push_back(std::move(r));
  }
  Machine mc;
  for (Run& r : runs) {
    ensure_checkpoint(r);
    struct Remove {  // the checkpoint goes once measured, whatever happens (unless --keep)
      Run& r;
      bool keep;
      ~Remove() {
        std::error_code ec;
        if (!keep) r.removed = fs::remove_all(r.dir, ec) > 0;
      }
    } remove{r, o.keep};
    Model model(r.dir, m.threads);
    print_config_warnings(model.config());
    mc.threads = model.pool().size();
    if (!json) std::fprintf(stderr, "bench: %d middle layer(s)\n", r.plan.spec.layers);
    r.points = run_bench(model, b, bench_progress());
    end_bench_progress();
  }
  {
    std::vector<double> gbps;
    for (const Run& r : runs)
      for (const BenchPoint& p : r.points) gbps.push_back(p.read_gbps);
    mc.bw = median_of(gbps);
  }
  const SyntheticPlan& full = runs[0].plan;
  const PlanReads full_reads = plan_reads(full.full_plan.tensors, full.full.n_layers, full.full.top_k);
  std::vector<Prediction> preds;
  std::string note, problem;
  KVShape shape = full.full.kv_shape();
  const double kv_full = double(kv_layout(full_kv, shape).bytes_per_token());
  for (size_t i = 0; i < runs[0].points.size(); ++i) {
    std::vector<LayerSample> dec, pre;
    double attended = 0;  // cached tokens a decoded token attended to (the same in every run)
    for (const Run& r : runs) {
      const BenchPoint& x = r.points[i];
      shape.layers = r.plan.spec.layers;
      const double kv = x.kv_bytes_per_token;  // all of it in the layers
      attended = kv / double(kv_layout(b.kv, shape).bytes_per_token());
      dec.push_back({r.plan.spec.layers, 1 / x.decode_tps, x.decode_layer_seconds,
                     x.weight_bytes_per_token + kv, r.plan_layer_bytes + kv, x.read_gbps});
      pre.push_back({r.plan.spec.layers, 1 / x.prefill_tps, x.prefill_layer_seconds, 0, 0, 0});
    }
    Prediction p;
    p.context = runs[0].points[i].context;
    p.decode = split_layers(dec);
    if (!p.decode.separates()) {
      problem += fmt::format("{}context {}: {:.3f} of {:.3f} ms per token inside the layers",
                             problem.empty() ? "" : "; ", p.context, 1000 * dec[0].layer_seconds,
                             1000 * dec[0].seconds);
      continue;
    }
    // the full model's cache read per token: as many cached tokens as the measured run attended to
    p.full = predict_decode(p.decode, full_reads.layers() + attended * kv_full, o.bandwidth);
    const LayerSplit pf = split_layers(pre);
    if (pf.separates())
      p.prefill_tps = 1 / (pf.fixed_seconds + pf.layer_seconds * double(full.full.n_layers));
    preds.push_back(p);
  }
  if (!problem.empty()) {
    preds.clear();
    note = fmt::format("No prediction: the time did not divide into layers and a fixed part ({}): a bug.",
                       problem);
  }
  if (json)
    print_json(o, m, runs, mc, full_reads, preds, note);
  else
    print_text(o, m, runs, mc, preds, problem.empty() ? note : "");
  if (!problem.empty()) fail("bench --synthetic: {}", note);  // after the tables: they were measured
}

}  // namespace tqlm::cli
