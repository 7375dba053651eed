#include "kernels/ops.h"

#include <algorithm>
#include <cmath>

namespace tqlm {

void rmsnorm_f32(const float* x, const float* w, int64_t n, float eps, float* out) {
  float ss = 0.0f;
  for (int64_t i = 0; i < n; ++i) ss += x[i] * x[i];
  const float r = 1.0f / std::sqrt(ss / float(n) + eps);
  for (int64_t i = 0; i < n; ++i) out[i] = w[i] * (x[i] * r);
}

void rope_f32(float* x, int64_t rot, const std::vector<float>& inv_freq, int64_t pos, bool traditional) {
  const int64_t half = rot / 2;
  for (int64_t i = 0; i < half; ++i) {
    const float theta = float(pos) * inv_freq[size_t(i)];
    const float c = std::cos(theta), s = std::sin(theta);
    float* a = traditional ? x + 2 * i : x + i;
    float* b = traditional ? x + 2 * i + 1 : x + i + half;
    const float x1 = *a, x2 = *b;
    *a = x1 * c - x2 * s;
    *b = x1 * s + x2 * c;
  }
}

void silu_mul_f32(float* g, const float* u, int64_t n) {
  for (int64_t i = 0; i < n; ++i) g[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

void softmax_f32(float* x, int64_t n) {
  float m = x[0];
  for (int64_t i = 1; i < n; ++i) m = std::max(m, x[i]);
  float s = 0.0f;
  for (int64_t i = 0; i < n; ++i) s += (x[i] = std::exp(x[i] - m));
  const float inv = 1.0f / s;
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

}  // namespace tqlm
