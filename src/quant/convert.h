// Streaming checkpoint conversion to the standard MLX affine format under a policy (see plan.h).
// Memory is bounded by one tensor (one expert at a time for stacked experts, plus its scales/biases);
// the output is written into a temporary directory that is renamed to DST only when complete.
#pragma once

#include <functional>
#include <string>

#include "quant/plan.h"

namespace tqlm {

struct ConvertResult {
  ConversionPlan plan;
  uint64_t bytes_written = 0;
  size_t shards = 0;
  bool requantized = false;  // the source was already quantized (dequantized, then quantized again)
};

using ConvertProgress = std::function<void(uint64_t done, uint64_t total)>;

// src: HF (bf16/f16/f32, FP8 e4m3 with weight_scale_inv, per-expert or stacked) or MLX checkpoint directory.
// dst must not exist. Throws naming the tensor or file on any problem; leaves no dst behind on failure.
// block_rows: rows converted per step (a multiple of 128; 0 = about 32 MiB of f32 per step).
ConvertResult convert_checkpoint(const std::string& src, const std::string& dst, const Policy& policy,
                                 const ConvertProgress& progress = {}, int64_t block_rows = 0);

}  // namespace tqlm
