// Activations quantized to int8 for the integer linear kernels (qlinear.h): each row of x [T, in] (in a
// multiple of 32) in blocks of 32 with one f32 scale per block, plus the f32 sum of the original x per block
// (MLX's per-group bias enters a product as bias * sum of the group's x; using the exact inputs there instead
// of their int8 images leaves the int8 error in the scale * code term only).
#pragma once

#include <cstdint>
#include <vector>

namespace tqlm {

inline constexpr int kQ8Block = 32;

struct QActs {
  int64_t T = 0, in = 0;
  std::vector<int8_t> q;  // [T, in]       round(x / d), in [-127, 127]
  std::vector<float> d;   // [T, in / 32]  max |x| / 127 of the block (0 for an all-zero block)
  std::vector<float> s;   // [T, in / 32]  sum of the block's x (f32, in index order)
  int64_t blocks() const { return in / kQ8Block; }
};

// x [T, in] -> out (resized as needed). Round to nearest, ties to even. `in` must be a multiple of 32.
void quantize_acts_q8(const float* x, int64_t T, int64_t in, QActs& out);

// The f32 sum of the original x over `nb` consecutive blocks starting at block b0 of token t, summed
// block by block in order: what the bias term of a group multiplies (the same value on every path).
inline float qacts_group_sum(const QActs& a, int64_t t, int64_t b0, int64_t nb) {
  const float* s = a.s.data() + t * a.blocks() + b0;
  float xs = 0.0f;
  for (int64_t i = 0; i < nb; ++i) xs = xs + s[i];
  return xs;
}

}  // namespace tqlm
