// A conversion plan from config.json alone: every weight the architecture has (shapes from the config),
// the policy's decision for it, and sizes per role. What `tqlm convert --dry-run` prints; the converter
// follows the same decisions.
#pragma once

#include <string>
#include <vector>

#include "model/config.h"
#include "quant/inspect.h"
#include "quant/policy.h"

namespace tqlm {

struct PlannedTensor {
  std::string module;  // MLX module path (experts stacked: ...switch_mlp.gate_proj)
  Role role;
  int layer;
  Shape shape;  // logical [E?, out, in] or [n]
  QuantDecision decision;
  uint64_t bytes = 0;  // stored bytes (packed weights + scales + biases, or the float tensor)
  int64_t params() const { return shape_numel(shape); }
};

struct ConversionPlan {
  std::string policy;
  std::vector<PlannedTensor> tensors;
  InspectReport report;  // per-role totals, as `tqlm inspect` would print for the result
};

// source_dtype: the checkpoint's float dtype (config torch_dtype; scales and kept tensors use it).
ConversionPlan plan_conversion(const ModelConfig& cfg, const Policy& policy, DType source_dtype);
DType config_float_dtype(const nlohmann::json& config);  // torch_dtype / dtype, default bf16

// A planned tensor's tensors in the checkpoint file. Quantized: `.weight` uint32 [..., out, in*bits/32], then
// `.scales` and `.biases` [..., out, in/group] in the source dtype. Kept: one float tensor, named `.weight`
// except for biases and routing biases (named as the module).
struct StoredTensor {
  std::string name;
  DType dtype;
  Shape shape;
};
std::vector<StoredTensor> stored_tensors(const PlannedTensor& t, DType source_dtype);
std::string weight_name(const PlannedTensor& t);  // the kept tensor's name (see StoredTensor)

// config.json's "quantization" block for these tensors (the policy's defaults plus one entry per module whose
// bits or group size differ), as mlx_lm reads it; the converter writes it as "quantization_config" too.
nlohmann::json mlx_quantization(const std::vector<PlannedTensor>& tensors, const Policy& policy);

// Rules of a policy file that decide no tensor of the plan (shadowed by earlier rules, or naming roles or
// layers the model does not have): one warning each. Presets are not reported.
std::vector<std::string> unused_rule_warnings(const ConversionPlan& plan, const Policy& policy);

}  // namespace tqlm
