// The error-minimising group fit (quant/affine_fit.h) against round to nearest and a brute-force search.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "quant/affine.h"
#include "quant/affine_fit.h"

using namespace tqlm;

namespace {

// Brute force: the best error over a fine grid of (scale, bias), each element at its nearest code. The search
// stays within 10% of it on every group (importance spread over orders of magnitude makes a few groups hard).
double brute_force(const std::vector<float>& w, const std::vector<float>& h, int bits) {
  const int nmax = (1 << bits) - 1;
  const float lo = *std::min_element(w.begin(), w.end()), hi = *std::max_element(w.begin(), w.end());
  const float range = hi - lo;
  double best = std::numeric_limits<double>::infinity();
  const int N = 400;
  for (int i = 1; i <= N; ++i) {
    const float s =
        range / float(nmax) * (0.3f + 1.2f * float(i) / float(N));  // 0.3 .. 1.5 of the full range
    for (int k = 0; k <= N; ++k) {
      const float b = lo - 0.5f * range + 1.5f * range * float(k) / float(N);
      double e = 0;
      for (size_t j = 0; j < w.size(); ++j) {
        const float q = std::min(std::max(std::rint((w[j] - b) / s), 0.0f), float(nmax));
        const double d = double(w[j]) - double(s * q + b);
        e += double(h[j]) * d * d;
      }
      best = std::min(best, e);
    }
  }
  return best;
}

}  // namespace

TEST(AffineFit, NeverWorseThanRoundToNearestAndNearBruteForce) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::lognormal_distribution<float> heavy(0.0f, 1.5f);  // importance spread over orders of magnitude
  const int gs = 32;
  for (int bits : {2, 3, 4}) {
    double sum_fit = 0, sum_rtn = 0;
    for (int trial = 0; trial < 12; ++trial) {
      std::vector<float> w(gs), h(gs);
      for (int j = 0; j < gs; ++j) w[size_t(j)] = normal(rng) * (trial % 3 == 0 && j == 5 ? 6.0f : 1.0f);
      for (int j = 0; j < gs; ++j) h[size_t(j)] = heavy(rng);
      std::vector<uint8_t> q(gs), qr(gs);
      const GroupFit f = affine_fit_group(w.data(), h.data(), gs, bits, DType::F32, q.data());
      const GroupFit r = affine_fit_rtn(w.data(), h.data(), gs, bits, DType::F32, qr.data());
      // the reported error is the error of the codes and parameters returned
      EXPECT_NEAR(f.err, affine_group_error(w.data(), h.data(), q.data(), gs, f.scale, f.bias), 1e-9 * f.err);
      EXPECT_LE(f.err, r.err * (1 + 1e-12)) << bits << " " << trial;
      const double bf = brute_force(w, h, bits);
      EXPECT_LE(f.err, bf * 1.10 + 1e-12) << "bits " << bits << " trial " << trial << " rtn " << r.err;
      sum_fit += f.err;
      sum_rtn += r.err;
    }
    EXPECT_LT(sum_fit, 0.8 * sum_rtn) << bits;  // a real gain, not just a tie
  }
}

TEST(AffineFit, StoredDtypeAndQuantizeRows) {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  const int64_t rows = 4, cols = 128;
  const int bits = 3, gs = 64;
  std::vector<float> w(static_cast<size_t>(rows * cols));  // [rows, cols]
  std::vector<float> h(static_cast<size_t>(cols));         // [cols]
  for (auto& v : w) v = normal(rng);
  for (auto& v : h) v = 0.1f + float(rng() % 100) / 10.0f;
  std::vector<uint16_t> wb(w.size());  // bf16 copy
  for (size_t i = 0; i < w.size(); ++i) wb[i] = f32_to_bf16(w[i]);
  std::vector<uint32_t> wq(size_t(rows * cols * bits / 32));
  std::vector<uint16_t> s(size_t(rows * cols / gs)), b(s.size());
  const double total = affine_quantize_fit(wb.data(), DType::BF16, rows, cols, bits, gs, h.data(), wq.data(),
                                           s.data(), b.data());
  // What a reader dequantizes (f32 multiply-add of the stored bf16 parameters) has exactly the reported
  // error.
  std::vector<float> back(w.size());
  affine_dequantize_f32(wq.data(), s.data(), b.data(), DType::BF16, rows, cols, bits, gs, back.data());
  double e = 0, e_rtn = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) {
      const double d = double(bf16_to_f32(wb[size_t(r * cols + j)])) - double(back[size_t(r * cols + j)]);
      e += double(h[size_t(j)]) * d * d;
    }
  EXPECT_NEAR(e, total, 1e-6 * total);
  // and it beats mx.quantize's round to nearest on the same rows
  std::vector<uint16_t> s2(s.size()), b2(b.size());
  affine_quantize(wb.data(), DType::BF16, rows, cols, bits, gs, wq.data(), s2.data(), b2.data());
  affine_dequantize_f32(wq.data(), s2.data(), b2.data(), DType::BF16, rows, cols, bits, gs, back.data());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) {
      const double d = double(bf16_to_f32(wb[size_t(r * cols + j)])) - double(back[size_t(r * cols + j)]);
      e_rtn += double(h[size_t(j)]) * d * d;
    }
  EXPECT_LT(total, e_rtn);
}

TEST(AffineFit, ConstantGroupIsExact) {
  std::vector<float> w(32, 0.25f), h(32, 1.0f);
  std::vector<uint8_t> q(32);
  const GroupFit f = affine_fit_group(w.data(), h.data(), 32, 2, DType::BF16, q.data());
  EXPECT_EQ(f.err, 0.0);
}
