// Calibration statistics (an importance matrix): for every linear layer's input, the per-channel sum of
// squares over calibration tokens and the token count; for MoE experts, per expert over the tokens routed to
// it, each token's input scaled by its routing weight (the expert's output is). Inputs shared by several
// weights are stored once (q/k/v under q_proj, gate/up under gate_proj). File format (docs/formats.md):
// safetensors, __metadata__ {"format": "tqlm-calib", "version": "1", ...}, per input `<module>.sumsq` F64
// [in] or [E, in] and `<module>.tokens` I64 [1] or [E].
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/observer.h"

namespace tqlm {

struct CalibEntry {
  int64_t experts = 0;          // 0: one input (not per expert)
  int64_t in = 0;               // input channels
  std::vector<double> sumsq;    // [max(1, experts), in] sum of x^2 per channel
  std::vector<int64_t> tokens;  // [max(1, experts)] rows seen
};

class CalibStats {
 public:
  std::map<std::string, CalibEntry> inputs;  // by module path of the input's first weight
  std::map<std::string, std::string> meta;   // model_type, data, ctx, windows, tokens (as strings)
  int64_t tokens = 0;                        // calibration tokens run through the model

  // Adds rows [n, in] to input `key` (expert e of `experts`, or e = -1 and experts = 0), row t scaled by
  // row_w[t] when row_w is given.
  void add(const std::string& key, int64_t e, int64_t experts, const float* rows, int64_t n, int64_t in,
           const float* row_w = nullptr);

  // The input entry that weight `module` (an MLX module path) reads, or nullptr.
  const CalibEntry* find(const std::string& module) const;
  // Mean square per input channel of `module` ([in]; expert e of a stacked module, -1 otherwise): over the
  // tokens that reached it (an expert no token reached: over all the layer's routed tokens). Empty when the
  // statistics have no entry for it.
  std::vector<float> importance(const std::string& module, int64_t expert = -1) const;
  // Sum of squares per channel over all calibration tokens ([in]; a stacked module: summed over its experts
  // when expert = -1): the expected squared output error per token is sum_j this[j] / tokens * dw_j^2.
  std::vector<double> energy(const std::string& module, int64_t expert = -1) const;

  void save(const std::string& path) const;         // atomic (temporary name, renamed)
  static CalibStats load(const std::string& path);  // errors name the file and tensor
};

// The stats key (module path of the input's first weight) of a linear site of `cfg`.
std::string calib_key(const ModelConfig& cfg, int64_t layer, LinearSite site);

// Records every linear input of a model's forward passes into `stats`.
class CalibObserver : public ActivationObserver {
 public:
  CalibObserver(const ModelConfig& cfg, CalibStats& stats) : cfg_(cfg), stats_(stats) {}
  void observe(int64_t layer, LinearSite site, int64_t expert, const float* rows, int64_t n, int64_t in,
               const float* row_weights) override;

 private:
  const ModelConfig& cfg_;
  CalibStats& stats_;
};

}  // namespace tqlm
