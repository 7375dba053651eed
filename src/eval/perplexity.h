// Perplexity over fixed windows (the mlx_lm convention) and comparison with a reference run.
//
// The text is tokenized once (no special tokens). Window i is tokens [i*ctx, (i+1)*ctx); the first
// `samples` windows are used; each window starts from an empty cache and scores its ctx-1 next-token
// predictions. PPL = exp(mean NLL); SE(PPL) = PPL * sd(NLL) / sqrt(N) (delta method over N predictions).
//
// A reference run can be saved (--save-logits) and compared against (--kl-base): per prediction it
// keeps the reference's top-K log-probabilities (K = 64) and the rest of the mass as one bucket. KL(ref ||
// this) is computed over those K + 1 buckets: a lower bound on the full-vocabulary KL that is tight when the
// top K carry almost all the mass (reported as the mean mass outside the top K).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "model/model.h"

namespace tqlm {

struct PerplexityOptions {
  int64_t ctx = 2048;
  int64_t samples = 50;  // windows; 0 = every full window in the text
  KVSpec kv;
  int64_t chunk = 256;      // tokens per forward step (all windows in flight together)
  int64_t parallel = 1;     // windows in flight at once (the scheduler batches them)
  std::string save_logits;  // write the reference file here
  std::string kl_base;      // compare against this reference file
};

struct PerplexityResult {
  int64_t windows = 0, predictions = 0;
  double mean_nll = 0, ppl = 0, ppl_se = 0;
  double seconds = 0;
  // With kl_base:
  bool compared = false;
  double kl_mean = 0, kl_se = 0, kl_max = 0, top1_agree = 0, base_ppl = 0, ppl_ratio = 0, rest_mass = 0;
};

using Progress = std::function<void(int64_t done, int64_t total, double seconds)>;

PerplexityResult run_perplexity(Model& model, const std::vector<int32_t>& tokens,
                                const PerplexityOptions& opt, const Progress& progress = {});

}  // namespace tqlm
