// FP8 (e4m3fn) weights with DeepSeek-style block scales: W[i, j] = fp8(Wq[i, j]) * scale_inv[i/128, j/128].
#pragma once

#include "core/tensor.h"

namespace tqlm {

constexpr int kFp8Block = 128;

// weight: F8_E4M3 or F8_E5M2 [out, in]; scale_inv: F32/BF16/F16 [ceil(out/128), ceil(in/128)].
// out: rows*cols values of `out_dtype` (F32, or BF16/F16 rounded from the f32 product, as mlx_lm does).
void fp8_block_dequantize(const TensorView& weight, const TensorView& scale_inv, DType out_dtype, void* out);

}  // namespace tqlm
