// MLX affine quantization ("mode": "affine"), bit-exact with mx.quantize / mx.dequantize on CPU.
//
// A float matrix W [rows, cols] (leading dims flattened into rows) becomes
//   wq     uint32 [rows, cols * bits / 32]  element j of a row at bits [j*bits, (j+1)*bits) of the row's
//                                           little-endian bit stream, LSB first
//   scales T      [rows, cols / group_size] T = the input dtype (f32, f16 or bf16)
//   biases T      [rows, cols / group_size]
// and w = scale * q + bias. See docs/formats.md for the per-group algorithm.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace tqlm {

bool affine_bits_supported(int bits);      // 2, 3, 4, 5, 6, 8
bool affine_group_size_supported(int gs);  // 32, 64, 128
// Throws naming `what` unless bits/group size are supported and cols is a multiple of the group size.
void affine_check(int bits, int group_size, int64_t cols, const char* what);

inline int64_t affine_packed_cols(int64_t cols, int bits) {
  return cols * bits / 32;
}

// W: `dtype` in {F32, F16, BF16}; scales/biases written in the same dtype.
void affine_quantize(const void* w, DType dtype, int64_t rows, int64_t cols, int bits, int group_size,
                     uint32_t* wq, void* scales, void* biases);

// Dequantize to `out` of dtype `dtype` (the scales' dtype), rounding as MLX does: for f16/bf16,
// scale*q is rounded to the dtype before the bias is added, and the sum is rounded again.
void affine_dequantize(const uint32_t* wq, const void* scales, const void* biases, DType dtype, int64_t rows,
                       int64_t cols, int bits, int group_size, void* out);

// Dequantize to f32 with one f32 multiply-add per element (what compute kernels use).
void affine_dequantize_f32(const uint32_t* wq, const void* scales, const void* biases, DType sdtype,
                           int64_t rows, int64_t cols, int bits, int group_size, float* out);

// Round to nearest for one group w[0..gs): MLX's scale, bias and codes q[0..gs) (scale and bias in f32,
// before they are rounded to the stored dtype).
void affine_rtn_group(const float* w, int gs, int bits, float* scale, float* bias, uint8_t* q);

// Packs the b-bit codes q[0..cols) of one row into cols * bits / 32 words (cols a multiple of 32).
void affine_pack_row(const uint8_t* q, int64_t cols, int bits, uint32_t* wq_row);

// Stores n f32 values as dtype t (F32, F16 or BF16), rounding to nearest even.
void affine_store_floats(const float* src, DType t, int64_t n, void* dst);

// Unpacks the b-bit codes of one row: q[0..cols).
void affine_unpack_row(const uint32_t* wq_row, int64_t cols, int bits, uint8_t* q);

}  // namespace tqlm
