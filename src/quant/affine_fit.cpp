#include "quant/affine_fit.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "quant/affine.h"

namespace tqlm {

namespace {

// An f32 rounded to the scale dtype and back (what the checkpoint will hold).
float round_to(float v, DType t) {
  if (t == DType::BF16) return bf16_to_f32(f32_to_bf16(v));
  if (t == DType::F16) return f16_to_f32(f32_to_f16(v));
  return v;
}

// Codes nearest to w under (scale, bias): q [gs].
void choose_codes(const float* w, int gs, int nmax, float scale, float bias, uint8_t* q) {
  const float inv = 1.0f / scale;
  for (int j = 0; j < gs; ++j) {
    float v = std::rint((w[j] - bias) * inv);
    v = std::min(std::max(v, 0.0f), float(nmax));
    q[j] = v == v ? uint8_t(v) : 0;
  }
}

// Weighted least squares for (scale, bias) given codes q: false when the codes are all equal.
bool least_squares(const float* w, const float* h, const uint8_t* q, int gs, float* scale, float* bias) {
  double s0 = 0, s1 = 0, s2 = 0, t0 = 0, t1 = 0;
  for (int j = 0; j < gs; ++j) {
    const double hj = h[j], qj = q[j];
    s0 += hj;
    s1 += hj * qj;
    s2 += hj * qj * qj;
    t0 += hj * w[j];
    t1 += hj * qj * w[j];
  }
  const double det = s0 * s2 - s1 * s1;
  if (!(det > 1e-12 * s0 * s2) || s0 <= 0) return false;
  *scale = float((s0 * t1 - s1 * t0) / det);
  *bias = float((s2 * t0 - s1 * t1) / det);
  return std::isfinite(*scale) && std::isfinite(*bias) && *scale != 0.0f;
}

}  // namespace

double affine_group_error(const float* w, const float* h, const uint8_t* q, int gs, float scale, float bias) {
  double e = 0;
  for (int j = 0; j < gs; ++j) {
    const double d = double(w[j]) - double(scale * float(q[j]) + bias);
    e += double(h[j]) * d * d;
  }
  return e;
}

GroupFit affine_fit_rtn(const float* w, const float* h, int gs, int bits, DType sdtype, uint8_t* q) {
  GroupFit f;
  affine_rtn_group(w, gs, bits, &f.scale, &f.bias, q);  // codes from the f32 parameters, as mx.quantize
  f.scale = round_to(f.scale, sdtype);
  f.bias = round_to(f.bias, sdtype);
  f.err = affine_group_error(w, h, q, gs, f.scale, f.bias);
  return f;
}

GroupFit affine_fit_group(const float* w, const float* h, int gs, int bits, DType sdtype, uint8_t* q) {
  GroupFit best = affine_fit_rtn(w, h, gs, bits, sdtype, q);
  const int nmax = (1 << bits) - 1;
  float lo = std::numeric_limits<float>::infinity(), hi = -lo;
  for (int j = 0; j < gs; ++j) lo = std::min(lo, w[j]), hi = std::max(hi, w[j]);
  const float range = hi - lo;
  if (!(range > 0) || !std::isfinite(range)) return best;
  std::vector<uint8_t> cq(static_cast<size_t>(gs), 0);  // [gs] candidate codes
  std::vector<uint8_t> tq(static_cast<size_t>(gs), 0);  // [gs] trial codes
  // A candidate (scale, bias) as stored: codes re-chosen, kept when better.
  auto consider = [&](float s, float b) {
    s = round_to(s, sdtype);
    b = round_to(b, sdtype);
    if (!(std::abs(s) > 0) || !std::isfinite(s) || !std::isfinite(b)) return;
    choose_codes(w, gs, nmax, s, b, tq.data());
    const double e = affine_group_error(w, h, tq.data(), gs, s, b);
    if (e < best.err) {
      best = {s, b, e};
      std::copy(tq.begin(), tq.end(), q);
    }
  };
  constexpr int kSteps = 12;  // range factors 0.5 .. 1.25
  for (int anchor = 0; anchor < 3; ++anchor)
    for (int k = 0; k < kSteps; ++k) {
      const float f = 0.5f + 0.75f * float(k) / float(kSteps - 1);
      const float width = range * f, s0 = width / float(nmax);
      const float b0 = anchor == 0 ? lo : anchor == 1 ? hi - width : lo + 0.5f * (range - width);
      choose_codes(w, gs, nmax, s0, b0, cq.data());
      float s = s0, b = b0;
      for (int it = 0; it < 2; ++it) {  // least squares given the codes, then codes given the parameters
        if (!least_squares(w, h, cq.data(), gs, &s, &b)) break;
        choose_codes(w, gs, nmax, s, b, cq.data());
      }
      consider(s, b);
    }
  return best;
}

double affine_quantize_fit(const void* w, DType dtype, int64_t rows, int64_t cols, int bits, int gs,
                           const float* h, uint32_t* wq, void* scales, void* biases) {
  affine_check(bits, gs, cols, "affine_quantize_fit");
  if (dtype != DType::F32 && dtype != DType::F16 && dtype != DType::BF16)
    fail("affine_quantize_fit: input must be F32, F16 or BF16, got {}", dtype_name(dtype));
  const int64_t groups = cols / gs;
  std::vector<float> hs(static_cast<size_t>(cols), 1.0f);  // [cols] importance (uniform without h)
  if (h) std::copy(h, h + cols, hs.begin());
  std::vector<float> row(static_cast<size_t>(cols));         // [cols] one row in f32
  std::vector<uint8_t> q(static_cast<size_t>(cols));         // [cols] its codes
  std::vector<float> s(static_cast<size_t>(rows * groups));  // [rows, groups] scales
  std::vector<float> b(static_cast<size_t>(rows * groups));  // [rows, groups] biases
  double total = 0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) row[size_t(c)] = load_as_f32(w, dtype, size_t(r * cols + c));
    for (int64_t g = 0; g < groups; ++g) {
      const size_t o = size_t(g * gs);
      const GroupFit f = affine_fit_group(&row[o], &hs[o], gs, bits, dtype, &q[o]);
      s[size_t(r * groups + g)] = f.scale;
      b[size_t(r * groups + g)] = f.bias;
      total += f.err;
    }
    affine_pack_row(q.data(), cols, bits, wq + r * (cols * bits / 32));
  }
  affine_store_floats(s.data(), dtype, rows * groups, scales);
  affine_store_floats(b.data(), dtype, rows * groups, biases);
  return total;
}

}  // namespace tqlm
