// Which layers each process of a pipeline holds: the bytes of every decoder layer from the checkpoint's
// tensor headers, each rank's memory, and a split into contiguous layer ranges that fits every rank.
// Rank 0 also holds the embedding, the final norm and the LM head (it samples).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/checkpoint.h"
#include "kv/kv_spec.h"
#include "model/config.h"
#include "quant/plan.h"

namespace tqlm {

struct ModelBytes {
  uint64_t head = 0;             // embedding, final norm, LM head (rank 0): every tensor outside the layers
  std::vector<uint64_t> layers;  // [n_layers] bytes of each decoder layer's tensors
  uint64_t total() const;
};

// Bytes as stored in the checkpoint (the engine maps them as they are). `ck` must list every tensor.
ModelBytes model_bytes(const Checkpoint& ck, const ModelConfig& cfg);

// Bytes a checkpoint converted under a plan will have (`tqlm convert --dry-run`): a split for a model
// before it is converted, from config.json alone.
ModelBytes model_bytes(const ConversionPlan& plan, int64_t n_layers);

// KV bytes each layer needs for `tokens` cached tokens in `kv` mode (boundary layers at their own format).
std::vector<uint64_t> kv_bytes_per_layer(const KVSpec& kv, const KVShape& shape, int64_t tokens);

struct StagePlan {
  LayerRange layers;
  uint64_t weights = 0;   // bytes of its tensors (the head included on rank 0)
  uint64_t kv = 0;        // KV reserved for its layers
  uint64_t capacity = 0;  // memory it may use (0: unknown)
  uint64_t need() const { return weights + kv; }
  bool fits() const { return capacity == 0 || need() <= capacity; }
};

struct SplitPlan {
  std::vector<StagePlan> stages;  // [ranks]
  std::string how;                // "balanced by memory (...)", "--layer-split"
};

// Splits the layers over capacity.size() ranks. `counts` (from --layer-split) fixes the layers per rank;
// otherwise the split minimises the largest share of any rank's capacity in use (so memory is used in
// proportion, as far as whole layers allow). A model that cannot fit is an Error showing every rank's need
// and capacity. Every rank holds at least one layer.
SplitPlan plan_layer_split(const ModelBytes& mb, const std::vector<uint64_t>& capacity,
                           const std::vector<uint64_t>& kv_layer, const std::vector<int64_t>& counts = {});

// "30,32" -> {30, 32}; errors name the flag.
std::vector<int64_t> parse_layer_split(const std::string& text);

// The plan as a table (rank, layers, weights, KV, need, capacity, free).
std::string format_split(const SplitPlan& plan, const std::vector<std::string>& names = {});

}  // namespace tqlm
