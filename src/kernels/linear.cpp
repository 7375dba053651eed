#include "kernels/linear.h"

#include <vector>

#include "kernels/linear_kernels.h"
#include "quant/affine.h"

namespace tqlm {

void linear_row_f32(const Linear& w, int64_t row, float* out) {
  const int64_t in = w.in;
  if (w.quantized()) {
    const int64_t groups = in / w.group_size;
    const uint32_t* wr = w.wq + row * (in * w.bits / 32);
    uint8_t q[4096];
    for (int64_t c0 = 0; c0 < in; c0 += 4096) {
      const int64_t n = std::min<int64_t>(4096, in - c0);  // in and 4096 are multiples of 32
      affine_unpack_row(wr + c0 * w.bits / 32, n, w.bits, q);
      for (int64_t j = 0; j < n; j += w.group_size) {
        const int64_t g = row * groups + (c0 + j) / w.group_size;
        const float s = load_as_f32(w.scales, w.sdtype, size_t(g));
        const float b = load_as_f32(w.biases, w.sdtype, size_t(g));
        for (int k = 0; k < w.group_size; ++k) out[c0 + j + k] = s * float(q[j + k]) + b;
      }
    }
  } else if (w.wdtype == DType::F32) {
    std::memcpy(out, static_cast<const uint8_t*>(w.w) + row * in * 4, size_t(in) * 4);
  } else {
    const uint8_t* src = static_cast<const uint8_t*>(w.w) + row * in * 2;
    if (w.wdtype == DType::BF16)
      for (int64_t j = 0; j < in; ++j) out[j] = bf16_to_f32(load_u16(src, size_t(j)));
    else
      for (int64_t j = 0; j < in; ++j) out[j] = f16_to_f32(load_u16(src, size_t(j)));
  }
}

void linear_rows_f32(const Linear& w, const float* x, int64_t T, float* y, int64_t r0, int64_t r1,
                     float* rowbuf) {
  const int64_t in = w.in, out = w.out;
  for (int64_t r = r0; r < r1; ++r) {
    linear_row_f32(w, r, rowbuf);
    const float b = w.bias ? load_as_f32(w.bias, w.bias_dtype, size_t(r)) : 0.0f;
    for (int64_t t = 0; t < T; ++t) {
      const float* xt = x + t * in;
      // 8 partial sums: independent chains the compiler can vectorise
      float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      int64_t j = 0;
      for (; j + 8 <= in; j += 8)
        for (int u = 0; u < 8; ++u) acc[u] += xt[j + u] * rowbuf[j + u];
      float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
      for (; j < in; ++j) s += xt[j] * rowbuf[j];
      y[t * out + r] = s + b;
    }
  }
}

void linear_f32(const Linear& w, const float* x, int64_t T, float* y, ThreadPool& pool) {
  const int64_t grain = std::max<int64_t>(1, std::min<int64_t>(64, w.out / (4 * pool.size())));
  pool.parallel_for(w.out, grain, [&](int64_t r0, int64_t r1, int) {
    thread_local std::vector<float> scratch;
    if (scratch.size() < size_t(7 * w.in + 64)) scratch.resize(size_t(7 * w.in + 64));
    linear_kernels().rows(w, x, T, y, r0, r1, scratch.data());
  });
}

}  // namespace tqlm
