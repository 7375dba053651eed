// The weight view every linear kernel reads: a [out, in] matrix (or [E, out, in] stacked experts) stored as
// MLX affine codes or floats, pointing into the checkpoint's memory. The model resolves these
// (model/weights.h); kernels only read them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace tqlm {

// y = x W^T (+ b). W is [out, in], or [E, out, in] for stacked experts (select one with expert()).
struct Linear {
  std::string name;  // module path, for errors
  int64_t out = 0, in = 0, n_experts = 1;
  int bits = 0, group_size = 0;  // bits == 0: a float weight
  const uint32_t* wq = nullptr;  // quantized: [E, out, in*bits/32]
  const void* scales = nullptr;  // quantized: [E, out, in/group] of sdtype
  const void* biases = nullptr;
  DType sdtype = DType::BF16;
  const void* w = nullptr;  // float: [E, out, in] of wdtype
  DType wdtype = DType::BF16;
  const void* bias = nullptr;  // optional Linear bias [E, out] of bias_dtype
  DType bias_dtype = DType::BF16;
  // HF checkpoints keep experts as separate tensors (experts.E.*): then each expert is its own Linear.
  std::shared_ptr<const std::vector<Linear>> parts;
  // Optional copy of wq/scales/biases in the kernels' 16-row tile layout (qlinear_pack.h), owned by
  // packed_store; wq/scales/biases stay valid (the reference and the f32 path read them).
  const uint8_t* packed = nullptr;  // [E, tiles, packed_tile_bytes]
  int64_t packed_tile_bytes = 0;
  std::shared_ptr<const uint8_t> packed_store;

  bool present() const { return out > 0; }
  bool quantized() const { return bits != 0; }
  Linear expert(int64_t e) const;  // the [out, in] slice of expert e
  uint64_t bytes() const;          // bytes of one [out, in] slice as stored
};

}  // namespace tqlm
