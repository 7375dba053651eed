// Model weights resolved from a checkpoint into typed views (zero-copy into the mmap where aligned).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/thread_pool.h"
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
  std::vector<float> final_norm;  // [D]
  Linear lm_head;                 // [V, D] (the embedding when tied)
};

// What one process of a pipeline holds: decoder layers [layers.begin, layers.end) and, when `head`, the
// embedding, the final norm and the LM head. The default is the whole model.
struct ModelPart {
  LayerRange layers;
  bool head = true;
};

// Whether a tensor name belongs to `part` (tensors outside model.layers.N. belong to the head).
bool part_wants(const ModelPart& part, const std::string& name);

// Resolves and shape-checks every tensor the architecture needs for `part` (the other layers stay empty);
// errors name the tensor and shapes.
std::unique_ptr<ModelWeights> load_weights(const Checkpoint& ck, const ModelConfig& cfg,
                                           const ModelPart& part = {});

// Gives every 2-, 3-, 4- and 8-bit Linear the int8 kernels' packed copy (qlinear_pack.h) when
// qlinear_packing() (the embedding keeps only its MLX layout: rows are looked up, not multiplied). Reports
// (bytes of codes packed so far, of all, seconds) after each tensor.
void pack_weights(ModelWeights& w, ThreadPool& pool);

// Progress of pack_weights, process-wide (the CLI draws a line on a terminal); none by default.
using PackProgress = std::function<void(double done, double total, double seconds)>;
void set_pack_progress(PackProgress fn);

}  // namespace tqlm
