// Calibration: runs the engine over tokenized text and records every linear layer's input statistics
// (quant/calib.h). Windows of `ctx` tokens, each from an empty cache, as perplexity does.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "model/model.h"
#include "quant/calib.h"

namespace tqlm {

struct CalibrateOptions {
  int64_t ctx = 512;    // tokens per window
  int64_t windows = 0;  // 0: every full window of the tokens (at least one, however short)
  int64_t chunk = 256;  // tokens per forward step
};

// tokens: the calibration text (already cut to the part to use). Throws when it has fewer than 2 tokens.
CalibStats calibrate(Model& model, const std::vector<int32_t>& tokens, const CalibrateOptions& opt,
                     const std::function<void(int64_t done, int64_t total)>& progress = {});

}  // namespace tqlm
