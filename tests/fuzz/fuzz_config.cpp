// libFuzzer target: config.json as the model loader reads it (Checkpoint: depth-limited parse, object check,
// quantization block; Model: parse_model_config with its range and cross-field checks), then what is planned
// from a config alone (context limit, kv-plan layouts). Any input must end in a ModelConfig or a tqlm::Error,
// never a crash, a hang or a large allocation (the limits in model/config.h come before any planning).
// Input: the bytes of config.json.
#include <cstdint>
#include <string_view>

#include "core/error.h"
#include "core/json.h"
#include "io/checkpoint.h"
#include "kv/kv_spec.h"
#include "model/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string label = "fuzz/config.json";
  try {
    const auto j = tqlm::parse_json_limited<nlohmann::json>(
        std::string_view(reinterpret_cast<const char*>(data), size), label);
    if (!j.is_object()) return 0;  // Checkpoint refuses it ("must be a JSON object")
    try {
      const tqlm::QuantConfig q = tqlm::parse_quant_config(j, label);
      if (q.present) {
        volatile int bits = q.for_module("model.layers.0.self_attn.q_proj").bits;
        (void)bits;
      }
    } catch (const tqlm::Error&) {
    }
    const tqlm::ModelConfig m = tqlm::parse_model_config(j, label);
    volatile int64_t sink = tqlm::context_limit(m, 0) + int64_t(m.rope_inv_freq.size());
    try {
      sink = sink + tqlm::context_limit(m, 8192);
    } catch (const tqlm::Error&) {
    }
    for (const auto& mode : tqlm::kv_plan_modes()) {
      try {
        const tqlm::KVLayout l = tqlm::kv_layout(tqlm::KVSpec(mode, 2), m.kv_shape());
        sink = sink + l.bytes_per_token();
      } catch (const tqlm::Error&) {
      }
    }
    (void)sink;
  } catch (const tqlm::Error&) {
  }
  return 0;
}
