// TurboQuant building blocks: Lloyd-Max codebooks and the randomized Walsh-Hadamard rotation.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "core/error.h"
#include "kv/codebook.h"
#include "kv/hadamard.h"

using namespace tqlm;

TEST(TurboHadamard, MatchesExplicitMatrixAndInverts) {
  std::mt19937 rng(5);
  std::normal_distribution<float> nd;
  for (int n : {2, 8, 64, 128, 256}) {
    auto signs = hadamard_signs(n, 42 + n);
    std::vector<float> x(static_cast<size_t>(n)), y, ref(static_cast<size_t>(n), 0.0f);
    for (auto& v : x) v = nd(rng);
    y = x;
    hadamard_rotate_f32(y.data(), n, signs.data());
    // reference: y_i = sum_j (-1)^popcount(i & j) s_j x_j / sqrt(n)
    for (int i = 0; i < n; ++i) {
      double s = 0;
      for (int j = 0; j < n; ++j)
        s += ((__builtin_popcount(i & j) & 1) ? -1.0 : 1.0) * signs[size_t(j)] * x[size_t(j)];
      ref[size_t(i)] = float(s / std::sqrt(double(n)));
    }
    double n0 = 0, n1 = 0;
    for (int i = 0; i < n; ++i) {
      EXPECT_NEAR(y[size_t(i)], ref[size_t(i)], 1e-5) << n;
      n0 += x[size_t(i)] * x[size_t(i)];
      n1 += y[size_t(i)] * y[size_t(i)];
    }
    EXPECT_NEAR(n1, n0, 1e-4 * n0);
    hadamard_unrotate_f32(y.data(), n, signs.data());
    for (int i = 0; i < n; ++i) EXPECT_NEAR(y[size_t(i)], x[size_t(i)], 1e-5);
  }
  EXPECT_THROW(hadamard_signs(96, 1), Error);
  EXPECT_EQ(hadamard_signs(64, 7), hadamard_signs(64, 7));
  EXPECT_NE(hadamard_signs(64, 7), hadamard_signs(64, 8));
}

TEST(TurboCodebook, ShapeAndPaperDistortion) {
  // TurboQuant paper, per unit vector: b=1 0.36, b=2 0.117, b=3 0.03(45), b=4 0.009(5) (Gaussian limit)
  const double paper[] = {0, 0.3634, 0.1175, 0.03455, 0.00950};
  for (int d : {64, 128, 256})
    for (int b = 1; b <= 4; ++b) {
      const Codebook& cb = lloyd_max_codebook(d, b);
      ASSERT_EQ(cb.centroids.size(), size_t(1) << b);
      for (size_t k = 1; k < cb.centroids.size(); ++k) EXPECT_LT(cb.centroids[k - 1], cb.centroids[k]);
      for (size_t k = 0; k < cb.centroids.size(); ++k)
        EXPECT_NEAR(cb.centroids[k], -cb.centroids[cb.centroids.size() - 1 - k], 1e-7);
      EXPECT_NEAR(cb.mse * d, paper[b], 0.04 * paper[b]) << "d=" << d << " b=" << b;
    }
  // large-d closed form for b=2: {±0.453, ±1.51} / sqrt(d)
  const Codebook& c2 = lloyd_max_codebook(256, 2);
  EXPECT_NEAR(c2.centroids[3] * 16.0, 1.51, 0.02);
  EXPECT_NEAR(c2.centroids[2] * 16.0, 0.453, 0.01);
  const Codebook& c8 = lloyd_max_codebook(128, 8);
  EXPECT_EQ(c8.centroids.size(), 256u);
  EXPECT_LT(c8.mse * 128, 1e-4);
  EXPECT_EQ(c8.quantize(-1.0f), 0);
  EXPECT_EQ(c8.quantize(1.0f), 255);
  EXPECT_THROW(lloyd_max_codebook(128, 9), Error);
}

TEST(TurboCodebook, QuantizeIsUpperBoundOverTheBoundaries) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-1.2f, 1.2f);
  for (int bits = 1; bits <= 8; ++bits) {
    const Codebook& cb = lloyd_max_codebook(64, bits);
    std::vector<float> xs = {0.0f, -0.0f, 1.0f, -1.0f, INFINITY, -INFINITY, NAN};
    for (float b : cb.boundaries) xs.insert(xs.end(), {b, std::nextafter(b, -2.0f), std::nextafter(b, 2.0f)});
    for (int i = 0; i < 2000; ++i) xs.push_back(u(rng));
    for (float x : xs) {
      const int want =
          int(std::upper_bound(cb.boundaries.begin(), cb.boundaries.end(), x) - cb.boundaries.begin());
      ASSERT_EQ(cb.quantize(x), want) << "bits " << bits << " x " << x;
    }
  }
}
