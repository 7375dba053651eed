// Linear layers through the selected path: `int8` (activations quantized to int8 once per input, integer dot
// products with the weight codes: qlinear_kernels.h) or `f32` (weights expanded to f32: linear.h, the
// reference). Float (bf16/f16/f32) weights always take the f32 path.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/linear_weight.h"
#include "kernels/qact.h"

namespace tqlm {

enum class LinearPath { f32, int8 };

// Process-wide. Default: TQLM_LINEAR=int8|f32 from the environment, else int8 (on the default model: PPL
// +0.20%, KL(f32 || int8) 0.0014, 4.5-6x faster decode: docs/results.md).
LinearPath linear_path();
void set_linear_path(LinearPath p);
LinearPath parse_linear_path(const std::string& s);  // "int8" | "f32", else an Error
const char* linear_path_name(LinearPath p);
// What runs quantized linears, e.g. "int8 avx512vbmi, packed" or "f32 avx512" (for bench output).
std::string linear_kernel_family();

// Whether models repack their 2-, 3-, 4- and 8-bit weights at load into the packed tile layout
// (qlinear_pack.h): when the dispatched int8 family has a kernel for it, unless TQLM_PACK=0.
bool qlinear_packing();

// One linear input x [T, in], quantized on first use by an int8 linear and reused by the next ones that read
// the same x (q/k/v, gate/up). qa is the storage; x must not change while the LinearInput is in use.
struct LinearInput {
  const float* x;
  int64_t T, in;
  QActs* qa;
  bool quantized = false;
};

// y[T, out] = x W^T + b through linear_path().
void linear(const Linear& w, LinearInput& x, float* y, ThreadPool& pool);

// The int8 path explicitly: y[xa.T, w.out] for a quantized single-expert Linear.
void linear_q8(const Linear& w, const QActs& xa, float* y, ThreadPool& pool);

// Several int8 products in one parallel loop over all their 8-row tiles: y [xa->T, w->out] = xa W^T for each
// job (quantized single-expert Linears). One barrier instead of one per matrix: a decode step's experts are
// tens of microseconds each. Each result is the same as linear_q8's.
struct QLinearJob {
  const Linear* w;
  const QActs* xa;
  float* y;
};
void linear_q8_grouped(const std::vector<QLinearJob>& jobs, ThreadPool& pool);

// y_i [T, w_i.out] = x W_i^T for several weights that read the same input (q/k/v, gate/up): one grouped loop
// on the int8 path when every weight is quantized, else one linear() each.
struct LinearOut {
  const Linear* w;
  float* y;
};
void linear_many(const std::vector<LinearOut>& outs, LinearInput& x, ThreadPool& pool);

}  // namespace tqlm
