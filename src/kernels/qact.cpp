#include "kernels/qact.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace tqlm {

void quantize_acts_q8(const float* x, int64_t T, int64_t in, QActs& out) {
  if (in % kQ8Block != 0) fail("quantize_acts_q8: width {} is not a multiple of {}", in, kQ8Block);
  out.T = T;
  out.in = in;
  const int64_t nb = in / kQ8Block;
  if (out.q.size() < size_t(T * in)) out.q.resize(size_t(T * in));
  if (out.d.size() < size_t(T * nb)) {
    out.d.resize(size_t(T * nb));
    out.s.resize(size_t(T * nb));
  }
  for (int64_t t = 0; t < T; ++t)
    for (int64_t b = 0; b < nb; ++b) {
      const float* xb = x + t * in + b * kQ8Block;  // [32]
      int8_t* qb = out.q.data() + t * in + b * kQ8Block;
      float amax = 0.0f;
      for (int j = 0; j < kQ8Block; ++j) amax = std::max(amax, std::fabs(xb[j]));
      const float d = amax / 127.0f, id = amax > 0.0f ? 127.0f / amax : 0.0f;
      int32_t qsum = 0;
      for (int j = 0; j < kQ8Block; ++j) {
        const float v = std::nearbyint(xb[j] * id);  // |v| <= 127 (x * id <= 127 up to rounding)
        qb[j] = int8_t(std::clamp(v, -127.0f, 127.0f));
        qsum += qb[j];
      }
      out.d[size_t(t * nb + b)] = d;
      out.s[size_t(t * nb + b)] = float(qsum) * d;
    }
  if (T > kQ8PermutedMaxT) return;
  if (out.q4p.size() < size_t(T * in)) {
    out.q4p.resize(size_t(T * in));
    out.q2p.resize(size_t(T * in));
  }
  for (int64_t i = 0; i < T * in; i += kQ8Block) {
    const int8_t* q = out.q.data() + i;  // [32]
    for (int h = 0; h < 2; ++h)
      for (int k = 0; k < 16; ++k) out.q4p[size_t(i + 16 * h + k)] = q[2 * k + h];
    for (int m = 0; m < 4; ++m)
      for (int k = 0; k < 8; ++k) out.q2p[size_t(i + 8 * m + k)] = q[4 * k + m];
  }
}

}  // namespace tqlm
