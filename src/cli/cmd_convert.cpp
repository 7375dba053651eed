#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>

#include "cli/calib_run.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "cli/progress.h"
#include "core/error.h"
#include "core/files.h"
#include "core/json.h"
#include "io/checkpoint.h"
#include "quant/auto_policy.h"
#include "quant/convert.h"
#include "quant/plan.h"

namespace tqlm::cli {

void add_convert(CLI::App& app) {
  struct Opts {
    std::string src, dst, policy = "config-i";
    int group_size = 0;
    int64_t block_rows = 0;
    bool dry_run = false, json = false, allow_nonfinite = false, remove_stale = false, rtn = false;
    std::string stats, size, policy_out;
    double bpw = 0;
    CalibTextOptions calib;
  };
  auto o = std::make_shared<Opts>();
  std::string presets;
  for (const auto& p : Policy::preset_names()) presets += (presets.empty() ? "" : ", ") + p;
  auto* cmd = app.add_subcommand(
      "convert",
      "Convert a checkpoint (HF bf16/f16/f32, FP8 e4m3 with 128x128 block scales, per-expert or stacked; or "
      "an "
      "MLX checkpoint, dequantized and requantized) into a standard MLX affine checkpoint under a role-aware "
      "policy. Streams one tensor at a time; writes into a temporary directory renamed to DST at the end. "
      "--dry-run reads config.json alone and prints parameters, bits and bytes per role, the total size and "
      "bits per weight.");
  cmd->add_option("src", o->src, "Source checkpoint directory (or its config.json)")->required();
  cmd->add_option("dst", o->dst, "Destination directory (must not exist; not needed with --dry-run)");
  cmd->add_option(
         "--policy,-p", o->policy,
         "Preset (" + presets +
             "), a policy JSON file, or 'auto' (bits per weight chosen by measured sensitivity under "
             "--bpw or --size; needs --calib or --stats). uniform-N is what `mlx_lm.convert -q "
             "--q-bits N` writes (the model's own predicate: qwen3_moe / MiniMax routers at 8 bits); "
             "uniform-N-all quantizes every weight at N")
      ->capture_default_str();
  cmd->add_option("--calib", o->calib.data,
                  "Calibrate on this UTF-8 text first (as `tqlm calibrate SRC`): error-minimising group "
                  "parameters under the measured input importance")
      ->check(regular_file_check("--calib"));
  add_calib_text_options(cmd, o->calib, "calib-");
  cmd->add_option("--stats", o->stats, "Calibration statistics from `tqlm calibrate` (instead of --calib)")
      ->check(regular_file_check("--stats"));
  cmd->add_flag(
      "--rtn", o->rtn,
      "Round to nearest (mx.quantize's parameters) even with --calib / --stats: the statistics then only "
      "choose the --policy auto allocation");
  cmd->add_option("--bpw", o->bpw,
                  "--policy auto: bits per weight of the whole checkpoint (as inspect counts)");
  cmd->add_option("--size", o->size,
                  "--policy auto: byte budget of the whole checkpoint (e.g. 87GB, 120MiB)");
  cmd->add_option("--policy-out", o->policy_out,
                  "--policy auto: write the chosen policy JSON here (default: DST.policy.json); `convert "
                  "--policy FILE` with the same statistics reproduces the conversion");
  cmd->add_option("--group-size", o->group_size, "Override every group size (32, 64, 128)")
      ->check(CLI::IsMember({32, 64, 128}));
  cmd->add_option("--block-rows", o->block_rows,
                  "Rows converted per streaming step (multiple of 128; default: ~32 MiB)");
  cmd->add_flag("--dry-run", o->dry_run, "Plan from config.json only; read no weights, write nothing");
  cmd->add_flag("--allow-nonfinite", o->allow_nonfinite,
                "Convert tensors holding NaN/Inf values (listed) instead of stopping at the first");
  cmd->add_flag("--remove-stale", o->remove_stale,
                "Remove the .DST.partial-PID directories of killed conversions (otherwise only listed)");
  cmd->add_flag("--json", o->json, "Print the plan as JSON");
  cmd->callback([o] {
    namespace fs = std::filesystem;
    if (!o->dry_run) {
      if (o->dst.empty()) fail("convert needs a destination directory (or --dry-run)");
      for (const auto& p : stale_partial_outputs(o->dst)) {
        std::error_code ec;
        if (o->remove_stale) fs::remove_all(p, ec);
        std::fprintf(
            stderr, "%s: %s of a conversion that did not finish%s\n", o->remove_stale ? "removed" : "warning",
            p.c_str(),
            o->remove_stale ? (ec ? (": " + ec.message()).c_str() : "") : " (--remove-stale removes it)");
      }
      if (!o->calib.data.empty() && !o->stats.empty()) fail("convert: give --calib or --stats, not both");
      std::unique_ptr<CalibStats> stats;
      if (!o->stats.empty()) stats = std::make_unique<CalibStats>(CalibStats::load(o->stats));
      if (!o->calib.data.empty()) stats = std::make_unique<CalibStats>(calibrate_text(o->src, o->calib));
      if (o->rtn && !stats) fail("convert: --rtn only makes sense with --calib or --stats");
      const bool is_auto = o->policy == "auto" && !fs::is_regular_file(o->policy);
      if (!is_auto && (o->bpw > 0 || !o->size.empty()))
        fail("convert: --bpw and --size go with --policy auto");
      Policy policy;
      if (is_auto) {
        if (!stats)
          fail("convert: --policy auto needs calibration statistics (--calib TEXT or --stats FILE)");
        if ((o->bpw > 0) == !o->size.empty()) fail("convert: --policy auto needs one of --bpw or --size");
        AutoPolicyOptions ao;
        ao.calibrated = !o->rtn;
        if (o->bpw > 0) {
          const ModelConfig mc = parse_model_config(
              read_json_file((fs::path(o->src) / "config.json").string()), o->src + "/config.json");
          const auto params =
              plan_conversion(mc, Policy::preset("uniform-4"), DType::BF16).report.total.params;
          ao.budget_bytes = uint64_t(o->bpw * double(params) / 8.0);
        } else {
          ao.budget_bytes = uint64_t(parse_size(o->size, "--size"));
        }
        ThreadPool pool(0);
        AutoPolicy ap = choose_auto_policy(o->src, *stats, ao, pool);
        const std::string out = o->policy_out.empty() ? o->dst + ".policy.json" : o->policy_out;
        write_file_atomic(out, ap.policy.dump(2) + "\n", "policy");
        std::printf("auto policy: %llu bytes of %llu budget (possible %llu .. %llu), %zu rules -> %s\n",
                    static_cast<unsigned long long>(ap.bytes),
                    static_cast<unsigned long long>(ao.budget_bytes),
                    static_cast<unsigned long long>(ap.min_bytes),
                    static_cast<unsigned long long>(ap.max_bytes), ap.policy["rules"].size(), out.c_str());
        std::map<std::string, std::map<std::string, int>> per_role;  // role -> "bits/group" -> tensors
        for (const auto& c : ap.choices)
          ++per_role[std::string(role_name(c.role))][fmt::format("{}b/g{}", c.bits, c.group_size)];
        for (const auto& [role, m] : per_role) {
          std::string line;
          for (const auto& [k, n] : m) line += fmt::format(" {}x{}", n, k);
          std::printf("  %-12s%s\n", role.c_str(), line.c_str());
        }
        policy = Policy::from_json(ap.policy, out);
      } else {
        policy = Policy::load(o->policy, o->group_size);
      }
      if (fs::exists(fs::path(o->src) / "config.json") &&
          read_json_file((fs::path(o->src) / "config.json").string()).contains("quantization"))
        std::fprintf(stderr,
                     "warning: %s is already quantized: its weights are dequantized and quantized again\n",
                     o->src.c_str());
      auto t0 = std::chrono::steady_clock::now();
      ConvertResult r = convert_checkpoint(
          o->src, o->dst, policy,
          [&](uint64_t d, uint64_t n) {
            const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            progress_line("convert MiB", double(d) / 1048576.0, double(n) / 1048576.0, s, "MiB");
          },
          o->block_rows, o->allow_nonfinite, o->rtn ? nullptr : stats.get());
      for (const auto& w : unused_rule_warnings(r.plan, policy))
        std::fprintf(stderr, "warning: %s\n", w.c_str());
      for (const auto& w : r.nonfinite) std::fprintf(stderr, "warning: %s: %s\n", o->src.c_str(), w.c_str());
      const auto& t = r.plan.report.total;
      std::printf("wrote %s: %zu shard(s), %.2f GiB, %.2fB parameters, %.3f bits per weight (policy %s%s)\n",
                  o->dst.c_str(), r.shards, double(r.bytes_written) / double(1ull << 30),
                  double(t.params) / 1e9, t.bpw(), policy.name.c_str(),
                  stats && !o->rtn ? ", calibrated group parameters" : "");
      return;
    }
    const std::string cfg_path =
        fs::is_directory(o->src) ? (fs::path(o->src) / "config.json").string() : o->src;
    if (o->policy == "auto" && !fs::is_regular_file(o->policy))
      fail("convert: --dry-run cannot plan --policy auto (it measures the weights); run without --dry-run");
    nlohmann::json cfg = read_json_file(cfg_path);
    ModelConfig mc = parse_model_config(cfg, cfg_path);
    print_config_warnings(mc);
    Policy policy = Policy::load(o->policy, o->group_size);
    ConversionPlan plan = plan_conversion(mc, policy, config_float_dtype(cfg));
    for (const auto& w : unused_rule_warnings(plan, policy)) std::fprintf(stderr, "warning: %s\n", w.c_str());
    plan.report.path = o->src + "  [plan: " + policy.name + "]";
    const auto& t = plan.report.total;
    if (o->json) {
      nlohmann::json j = inspect_to_json(plan.report);
      j["policy"] = policy.name;
      j["gib"] = double(t.bytes) / double(1ull << 30);
      j["gb"] = double(t.bytes) / 1e9;
      nlohmann::json notes = nlohmann::json::array();
      for (const auto& pt : plan.tensors)
        if (!pt.decision.note.empty()) notes.push_back({{"module", pt.module}, {"note", pt.decision.note}});
      j["fallbacks"] = notes;
      nlohmann::json ts = nlohmann::json::array();
      for (const auto& pt : plan.tensors) {
        nlohmann::json e = {{"module", pt.module},
                            {"role", std::string(role_name(pt.role))},
                            {"layer", pt.layer},
                            {"shape", pt.shape},
                            {"bytes", pt.bytes}};
        if (pt.decision.quantize)
          e.update({{"bits", pt.decision.bits}, {"group_size", pt.decision.group_size}});
        else
          e["keep"] = std::string(dtype_name(pt.decision.keep));
        ts.push_back(e);
      }
      j["tensors"] = ts;
      std::printf("%s\n", j.dump(2).c_str());
      return;
    }
    std::fputs(format_inspect_table(plan.report).c_str(), stdout);
    for (const auto& pt : plan.tensors)
      if (!pt.decision.note.empty())
        std::printf("fallback: %s: %s\n", pt.module.c_str(), pt.decision.note.c_str());
    std::printf("%s under %s: %.2fB parameters, %.3f bits per weight, %.2f GiB (%.2f GB)\n",
                mc.model_type.c_str(), policy.name.c_str(), double(t.params) / 1e9, t.bpw(),
                double(t.bytes) / double(1ull << 30), double(t.bytes) / 1e9);
  });
}

}  // namespace tqlm::cli
