// Matrix products against model weights (quantized MLX affine or float). Activations are f32.
#pragma once

#include <cstdint>

#include "core/thread_pool.h"
#include "kernels/linear_weight.h"

namespace tqlm {

// One weight row (of a single-expert Linear) as f32: scale * q + bias for quantized rows.
void linear_row_f32(const Linear& w, int64_t row, float* out /* [in] */);

// y[T, out] = x[T, in] W^T + b. Threads split the output rows; each weight row is expanded once and
// reused for all T token rows (the reference path; SIMD paths come with the speed work).
void linear_f32(const Linear& w, const float* x, int64_t T, float* y, ThreadPool& pool);

// Same, single-threaded over rows [r0, r1) only (used inside already-parallel regions).
void linear_rows_f32(const Linear& w, const float* x, int64_t T, float* y, int64_t r0, int64_t r1,
                     float* rowbuf);

}  // namespace tqlm
