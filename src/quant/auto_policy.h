// An automatic policy under a byte budget (`convert --policy auto --bpw B | --size S`): bits and group size
// per tensor chosen by measured sensitivity on calibration text.
//
// Sensitivity proxy: for each candidate (bits, group size) of a weight W, the expected squared output error
// per token, sum_rows sum_j E[x_j^2] (w_j - w^_j)^2 with E[x_j^2] from the calibration statistics (experts:
// over routed tokens, scaled by routing weights, per calibration token), measured on sampled rows with the
// same group fit the conversion uses. Errors of q/k/v and gate/up (measured at their outputs) are carried
// into the residual stream by the gain of the weight that reads them (o_proj, down_proj): ||W_next||_F^2 /
// in_next, the mean output energy per unit of independent input error. The allocation minimises the sum of
// these errors under the budget:
// greedy on each weight's lower convex hull of (bytes, error), best error drop per byte first.
//
// Fixed, not allocated: norms and 1-D tensors (kept), routers (8 bits, group 64), an embedding not tied to
// the head (8 bits: no linear reads it, so the statistics say nothing about it). A tied embedding is the LM
// head.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "quant/calib.h"
#include "quant/roles.h"

namespace tqlm {

struct AutoPolicyOptions {
  uint64_t budget_bytes = 0;  // the whole checkpoint's weight bytes (as `inspect` counts them)
  std::vector<int> bits = {2, 3, 4, 5, 6, 8};
  std::vector<int> groups = {32, 64, 128};
  int64_t sample_rows = 128;  // rows per weight (per expert at least 8) whose error is measured
  bool calibrated = true;     // errors of the calibrated group fit (else of round to nearest)
};

struct AutoChoice {
  std::string module;
  Role role;
  int layer;
  int bits = 0, group_size = 0;
  uint64_t bytes = 0;
  double err = 0;  // the proxy at this choice
};

struct AutoPolicy {
  nlohmann::json policy;  // a policy document (quant/policy.h) that reproduces the choice
  std::vector<AutoChoice> choices;
  uint64_t bytes = 0, min_bytes = 0, max_bytes = 0;  // chosen, smallest and largest possible
  double err = 0;
};

// src: the checkpoint to convert; stats: its calibration statistics. Throws when the budget is below the
// smallest allocation (naming both).
AutoPolicy choose_auto_policy(const std::string& src, const CalibStats& stats, const AutoPolicyOptions& opt,
                              ThreadPool& pool);

}  // namespace tqlm
