// The source side of a conversion: the values of one planned weight (or one expert slice of it), read from
// an HF or MLX checkpoint in a float dtype.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/checkpoint.h"

namespace tqlm {

// Reads the source values of one planned weight (or one expert slice of it) in the source float dtype:
// float tensors are passed through, FP8 is block-dequantized (rounded to bf16 as mlx_lm does), MLX-quantized
// modules are dequantized (in their scale dtype).
class Source {
 public:
  explicit Source(const Checkpoint& ck) : ck_(ck) {}

  // Candidate names of expert e's tensor for a stacked MLX module "...switch_mlp.gate_proj".
  const TensorView* find_expert(const std::string& module, int64_t e, std::string* mod_out) const;

  // Rows [r0, r0 + nr) of `module` ([rows, cols]), or of expert `e` of a stacked module, as `out_dtype`
  // bytes.
  void read(const std::string& module, int64_t e, int64_t r0, int64_t nr, int64_t rows, int64_t cols,
            DType out_dtype, std::vector<uint8_t>& buf);

  // f32 values stored as `t` (F32, F16, BF16) into buf.
  static void store(const std::vector<float>& f, DType t, std::vector<uint8_t>& buf);

  bool requantized = false;

 private:
  const Checkpoint& ck_;
};

}  // namespace tqlm
