// `tqlm plan-split`: how a model's layers would be split over a pipeline of hosts (model/layer_split.h),
// without MPI: each host's memory, the bytes of its layers (from the tensor headers), the KV it must hold
// for the given context, and the traffic per token.
#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "io/checkpoint.h"
#include "model/config.h"
#include "model/layer_split.h"

namespace tqlm::cli {

void add_plan_split(CLI::App& app) {
  struct Opts {
    std::string model, hosts, split, kv = "bf16", policy;
    int boundary = 2;
    int64_t ctx = 4096, seqs = 1;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand(
      "plan-split",
      "Plan a pipeline over several hosts: which layers each holds, and whether they fit (no MPI)");
  cmd->add_option("model", o->model, "Model directory (with --policy: a config.json or its directory)")
      ->required();
  cmd->add_option(
      "--policy", o->policy,
      "Plan the model as `tqlm convert --policy P` would write it, from config.json alone (no weights)");
  cmd->add_option("--hosts", o->hosts, "Memory of each host in pipeline order (rank 0 first), e.g. 64GB,32GB")
      ->required();
  cmd->add_option("--layer-split", o->split, "Layers per host instead of the plan, e.g. 30,32");
  cmd->add_option("--kv", o->kv, "KV cache mode to reserve memory for: " + kv_modes_help())
      ->capture_default_str();
  cmd->add_option("--kv-boundary", o->boundary, "Compressed KV modes: the first and last N layers stay bf16")
      ->capture_default_str();
  cmd->add_option("--ctx", o->ctx, "Tokens of KV to reserve per sequence")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(1), kMaxContext));
  cmd->add_option("--seqs", o->seqs, "Sequences held at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 16));
  cmd->callback([o] {
    const std::vector<uint64_t> hosts = parse_size_list(o->hosts, "--hosts");
    ModelConfig cfg;
    ModelBytes mb;
    if (!o->policy.empty()) {
      const std::string path = std::filesystem::is_directory(o->model) ? o->model + "/config.json" : o->model;
      const nlohmann::json j = read_json_file(path);
      cfg = parse_model_config(j, path);
      mb = model_bytes(plan_conversion(cfg, Policy::load(o->policy), config_float_dtype(j)), cfg.n_layers);
    } else {
      const Checkpoint ck(o->model);
      if (!ck.has_config()) fail("{}: config.json is missing", o->model);
      cfg = parse_model_config(ck.config(), o->model + "/config.json");
      mb = model_bytes(ck, cfg);
    }
    const std::vector<uint64_t> kv =
        kv_bytes_per_layer(KVSpec(o->kv, o->boundary), cfg.kv_shape(), o->ctx * o->seqs);
    const SplitPlan plan = plan_layer_split(
        mb, hosts, kv, o->split.empty() ? std::vector<int64_t>{} : parse_layer_split(o->split));
    std::printf("%s: %lld layers, %.2f GB of weights; KV %s for %lld x %lld tokens; split %s\n",
                o->model.c_str(), (long long)cfg.n_layers, double(mb.total()) / 1e9, o->kv.c_str(),
                (long long)o->seqs, (long long)o->ctx, plan.how.c_str());
    std::fputs(format_split(plan).c_str(), stdout);
    const size_t P = hosts.size();
    const double hop = double(cfg.hidden) * 4;
    std::printf(
        "traffic: %zu hops per step (one per stage boundary, and the last stage's rows back to rank 0); "
        "decode: %.1f KiB per token per hop (f32 hidden state), %.1f KiB per token in all\n",
        P, hop / 1024, hop * double(P) / 1024);
    for (const StagePlan& s : plan.stages)
      if (!s.fits()) fail("the split does not fit (see the table above)");
  });
}

}  // namespace tqlm::cli
