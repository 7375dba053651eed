// What a forward pass can report about its linear layers' inputs (calibration statistics, quant/calib.h).
// The model calls the observer, when one is set, with the rows a linear layer (or a group of linear layers
// sharing one input) is about to read; it never changes them.
#pragma once

#include <cstdint>

namespace tqlm {

// Where a linear input is formed. q/k/v read one input (attn_qkv), as do a dense MLP's gate and up
// (mlp_gate_up) and an expert's gate and up (expert_gate_up).
enum class LinearSite {
  attn_qkv,
  attn_o,
  mlp_gate_up,
  mlp_down,
  router,
  expert_gate_up,
  expert_down,
  lm_head
};

class ActivationObserver {
 public:
  virtual ~ActivationObserver() = default;
  // rows: [n, in] f32, the input of `site` in decoder layer `layer` (-1: the LM head); expert: the expert
  // whose routed tokens these are (expert sites), else -1; row_weights: [n] each routed token's routing
  // weight (expert sites), else nullptr.
  virtual void observe(int64_t layer, LinearSite site, int64_t expert, const float* rows, int64_t n,
                       int64_t in, const float* row_weights) = 0;
};

}  // namespace tqlm
