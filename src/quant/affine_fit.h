// Error-minimising MLX affine group parameters: per group, the scale and bias (clipping range and offset)
// that minimise the importance-weighted squared error of the dequantized weights,
//   err = sum_j h[j] * (w[j] - (scale * q[j] + bias))^2,  q[j] in [0, 2^bits - 1],
// with scale and bias as stored (rounded to the checkpoint's float dtype). The output is plain MLX affine:
// stock mx.dequantize reads it. h[j] is the mean square of input channel j over calibration text
// (quant/calib.h).
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace tqlm {

struct GroupFit {
  float scale = 0, bias = 0;  // as stored (already rounded to the scale dtype)
  double err = 0;             // weighted squared error with these parameters and codes
};

// Weighted squared error of codes q under (scale, bias): w, h, q [gs].
double affine_group_error(const float* w, const float* h, const uint8_t* q, int gs, float scale, float bias);

// Round to nearest (mx.quantize's parameters, rounded to `sdtype`) and its weighted error: w, h, q [gs].
GroupFit affine_fit_rtn(const float* w, const float* h, int gs, int bits, DType sdtype, uint8_t* q);

// The search: candidate clipping ranges (code grids anchored at either end of the group, range scaled by
// 0.5 .. 1.25), each refined by weighted least squares for (scale, bias) given its codes and by re-rounding;
// the best candidate after rounding scale/bias to `sdtype` and re-choosing codes. Never worse than
// affine_fit_rtn under the same h (it is one of the candidates). w, h, q [gs]; h >= 0.
GroupFit affine_fit_group(const float* w, const float* h, int gs, int bits, DType sdtype, uint8_t* q);

// Rows of W [rows, cols] (dtype in {F32, F16, BF16}) with per-column importance h [cols] (nullptr: uniform)
// quantized group by group with affine_fit_group: wq [rows, cols * bits / 32], scales/biases
// [rows, cols / group_size] in `dtype`. Returns the total weighted squared error.
double affine_quantize_fit(const void* w, DType dtype, int64_t rows, int64_t cols, int bits, int group_size,
                           const float* h, uint32_t* wq, void* scales, void* biases);

}  // namespace tqlm
