// A model checkpoint directory: config.json (+ generation_config.json, tokenizer files) and its tensors.
// Also the MLX "quantization" block: global group_size/bits/mode and per-module overrides.
#pragma once

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <variant>

#include "core/tensor.h"
#include "io/safetensors.h"

namespace tqlm {

struct QuantSpec {
  int bits = 4;
  int group_size = 64;
};

// The "quantization" block of an MLX config.json. Only mode "affine" is accepted.
struct QuantConfig {
  bool present = false;
  QuantSpec global;
  // Per-module override: a spec (from a dict), true (use the global spec) or false (not quantized).
  std::map<std::string, std::variant<bool, QuantSpec>> overrides;

  // Parameters for a module known to be quantized (i.e. `<path>.scales` exists).
  QuantSpec for_module(const std::string& path) const;
};

// Parses config["quantization"] (falling back to an MLX-style "quantization_config" that has "bits").
// `label` names the file in errors.
QuantConfig parse_quant_config(const nlohmann::json& config, const std::string& label);

// A quantized module resolved against its tensors and checked against the shapes.
struct QuantizedWeight {
  const TensorView* weight = nullptr;  // U32 [..., out, in*bits/32]
  const TensorView* scales = nullptr;  // [..., out, in/group_size]
  const TensorView* biases = nullptr;  // [..., out, in/group_size]
  int bits = 0, group_size = 0;
  Shape logical_shape;  // [..., out, in]
};

class Checkpoint {
 public:
  // `path`: a directory with config.json and safetensors, or a bare .safetensors file (no config). `want`:
  // the tensors this process needs (a pipeline stage); shards holding none of them are not kept mapped.
  explicit Checkpoint(const std::string& path, const TensorStore::NameFilter& want = {});

  const std::string& path() const { return path_; }
  const nlohmann::json& config() const { return config_; }  // {} when absent
  bool has_config() const { return !config_.is_null() && !config_.empty(); }
  const std::optional<nlohmann::json>& generation_config() const { return generation_config_; }
  const QuantConfig& quant() const { return quant_; }
  const TensorStore& tensors() const { return *tensors_; }
  std::string model_type() const;  // "" when unknown

  bool is_quantized(const std::string& module) const { return tensors_->has(module + ".scales"); }
  // Throws naming the module if the tensors are missing or their shapes disagree with the config.
  QuantizedWeight quantized(const std::string& module) const;

 private:
  std::string path_;
  nlohmann::json config_;
  std::optional<nlohmann::json> generation_config_;
  QuantConfig quant_;
  std::unique_ptr<TensorStore> tensors_;
};

// Reads and parses a JSON file, naming it in errors.
nlohmann::json read_json_file(const std::string& path);

}  // namespace tqlm
