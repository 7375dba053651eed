// Per-layer KV formats: a plan names the format of the keys and of the values of every layer. Written by hand
// as a JSON file (`--kv FILE.json`, docs/formats.md) or chosen by `--kv auto:R` from a calibration file's
// measured sensitivities: minimise the sum over layers and sides of KL(layer side alone quantized) subject
// to real bytes per token <= bf16 bytes / R (Lagrangian relaxation, then greedy upgrades into what is left).
#pragma once

#include <string>
#include <vector>

#include "kv/kv_calib.h"
#include "kv/kv_spec.h"

namespace tqlm {

struct KVLayerPlan {
  std::vector<std::string> k,
      v;                // [layers] "bf16", "f16", "f32", "q8", "turbo2", "turbo3", "turbo4", "turbo8"
  bool centred = true;  // compressed sides store x - mean (needs a calibration file)
  bool sink = false;    // first token of each sequence also kept bf16
};

// {"k": [...], "v": [...], "centred": true}; throws naming the file.
KVLayerPlan load_kv_layer_plan(const std::string& path);
std::string kv_layer_plan_json(const KVLayerPlan& p);

// The allocation for `auto:R` (R > 1): turbo2/3/4/8 or bf16 per layer side, from c.k_kl / c.v_kl.
// The sink's bytes (sink = true) count against the budget.
KVLayerPlan kv_auto_plan(const KVCalib& c, const KVShape& shape, double ratio, bool sink);

}  // namespace tqlm
