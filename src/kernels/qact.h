// Activations quantized to int8 for the integer linear kernels (qlinear.h): each row of x [T, in] (in a
// multiple of 32, the kernels' unit of weight codes) in blocks of 16 with one f32 scale per block, plus the
// block's sum as the kernels' bias term needs it. MLX's per-group bias enters a product as bias * (sum of the
// group's inputs). That sum is taken over the int8 images (d * sum of q), not over the original x: then the
// product is exactly W x' for the rounded input x', whose error sum_j w_j e_j has zero-centred weights w_j;
// with the exact sum of x the error would be sum_j (w_j - bias) e_j = sum_j scale * code_j * e_j, all codes
// >= 0, about 4-5x the variance. Measured on the default model (8 windows of 512): KL(f32 || int8) 0.0122
// with the exact sum, 0.0026 with the quantized one (docs/results.md). Blocks of 16 rather than 32 (one more
// f32 multiply-add per 32 codes and token in the kernels) bring the KL to about half of that
// (docs/results.md).
#pragma once

#include <cstdint>
#include <vector>

#include "core/thread_pool.h"

namespace tqlm {

inline constexpr int kQ8Block = 16;
// Up to this many tokens, quantize_acts_q8 also writes the activations in the code order of 2- and 4-bit
// blocks unpacked with shifts alone (the decode kernels use them; the products' integer sums are the same).
inline constexpr int64_t kQ8PermutedMaxT = 2;

struct QActs {
  int64_t T = 0, in = 0;
  std::vector<int8_t> q;  // [T, in]       round(x / d), in [-127, 127]
  std::vector<float> d;   // [T, in / 16]  max |x| / 127 of the block (0 for an all-zero block)
  std::vector<float> s;   // [T, in / 16]  float(sum of the block's q) * d: the sum of its int8 images
  // When T <= kQ8PermutedMaxT, q with each run of 32 (a block of weight codes) permuted ([T, in]):
  std::vector<int8_t> q4p;  // position 16h + k holds element 2k + h (low nibbles, then high nibbles)
  std::vector<int8_t> q2p;  // position 8m + k holds element 4k + m (bit pairs m = 0..3 of bytes k = 0..7)
  int64_t blocks() const { return in / kQ8Block; }
};

// x [T, in] -> out (resized as needed). Round to nearest, ties to even. `in` must be a multiple of 32. Rows
// split over `pool` when given (each row's result is the same either way).
void quantize_acts_q8(const float* x, int64_t T, int64_t in, QActs& out, ThreadPool* pool = nullptr);

// q, d and s of tokens [t0, t1) of x [out.T, out.in] into `out` (already sized): the plain C++ reference of
// every family's quantizer (QLinearKernels::quantize; all give identical bytes and floats).
void quantize_rows_q8_ref(const float* x, int64_t t0, int64_t t1, QActs& out);

// The sum of the int8 images over `nb` consecutive blocks starting at block b0 of token t, summed block by
// block in order: what the bias term of a group multiplies (the same value on every path).
inline float qacts_group_sum(const QActs& a, int64_t t, int64_t b0, int64_t nb) {
  const float* s = a.s.data() + t * a.blocks() + b0;
  float xs = 0.0f;
  for (int64_t i = 0; i < nb; ++i) xs = xs + s[i];
  return xs;
}

// xs [T, in / gs]: qacts_group_sum of every (token, group of gs), out of line (qact.cpp is built without ISA
// flags, so every family may call it).
void qacts_group_sums(const QActs& a, int64_t gs, std::vector<float>& xs);

}  // namespace tqlm
