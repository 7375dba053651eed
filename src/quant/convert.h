// Streaming checkpoint conversion to the standard MLX affine format under a policy (see plan.h).
// Memory is bounded by one tensor (one expert at a time for stacked experts, plus its scales/biases);
// the output is written into a temporary directory that is renamed to DST only when complete.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "quant/plan.h"

namespace tqlm {

struct ConvertResult {
  ConversionPlan plan;
  uint64_t bytes_written = 0;
  size_t shards = 0;
  bool requantized = false;            // the source was already quantized (dequantized, then quantized again)
  std::vector<std::string> nonfinite;  // with allow_nonfinite: "TENSOR: N NaN/Inf values" per tensor
};

using ConvertProgress = std::function<void(uint64_t done, uint64_t total)>;

// src: HF (bf16/f16/f32, FP8 e4m3 with weight_scale_inv, per-expert or stacked) or MLX checkpoint directory.
// dst must not exist. Throws naming the tensor or file on any problem; leaves no dst behind on failure.
// block_rows: rows converted per step (a multiple of 128; 0 = about 32 MiB of f32 per step). A source tensor
// holding NaN or Inf values is an error naming it and the count, unless allow_nonfinite (then listed in the
// result). Files and directory are fsync'ed before the final rename.
ConvertResult convert_checkpoint(const std::string& src, const std::string& dst, const Policy& policy,
                                 const ConvertProgress& progress = {}, int64_t block_rows = 0,
                                 bool allow_nonfinite = false);

// Temporary directories ".DST.partial-PID" left next to DST by conversions whose process is gone (killed).
std::vector<std::string> stale_partial_outputs(const std::string& dst);

}  // namespace tqlm
