#include "io/checkpoint.h"

#include <filesystem>

#include "core/error.h"
#include "core/json.h"
#include "quant/affine.h"

namespace tqlm {

namespace fs = std::filesystem;
using json = nlohmann::json;

json read_json_file(const std::string& path) {
  // a FIFO, device or directory is refused by name; nesting is limited before parsing (core/json.h)
  return parse_json_limited<json>(read_text_file(path, "JSON file"), path);
}

namespace {

void check_mode(const json& obj, const std::string& where) {
  auto m = obj.find("mode");
  if (m == obj.end() || m->is_null()) return;
  if (!m->is_string()) fail("{}: 'mode' must be a string", where);
  if (m->get<std::string>() != "affine")
    fail("{}: quantization mode '{}' is not supported (only 'affine')", where, m->get<std::string>());
}

// Reads an int field; null or missing gives `dflt` (MLX layer defaults: group 64, bits 4).
int int_field(const json& obj, const char* key, int dflt, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return dflt;
  return int(json_int(*it, where + ": '" + key + "'", 0, 1 << 20));
}

QuantSpec parse_spec(const json& obj, const std::string& where) {
  check_mode(obj, where);
  QuantSpec s{int_field(obj, "bits", 4, where), int_field(obj, "group_size", 64, where)};
  if (!affine_bits_supported(s.bits)) fail("{}: bits {} not in {{2, 3, 4, 5, 6, 8}}", where, s.bits);
  if (!affine_group_size_supported(s.group_size))
    fail("{}: group_size {} not in {{32, 64, 128}}", where, s.group_size);
  return s;
}

}  // namespace

QuantConfig parse_quant_config(const json& config, const std::string& label) {
  QuantConfig q;
  const json* block = nullptr;
  std::string key = "quantization";
  if (auto it = config.find("quantization"); it != config.end() && !it->is_null()) {
    block = &*it;
  } else if (auto qc = config.find("quantization_config");
             qc != config.end() && qc->is_object() && qc->contains("bits") && !qc->contains("quant_method")) {
    block = &*qc;
    key = "quantization_config";
  }
  if (!block) return q;
  const std::string where = label + ": " + key;
  if (!block->is_object()) fail("{} must be an object", where);
  q.present = true;
  q.global = parse_spec(*block, where);
  for (auto it = block->begin(); it != block->end(); ++it) {
    const std::string& k = it.key();
    if (k == "bits" || k == "group_size" || k == "mode") continue;
    const std::string w = where + "[\"" + k + "\"]";
    if (it->is_boolean()) {
      q.overrides[k] = it->get<bool>();
    } else if (it->is_object()) {
      q.overrides[k] = parse_spec(*it, w);
    } else {
      fail("{}: must be true, false or an object with bits/group_size", w);
    }
  }
  return q;
}

QuantSpec QuantConfig::for_module(const std::string& path) const {
  auto it = overrides.find(path);
  if (it == overrides.end()) return global;
  if (auto* b = std::get_if<bool>(&it->second)) {
    if (!*b) fail("module '{}' has quantized tensors but config.json marks it unquantized (false)", path);
    return global;
  }
  return std::get<QuantSpec>(it->second);
}

Checkpoint::Checkpoint(const std::string& path, const TensorStore::NameFilter& want) : path_(path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    fs::path cfg = fs::path(path) / "config.json";
    if (fs::exists(cfg, ec)) {
      config_ = read_json_file(cfg.string());
      if (!config_.is_object()) fail("{}: must be a JSON object", cfg.string());
      quant_ = parse_quant_config(config_, cfg.string());
    }
    fs::path gen = fs::path(path) / "generation_config.json";
    if (fs::exists(gen, ec)) generation_config_ = read_json_file(gen.string());
  } else if (!fs::exists(path, ec)) {
    fail("{}: no such file or directory", path);
  }
  tensors_ = std::make_unique<TensorStore>(path, want);
}

std::string Checkpoint::model_type() const {
  if (config_.is_object())
    if (auto it = config_.find("model_type"); it != config_.end() && it->is_string())
      return it->get<std::string>();
  return "";
}

QuantizedWeight Checkpoint::quantized(const std::string& module) const {
  QuantizedWeight q;
  q.weight = tensors_->find(module + ".weight");
  q.scales = tensors_->find(module + ".scales");
  q.biases = tensors_->find(module + ".biases");
  if (!q.weight || !q.scales || !q.biases)
    fail("{}: quantized module '{}' needs .weight, .scales and .biases", path_, module);
  const auto& w = *q.weight;
  const auto& s = *q.scales;
  if (w.dtype != DType::U32)
    fail("{}: '{}' must be U32 for a quantized module, is {}", path_, w.name, dtype_name(w.dtype));
  if (s.dtype != q.biases->dtype || s.shape != q.biases->shape)
    fail("{}: '{}' and '{}' differ in dtype or shape", path_, s.name, q.biases->name);
  if (!dtype_is_float(s.dtype) || dtype_size(s.dtype) < 2)
    fail("{}: '{}' must be F32, F16 or BF16, is {}", path_, s.name, dtype_name(s.dtype));
  if (w.shape.size() < 2 || s.shape.size() != w.shape.size() ||
      !std::equal(w.shape.begin(), w.shape.end() - 1, s.shape.begin()))
    fail("{}: shapes of '{}' {} and '{}' {} do not match", path_, w.name, shape_str(w.shape), s.name,
         shape_str(s.shape));
  QuantSpec spec = quant_.present ? quant_.for_module(module) : QuantSpec{};
  if (!quant_.present) {
    // No config: infer group size / bits from shapes when unambiguous (prefer group 64).
    bool ok = false;
    for (int gs : {64, 32, 128})
      for (int b : {4, 2, 3, 5, 6, 8})
        if (!ok && w.shape.back() * 32 == s.shape.back() * gs * b) spec = {b, gs}, ok = true;
  }
  const int64_t cols = s.shape.back() * spec.group_size;
  if (w.shape.back() * 32 != cols * spec.bits)
    fail("{}: module '{}': config says bits={} group_size={}, but weight {} and scales {} imply {} bits",
         path_, module, spec.bits, spec.group_size, shape_str(w.shape), shape_str(s.shape),
         double(w.shape.back()) * 32.0 / double(cols));
  q.bits = spec.bits;
  q.group_size = spec.group_size;
  q.logical_shape = w.shape;
  q.logical_shape.back() = cols;
  return q;
}

}  // namespace tqlm
