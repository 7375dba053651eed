// Model weights resolved from a checkpoint into typed views (zero-copy into the mmap where aligned).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/checkpoint.h"
#include "kernels/linear_weight.h"
#include "model/config.h"

namespace tqlm {

struct LayerWeights {
  std::vector<float> attn_norm, mlp_norm;  // [D]
  Linear q, k, v, o;                       // [H*hd, D], [KV*hd, D], [KV*hd, D], [D, H*hd]
  std::vector<float> q_norm, k_norm;       // [hd] (per head) or [H*hd] / [KV*hd] (full width)
  Linear gate, up, down;                   // dense MLP: [I, D], [I, D], [D, I]
  Linear router;                           // [E, D]
  std::vector<float> router_bias;          // [E] minimax e_score_correction_bias
  Linear exp_gate, exp_up, exp_down;       // stacked experts: [E, Ie, D], [E, Ie, D], [E, D, Ie]
};

struct ModelWeights {
  Linear embed;  // [V, D]
  std::vector<LayerWeights> layers;
  std::vector<float> final_norm;            // [D]
  Linear lm_head;                           // [V, D] (the embedding when tied)
  std::vector<std::vector<uint8_t>> owned;  // aligned copies of unaligned tensors
};

// Resolves and shape-checks every tensor the architecture needs; errors name the tensor and shapes.
std::unique_ptr<ModelWeights> load_weights(const Checkpoint& ck, const ModelConfig& cfg);

}  // namespace tqlm
