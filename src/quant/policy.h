// Quantization policies (the Config-I family): defaults plus ordered rules, first match wins. A rule
// matches tensor roles and layer positions and either quantizes (bits + group size, MLX affine) or keeps
// a float dtype. Presets ship in the binary; a policy can also be a JSON file:
//
//   {"name": "...", "default": {"bits": 4, "group_size": 64},
//    "rules": [{"roles": ["router"], "keep": "f16"},
//              {"layers": "first:2", "bits": 8},             // also "last:N", "3-7", "all", "global"
//              {"roles": ["expert_gate", "expert_up"], "bits": 2}, ...]}
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "quant/roles.h"

namespace tqlm {

struct LayerSelector {
  enum Kind { all, global, first, last, range } kind = all;  // global: tensors outside the layers
  int a = 0, b = 0;                                          // first:a, last:a, range [a, b]
  bool matches(int layer, int n_layers) const;
  std::string str() const;
};

struct PolicyRule {
  std::vector<Role> roles;            // empty: any role
  std::vector<LayerSelector> layers;  // empty: any position (OR of selectors)
  int bits = 0, group_size = 0;       // 0 group: the policy default
  std::optional<DType> keep;          // keep as float (F16, BF16, F32)
};

struct QuantDecision {
  bool quantize = false;
  int bits = 0, group_size = 0;
  DType keep = DType::BF16;  // when not quantized
  int rule = -1;             // index of the rule that decided (-1: default / structural)
  std::string note;          // fallbacks applied (e.g. group size that does not divide)
};

class Policy {
 public:
  std::string name;
  std::string source;  // the JSON file it came from ("" for a preset)
  int default_bits = 4, default_group = 64;
  std::vector<PolicyRule> rules;
  // mlx_lm's mixed recipes choose by layer with use_more_bits (handled here, not as rules).
  int mixed_low = 0, mixed_high = 0;
  // mlx_lm applies the model's own quant_predicate (uniform-N presets, as `mlx_lm.convert -q --q-bits N`):
  // qwen3_moe and MiniMax keep the router (mlp.gate / block_sparse_moe.gate) at 8 bits, group 64. The
  // uniform-N-all presets quantize every weight at N instead.
  bool model_predicate = false;

  // Decision for a weight of `role` in `layer` (-1 for global tensors) of a model with n_layers, whose
  // input dimension is in_dim. Norms and 1-D tensors are never quantized. A group size that does not
  // divide in_dim falls back to the largest of 128/64/32 that does (noted), else the tensor is kept.
  QuantDecision decide(Role role, int layer, int n_layers, int64_t in_dim, DType source_dtype) const;

  static Policy preset(const std::string& name);          // throws listing the presets
  static Policy from_json_file(const std::string& path);  // throws naming the field
  // A parsed policy document; `path` names it in errors (and gives the default name, its stem).
  static Policy from_json(const nlohmann::json& j, const std::string& path);
  // group_size_override: 0 = none; otherwise 32, 64 or 128 (an error naming --group-size).
  static Policy load(const std::string& name_or_file, int group_size_override = 0);
  static std::vector<std::string> preset_names();

  // Whether mlx_lm's quant_predicate for `model_type` keeps the MoE router at 8 bits (group 64).
  static bool router_kept_8bit(const std::string& model_type);
};

}  // namespace tqlm
