// Synthetic checkpoints for speed measurements (`tqlm bench --synthetic`): a known model's real widths with
// random weights, N of its middle layers written as a standard MLX affine checkpoint under a policy, laid out
// exactly as `tqlm convert` would write that model (quant/plan.h), so that a decoded token reads the bytes
// the real model's layers read. The model's config.json is compiled in: nothing is read from disk.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/json.h"
#include "model/config.h"
#include "quant/plan.h"

namespace tqlm {

struct SyntheticSpec {
  std::string model = "minimax-m2";  // synthetic_model_names()
  std::string policy = "config-i";   // a preset or a policy JSON file (as `tqlm convert --policy`)
  int layers = 1;  // middle layers written (the full model's first_layer.. renumbered from 0)
  // 0: the model's. Smaller values scale the checkpoint down (fewer experts, a smaller vocabulary) for
  // tests; the active widths (top-k experts of their real width, hidden size, heads) stay the model's.
  int64_t experts = 0, vocab = 0;
};

// The names `--synthetic` accepts.
std::vector<std::string> synthetic_model_names();

// The full model's config.json (MiniMax-M2's without its FP8 quantization_config), with the spec's
// experts / vocabulary applied. Fails naming the model when it is unknown.
nlohmann::json synthetic_full_config(const SyntheticSpec& spec);

struct SyntheticPlan {
  SyntheticSpec spec;
  std::string policy_name;
  ModelConfig full;          // the full model
  ConversionPlan full_plan;  // every tensor of the full model under the policy
  int first_layer = 0;       // the full model's layer written as layer 0 (its middle, n_layers / 2)
  nlohmann::json config;     // config.json of the checkpoint: spec.layers layers, "quantization" block
  std::vector<PlannedTensor> tensors;  // the checkpoint's tensors (layers renumbered from 0)
  DType dtype = DType::BF16;           // of scales, biases and kept float tensors (the model's torch_dtype)
  uint64_t bytes = 0;                  // tensor data written (sum of tensors' bytes)
  int64_t params = 0;
  // What identifies the checkpoint on disk (kSyntheticMarker): format version, model, policy, layers and
  // the config with its quantization block.
  nlohmann::json marker() const;
};

inline constexpr const char* kSyntheticMarker = "tqlm-synthetic.json";

// Plans the checkpoint: the full model planned under the policy (as `tqlm convert --dry-run`), then layers
// [first_layer, first_layer + layers) renumbered from 0, with the embedding, final norm and LM head.
SyntheticPlan plan_synthetic(const SyntheticSpec& spec);

// Writes the checkpoint into `dir`, which must not exist, through a temporary ".DIR.partial-PID" renamed at
// the end (removed on failure). Quantized weights: random codes (splitmix64 from a fixed seed), scales
// 0.02 / (2^b - 1) and biases -scale (2^b - 1) / 2, so weights are uniform in about +-0.01; norms 1, routing
// biases 0, other float tensors normal(0, 0.02). `progress(done, total)` in bytes.
void write_synthetic_checkpoint(const SyntheticPlan& plan, const std::string& dir,
                                const std::function<void(uint64_t, uint64_t)>& progress = {});

// Whether `dir` holds a finished checkpoint of this plan (its marker equals plan.marker()).
bool synthetic_checkpoint_matches(const SyntheticPlan& plan, const std::string& dir);
// Whether `dir` holds a synthetic checkpoint at all (any marker): one this tool may replace.
bool is_synthetic_checkpoint(const std::string& dir);

}  // namespace tqlm
