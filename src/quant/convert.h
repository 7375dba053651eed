// Streaming checkpoint conversion to the standard MLX affine format under a policy (see plan.h).
// Memory is bounded by one tensor (one expert at a time for stacked experts, plus its scales/biases);
// the output is written into a temporary directory that is renamed to DST only when complete.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "quant/calib.h"
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
// stats: calibration statistics of this model (quant/calib.h): every quantized weight with an entry gets
// error-minimising group parameters (quant/affine_fit.h) under its input's importance; without, round to
// nearest (bit-identical to mx.quantize).
ConvertResult convert_checkpoint(const std::string& src, const std::string& dst, const Policy& policy,
                                 const ConvertProgress& progress = {}, int64_t block_rows = 0,
                                 bool allow_nonfinite = false, const CalibStats* stats = nullptr);

// The importance a calibrated conversion uses for weight `module` of `cfg` (expert e of a stacked module,
// else -1): the input's mean squares plus 1% of their mean (damping: no channel is ignored entirely). Empty
// when `stats` has nothing for it (the embedding when it is not tied to the head).
std::vector<float> weight_importance(const CalibStats& stats, const ModelConfig& cfg,
                                     const std::string& module, int64_t expert);

// The temporary directory this process writes DST into before renaming it: ".DST.partial-PID" beside DST.
std::string partial_output_dir(const std::string& dst);

// A directory written under partial_output_dir(dst) (created empty here) and published by one rename to dst;
// removed on destruction unless publish() ran.
class PartialOutput {
 public:
  explicit PartialOutput(std::string dst);
  ~PartialOutput();
  PartialOutput(const PartialOutput&) = delete;
  PartialOutput& operator=(const PartialOutput&) = delete;
  const std::string& path() const { return tmp_; }
  void publish();  // fsync of the directory, rename to dst, fsync of dst's parent

 private:
  std::string dst_, tmp_;
  bool published_ = false;
};

// Temporary directories ".DST.partial-PID" left next to DST by conversions whose process is gone (killed).
std::vector<std::string> stale_partial_outputs(const std::string& dst);

}  // namespace tqlm
