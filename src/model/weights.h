// Model weights resolved from a checkpoint into typed views (zero-copy into the mmap where aligned).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "io/checkpoint.h"
#include "model/config.h"

namespace tqlm {

// y = x W^T (+ b). W is [out, in], or [E, out, in] for stacked experts (select one with expert()).
struct Linear {
  std::string name;  // module path, for errors
  int64_t out = 0, in = 0, n_experts = 1;
  int bits = 0, group_size = 0;  // bits == 0: a float weight
  const uint32_t* wq = nullptr;  // quantized: [E, out, in*bits/32]
  const void* scales = nullptr;  // quantized: [E, out, in/group] of sdtype
  const void* biases = nullptr;
  DType sdtype = DType::BF16;
  const void* w = nullptr;  // float: [E, out, in] of wdtype
  DType wdtype = DType::BF16;
  const void* bias = nullptr;  // optional Linear bias [E, out] of bias_dtype
  DType bias_dtype = DType::BF16;
  // HF checkpoints keep experts as separate tensors (experts.E.*): then each expert is its own Linear.
  std::shared_ptr<const std::vector<Linear>> parts;

  bool present() const { return out > 0; }
  bool quantized() const { return bits != 0; }
  Linear expert(int64_t e) const;  // the [out, in] slice of expert e
  uint64_t bytes() const;          // bytes of one [out, in] slice as stored
};

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
