// The forward pass's scratch buffers (one per Model, sized for the largest step so far). Private to the
// model's implementation files (model.cpp, moe.cpp).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/qact.h"
#include "model/model.h"

namespace tqlm {

struct Model::Workspace {
  int64_t T = 0;              // rows the buffers hold
  int64_t T_step = 0;         // rows of the current step
  std::vector<float> x;       // [T, D]  residual stream
  std::vector<float> xn;      // [T, D]  normed input of the current block
  std::vector<float> q;       // [T, H*hd]
  std::vector<float> k;       // [T, KV*hd]
  std::vector<float> v;       // [T, KV*hd]
  std::vector<float> att;     // [T, H*hd]  attention output before o_proj
  std::vector<float> y;       // [T, D]  block output
  std::vector<float> g, u;    // [T, I]  MLP gate / up (I = max dense, expert width)
  std::vector<float> gates;   // [T, E]  router logits / scores
  std::vector<int32_t> sel;   // [T, k]  selected experts
  std::vector<float> selw;    // [T, k]  their weights
  std::vector<float> xe;      // [T, D]  tokens gathered for one expert
  std::vector<float> ye;      // [T, D]  that expert's output
  std::vector<int64_t> rows;  // [T]     which tokens the expert serves
  std::vector<float> rows_w;  // [T]     with which weight
  std::vector<int64_t> pos;   // [T]     position of each row in its sequence
  QActs qa;                   // int8 image of the current linear input (reused by q/k/v, gate/up)
  std::vector<QActs> qe, qg;  // [active experts] the grouped MoE path's int8 inputs of gate/up and of down
};

}  // namespace tqlm
