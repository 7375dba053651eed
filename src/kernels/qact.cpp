#include "kernels/qact.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "kernels/qlinear_kernels.h"

namespace tqlm {

void quantize_rows_q8_ref(const float* x, int64_t t0, int64_t t1, QActs& out) {
  const int64_t in = out.in, nb = in / kQ8Block;
  for (int64_t t = t0; t < t1; ++t)
    for (int64_t b = 0; b < nb; ++b) {
      const float* xb = x + t * in + b * kQ8Block;  // [16]
      int8_t* qb = out.q.data() + t * in + b * kQ8Block;
      float amax = 0.0f;
      for (int j = 0; j < kQ8Block; ++j) amax = std::max(amax, std::fabs(xb[j]));
      const float d = amax / 127.0f, id = amax > 0.0f ? 127.0f / amax : 0.0f;
      int32_t qsum = 0;
      for (int j = 0; j < kQ8Block; ++j) {
        float v = xb[j] * id;
        v = v > -127.0f ? v : -127.0f;  // |x * id| <= 127 up to rounding; a NaN becomes -127 (no UB)
        v = v < 127.0f ? v : 127.0f;
        v = (v + 12582912.0f) - 12582912.0f;  // round to nearest, ties to even (1.5 * 2^23), vectorises
        qb[j] = int8_t(v);
        qsum += qb[j];
      }
      out.d[size_t(t * nb + b)] = d;
      out.s[size_t(t * nb + b)] = float(qsum) * d;
    }
}

namespace {

// Tokens [t0, t1): the family's quantizer, then the permuted copies for short batches.
void quantize_rows(const float* x, int64_t t0, int64_t t1, QActs& out) {
  qlinear_kernels().quantize(x, t0, t1, out);
  if (out.T > kQ8PermutedMaxT) return;
  for (int64_t i = t0 * out.in; i < t1 * out.in; i += 32) {
    const int8_t* q = out.q.data() + i;  // [32]: one block of weight codes
    for (int h = 0; h < 2; ++h)
      for (int k = 0; k < 16; ++k) out.q4p[size_t(i + 16 * h + k)] = q[2 * k + h];
    for (int m = 0; m < 4; ++m)
      for (int k = 0; k < 8; ++k) out.q2p[size_t(i + 8 * m + k)] = q[4 * k + m];
  }
}

}  // namespace

void quantize_acts_q8(const float* x, int64_t T, int64_t in, QActs& out, ThreadPool* pool) {
  if (in % 32 != 0) fail("quantize_acts_q8: width {} is not a multiple of 32", in);
  out.T = T;
  out.in = in;
  const int64_t nb = in / kQ8Block;
  if (out.q.size() < size_t(T * in)) out.q.resize(size_t(T * in));
  if (out.d.size() < size_t(T * nb)) {
    out.d.resize(size_t(T * nb));
    out.s.resize(size_t(T * nb));
  }
  if (T <= kQ8PermutedMaxT && out.q4p.size() < size_t(T * in)) {
    out.q4p.resize(size_t(T * in));
    out.q2p.resize(size_t(T * in));
  }
  if (!pool || T < 16) return quantize_rows(x, 0, T, out);
  pool->parallel_for(T, 8, [&](int64_t t0, int64_t t1, int) { quantize_rows(x, t0, t1, out); });
}

void qacts_group_sums(const QActs& a, int64_t gs, std::vector<float>& xs) {
  const int64_t per_group = gs / kQ8Block, groups = a.in / gs;
  xs.resize(size_t(a.T * groups));
  for (int64_t t = 0; t < a.T; ++t)
    for (int64_t g = 0; g < groups; ++g)
      xs[size_t(t * groups + g)] = qacts_group_sum(a, t, g * per_group, per_group);
}

}  // namespace tqlm
