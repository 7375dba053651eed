// `tqlm kv-calibrate`: measures a model's KV calibration (kv/kv_calib.h) on a text.
//
// Means: the text's first `tokens` tokens in windows of `window`, each from an empty f32 cache; the mean of
// every (layer, kv head) over all cached positions of the keys (after RoPE, as stored) and of the values.
// Sensitivity: on the first `kl_tokens` tokens, the mean full-vocabulary KL(bf16 cache || cache with one
// layer's keys (or values) alone at turbo{b}, centred with these means), for every layer, side and b in
// `bits`. Deterministic: same model, text and options give the same file.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "kv/kv_calib.h"
#include "model/model.h"

namespace tqlm {

struct KVCalibrateOptions {
  int64_t tokens = 4096, window = 1024;
  bool sensitivity = true;
  int64_t kl_tokens = 512;
  std::vector<int> bits = {2, 3, 4, 8};
  bool sink = true;    // sensitivity measured with the first token kept bf16 (the `s` modes)
  std::string source;  // recorded in the file
};

using CalibrateProgress = std::function<void(const std::string& step, int64_t done, int64_t total)>;

KVCalib kv_calibrate(Model& model, const std::vector<int32_t>& tokens, const KVCalibrateOptions& o,
                     const CalibrateProgress& progress = {});

}  // namespace tqlm
