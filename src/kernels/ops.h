// Elementwise and row operations of the forward pass, f32.
#pragma once

#include <cstdint>
#include <vector>

namespace tqlm {

// out[i] = w[i] * x[i] / sqrt(mean(x^2) + eps) over rows of n (in place allowed).
void rmsnorm_f32(const float* x, const float* w, int64_t n, float eps, float* out);

// Rotary embedding on one head vector x[hd] at position pos: pairs (i, i + rot/2) for i < rot/2
// (rotate-half) or (2i, 2i+1) (traditional); dims >= rot pass through.
void rope_f32(float* x, int64_t rot, const std::vector<float>& inv_freq, int64_t pos, bool traditional);

// g[i] = silu(g[i]) * u[i]
void silu_mul_f32(float* g, const float* u, int64_t n);

// In-place softmax over n values (max-subtracted, f32).
void softmax_f32(float* x, int64_t n);

}  // namespace tqlm
