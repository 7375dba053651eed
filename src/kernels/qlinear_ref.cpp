// The scalar reference of the integer linear kernels (the "scalar" family): the sequence of f32 operations
// stated in qlinear_kernels.h, one (row, token) at a time. -ffp-contract=off (the project default) keeps
// it free of FMA, so the SIMD families must and do match it bit for bit.
#include <algorithm>
#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "kernels/qlinear_kernels.h"
#include "quant/affine.h"

namespace tqlm {

int64_t qlinear_scratch_floats(const Linear& w) {
  return 16 * (w.in / 32) + w.in / 4 + 2 * w.in + 128;
}

void qlinear_tile_rows(const Linear& w, int64_t r, int nr, uint8_t* last, const uint8_t* cp[8], float lbias[8]) {
  const int64_t row_bytes = w.in * w.bits / 8;
  for (int i = 0; i < 8; ++i) {
    const int64_t ri = r + std::min(i, nr - 1);
    cp[i] = reinterpret_cast<const uint8_t*>(w.wq) + ri * row_bytes;
    if (ri == w.out - 1) {  // kernels read up to 64 bytes past a block's start: never past the matrix's end
      std::memcpy(last, cp[i], size_t(row_bytes));
      cp[i] = last;
    }
    lbias[i] = w.bias ? load_as_f32(w.bias, w.bias_dtype, size_t(ri)) : 0.0f;
  }
}

namespace qisa_ref {
namespace {

// One (row, token): codes [in] of the row, scales/biases of its groups as f32.
float dot_row_q8_f32(const uint8_t* codes, const float* sc, const float* bi, int64_t gs, const QActs& xa,
                     int64_t t) {
  const int64_t in = xa.in, nb = xa.blocks(), per_group = gs / kQ8Block;
  const int8_t* q = xa.q.data() + t * in;  // [in]
  const float* d = xa.d.data() + t * nb;   // [nb]
  float y = 0.0f;
  for (int64_t g = 0; g < in / gs; ++g) {
    float a = 0.0f;
    for (int64_t k = g * per_group; k < (g + 1) * per_group; ++k) {
      int32_t isum = 0;
      for (int64_t j = k * kQ8Block; j < (k + 1) * kQ8Block; ++j) isum += int32_t(codes[j]) * int32_t(q[j]);
      a = a + float(isum) * d[k];
    }
    const float xs = qacts_group_sum(xa, t, g * per_group, per_group);
    y = y + (sc[g] * a + bi[g] * xs);
  }
  return y;
}

void rows(const Linear& w, const QActs& xa, float* y, int64_t r0, int64_t r1, float* scratch) {
  const int64_t in = w.in, groups = in / w.group_size, words = in * w.bits / 32;
  float* sc = scratch;                                       // [groups]
  float* bi = sc + groups;                                   // [groups]
  uint8_t* codes = reinterpret_cast<uint8_t*>(bi + groups);  // [in]
  for (int64_t r = r0; r < r1; ++r) {
    affine_unpack_row(w.wq + r * words, in, w.bits, codes);
    for (int64_t g = 0; g < groups; ++g) {
      sc[g] = load_as_f32(w.scales, w.sdtype, size_t(r * groups + g));
      bi[g] = load_as_f32(w.biases, w.sdtype, size_t(r * groups + g));
    }
    const float b = w.bias ? load_as_f32(w.bias, w.bias_dtype, size_t(r)) : 0.0f;
    for (int64_t t = 0; t < xa.T; ++t)
      y[t * w.out + r] = dot_row_q8_f32(codes, sc, bi, w.group_size, xa, t) + b;
  }
}

}  // namespace

const QLinearKernels kernels = {"scalar", rows, quantize_rows_q8_ref};

}  // namespace qisa_ref
}  // namespace tqlm
