#include "kv/codebook.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>

#include "core/error.h"

namespace tqlm {

int Codebook::quantize(float x) const {
  // The number of boundaries b with !(x < b) (std::upper_bound's answer, NaN -> the last level), found by
  // halving steps without branches: 2^bits - 1 boundaries, steps 2^(bits-1) ... 1.
  const float* b = boundaries.data();
  int idx = 0;
  for (int step = 1 << (bits - 1); step >= 1; step >>= 1) idx += !(x < b[idx + step - 1]) ? step : 0;
  return idx;
}

namespace {

// Tabulated density on [-1, 1] with prefix integrals of f and x*f (trapezoidal), for exact cell sums.
struct Table {
  static constexpr int N = 1 << 17;
  std::vector<double> x, F, G;  // F(x_i) = ∫_{-1}^{x_i} f, G(x_i) = ∫_{-1}^{x_i} t f(t) dt
  explicit Table(int d) : x(N + 1), F(N + 1), G(N + 1) {
    std::vector<double> f(N + 1);
    const double e = (d - 3) / 2.0;
    for (int i = 0; i <= N; ++i) {
      x[size_t(i)] = -1.0 + 2.0 * i / N;
      const double u = 1.0 - x[size_t(i)] * x[size_t(i)];
      f[size_t(i)] = u <= 0 ? (e == 0 ? 1.0 : 0.0) : std::exp(e * std::log(u));
    }
    const double h = 2.0 / N;
    for (int i = 1; i <= N; ++i) {
      F[size_t(i)] = F[size_t(i - 1)] + 0.5 * h * (f[size_t(i - 1)] + f[size_t(i)]);
      G[size_t(i)] =
          G[size_t(i - 1)] + 0.5 * h * (x[size_t(i - 1)] * f[size_t(i - 1)] + x[size_t(i)] * f[size_t(i)]);
    }
    const double Z = F[N];
    for (int i = 0; i <= N; ++i) F[size_t(i)] /= Z, G[size_t(i)] /= Z;
  }
  // Interpolated prefix integrals at any t in [-1, 1].
  void at(double t, double& Ft, double& Gt) const {
    const double p = std::clamp((t + 1.0) / 2.0 * N, 0.0, double(N));
    const int i = std::min(int(p), N - 1);
    const double w = p - i;
    Ft = F[size_t(i)] + w * (F[size_t(i + 1)] - F[size_t(i)]);
    Gt = G[size_t(i)] + w * (G[size_t(i + 1)] - G[size_t(i)]);
  }
};

Codebook solve(int d, int bits) {
  const Table tab(d);
  const int K = 1 << bits;
  std::vector<double> c(static_cast<size_t>(K)), b(static_cast<size_t>(K + 1));
  // start from equal-mass cells
  for (int k = 0; k < K; ++k) {
    const double target = (k + 0.5) / K;
    c[size_t(k)] = tab.x[size_t(std::lower_bound(tab.F.begin(), tab.F.end(), target) - tab.F.begin())];
  }
  b[0] = -1.0;
  b[size_t(K)] = 1.0;
  for (int it = 0; it < 200000; ++it) {
    for (int k = 1; k < K; ++k) b[size_t(k)] = 0.5 * (c[size_t(k - 1)] + c[size_t(k)]);
    double moved = 0;
    for (int k = 0; k < K; ++k) {
      double F0, G0, F1, G1;
      tab.at(b[size_t(k)], F0, G0);
      tab.at(b[size_t(k + 1)], F1, G1);
      const double mass = F1 - F0;
      const double nc = mass > 1e-300 ? (G1 - G0) / mass : 0.5 * (b[size_t(k)] + b[size_t(k + 1)]);
      moved = std::max(moved, std::abs(nc - c[size_t(k)]));
      c[size_t(k)] = nc;
    }
    // symmetrise (the density is even): removes drift from rounding
    for (int k = 0; k < K / 2; ++k) {
      const double m = 0.5 * (c[size_t(K - 1 - k)] - c[size_t(k)]);
      c[size_t(k)] = -m;
      c[size_t(K - 1 - k)] = m;
    }
    if (moved < 1e-13) break;
  }
  Codebook cb;
  cb.dim = d;
  cb.bits = bits;
  for (double v : c) cb.centroids.push_back(float(v));
  for (int k = 1; k < K; ++k) cb.boundaries.push_back(float(0.5 * (c[size_t(k - 1)] + c[size_t(k)])));
  // MSE = Σ_k ∫_cell (x - c_k)^2 f = E[x^2] - Σ_k mass_k c_k^2 (c_k is the cell mean)
  double ex2 = 1.0 / d, s = 0;  // E[x^2] of one coordinate of a unit vector in R^d
  for (int k = 0; k < K; ++k) {
    double F0, G0, F1, G1;
    tab.at(k ? 0.5 * (c[size_t(k - 1)] + c[size_t(k)]) : -1.0, F0, G0);
    tab.at(k + 1 < K ? 0.5 * (c[size_t(k)] + c[size_t(k + 1)]) : 1.0, F1, G1);
    s += (F1 - F0) * c[size_t(k)] * c[size_t(k)];
  }
  cb.mse = ex2 - s;
  if (bits <= 4) {
    cb.u7_step = float(c[size_t(K - 1)] / 63.0);  // the largest centroid (symmetric: max |c|)
    for (int k = 0; k < K; ++k) cb.u7.push_back(uint8_t(64 + std::lround(c[size_t(k)] / cb.u7_step)));
  }
  return cb;
}

}  // namespace

const Codebook& lloyd_max_codebook(int dim, int bits) {
  if (dim < 3) fail("codebook: dimension {} must be at least 3", dim);
  if (bits < 1 || bits > 8) fail("codebook: bits {} must be in 1..8", bits);
  static std::mutex mu;
  static std::map<std::pair<int, int>, std::unique_ptr<Codebook>> cache;
  std::lock_guard<std::mutex> lk(mu);
  auto& slot = cache[{dim, bits}];
  if (!slot) slot = std::make_unique<Codebook>(solve(dim, bits));
  return *slot;
}

}  // namespace tqlm
