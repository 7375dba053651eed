// The sampler against two references: a plain one that sorts the whole vocabulary (the fast sampler sorts
// only as far as its walk needs, so both must draw the same tokens from the same seed), and the exact
// probabilities of temperature / top-k / top-p / min-p computed here in double (draw frequencies), on every
// kernel family (the exponentials are the attention's).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "kernels/kv_kernels.h"
#include "runtime/sampler.h"

namespace tqlm {
namespace {

// The sampler's definition with a full sort (the same exp kernel, the same sums, the same random draw).
int32_t sample_full_sort(const std::vector<float>& logits, const SamplingParams& p, std::mt19937_64& rng) {
  const int64_t V = int64_t(logits.size());
  std::vector<float> z(logits.size());
  float m = -INFINITY;
  for (int64_t i = 0; i < V; ++i) {
    const float v = logits[size_t(i)] / p.temperature;
    z[size_t(i)] = std::isnan(v) ? -INFINITY : v;
    m = std::max(m, z[size_t(i)]);
  }
  if (m == -INFINITY) return 0;
  std::vector<float> e = z;
  kv_kernels().exp_sum(e.data(), V, m);
  std::vector<std::pair<float, int32_t>> c;
  for (int64_t i = 0; i < V; ++i) c.emplace_back(z[size_t(i)], int32_t(i));
  std::sort(c.begin(), c.end(), [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  });
  std::vector<double> q;  // e in order
  for (const auto& [zz, id] : c) q.push_back(e[size_t(id)]);
  const size_t k = p.top_k > 0 ? std::min(size_t(p.top_k), size_t(V)) : size_t(V);
  double mass = 0.0;
  if (k < size_t(V)) {
    for (size_t i = 0; i < k; ++i) mass += q[i];
  } else {
    double part[8] = {};
    for (int64_t i = 0; i < V; ++i) part[i % 8] += e[size_t(i)];
    for (double x : part) mass += x;
  }
  size_t n = k;
  if (p.top_p < 1.0f) {  // smallest prefix reaching top_p of the mass
    double acc = 0.0;
    for (size_t i = 0; i < k; ++i)
      if ((acc += q[i]) >= double(p.top_p) * mass) {
        n = i + 1;
        break;
      }
  }
  if (p.min_p > 0.0f) {
    size_t keep = 1;
    while (keep < n && q[keep] >= double(p.min_p) * q[0]) ++keep;
    n = keep;
  }
  double total = mass;
  if (p.top_p < 1.0f || p.min_p > 0.0f) {
    total = 0.0;
    for (size_t i = 0; i < n; ++i) total += q[i];
  }
  std::uniform_real_distribution<double> U(0.0, total);
  const double r = U(rng);
  double t = 0.0;
  for (size_t i = 0; i < n; ++i)
    if (r < (t += q[i])) return c[i].second;
  return c[n - 1].second;
}

std::vector<float> make_logits(int64_t V, int kind, std::mt19937_64& g) {
  std::normal_distribution<float> N(0.0f, 1.0f);
  std::vector<float> l(static_cast<size_t>(V));
  for (auto& x : l) x = kind == 0 ? 3.0f * N(g) : kind == 1 ? 0.05f * N(g) : float(int(4.0f * N(g)));  // ties
  if (kind == 3) {  // a model-like tail: one clear favourite, a few plausible, masked tokens, a NaN
    for (auto& x : l) x = 2.0f * N(g) - 10.0f;
    l[size_t(V / 3)] = 8.0f;
    for (int64_t i = 0; i < std::min<int64_t>(V, 20); ++i) l[size_t(i * 7 % V)] += 6.0f;
    if (V > 4) l[2] = -INFINITY, l[3] = std::nanf("");
  }
  return l;
}

TEST(Sampler, DrawsWhatAFullSortDraws) {
  std::mt19937_64 g(42);
  int checked = 0;
  for (int64_t V : {1, 2, 7, 300, 49152})
    for (int kind = 0; kind < 4; ++kind) {
      const auto logits = make_logits(V, kind, g);
      for (float T : {0.3f, 1.0f, 2.5f})
        for (int top_k : {0, 1, 5, 60})
          for (float top_p : {1.0f, 0.95f, 0.3f})
            for (float min_p : {0.0f, 0.05f}) {
              if (V > 300 && (T != 1.0f || top_k == 5)) continue;  // keep the big vocabulary quick
              SamplingParams p;
              p.temperature = T, p.top_k = top_k, p.top_p = top_p, p.min_p = min_p;
              p.seed = uint64_t(checked);
              Sampler s(p);
              std::mt19937_64 ref_rng(p.seed);
              for (int d = 0; d < (V > 300 ? 3 : 8); ++d) {  // successive draws: the generators stay in step
                std::vector<float> l = logits;
                const int32_t a = s.sample(l.data(), V, {});
                ASSERT_EQ(a, sample_full_sort(logits, p, ref_rng))
                    << "V " << V << " kind " << kind << " T " << T << " top_k " << top_k << " top_p " << top_p
                    << " min_p " << min_p << " draw " << d;
              }
              ++checked;
            }
    }
  EXPECT_GT(checked, 500);
}

// Frequencies of 200,000 draws against the exact probabilities, within 5 standard deviations.
void expect_frequencies(const std::vector<float>& logits, const SamplingParams& p,
                        const std::vector<double>& want) {
  Sampler s(p);
  std::vector<int> count(logits.size());
  const int N = 200000;
  for (int i = 0; i < N; ++i) {
    std::vector<float> l = logits;
    ++count[size_t(s.sample(l.data(), int64_t(l.size()), {}))];
  }
  for (size_t t = 0; t < logits.size(); ++t) {
    const double sd = std::sqrt(want[t] * (1 - want[t]) / N);
    EXPECT_NEAR(double(count[t]) / N, want[t], 5 * sd + 1e-9) << "token " << t;
  }
}

TEST(Sampler, FrequenciesMatchTheDistribution) {
  const std::vector<float> l = {2.0f, 1.0f, 0.5f, -1.0f, 0.0f};
  auto softmax = [&](float T, std::vector<int> keep) {  // renormalised over `keep`
    std::vector<double> e(l.size(), 0.0);
    double s = 0;
    for (int t : keep) s += (e[size_t(t)] = std::exp(double(l[size_t(t)]) / T));
    for (auto& x : e) x /= s;
    return e;
  };
  SamplingParams p;
  p.temperature = 0.7f;
  expect_frequencies(l, p, softmax(0.7f, {0, 1, 2, 3, 4}));
  // T = 1 probabilities: 0.5465, 0.2010, 0.1219, 0.0272, 0.0740 (order 0, 1, 2, 4, 3)
  p.temperature = 1.0f;
  p.top_k = 3;
  expect_frequencies(l, p, softmax(1.0f, {0, 1, 2}));
  p.top_k = 0;
  p.top_p = 0.7f;  // 0.5465 < 0.7 <= 0.7475: the first two
  expect_frequencies(l, p, softmax(1.0f, {0, 1}));
  p.top_p = 1.0f;
  p.min_p = 0.1f;  // >= 0.05465: drops token 3 (0.0272) only
  expect_frequencies(l, p, softmax(1.0f, {0, 1, 2, 4}));
  p.min_p = 1.0f;  // only the tokens tied with the top one
  expect_frequencies({1.0f, 0.0f, 1.0f, 0.5f}, p, {0.5, 0.0, 0.5, 0.0});
}

TEST(Sampler, DegenerateLogits) {
  SamplingParams p;
  p.temperature = 1.0f;
  Sampler s(p);
  std::vector<float> all_masked = {-INFINITY, -INFINITY, std::nanf("")};
  EXPECT_EQ(s.sample(all_masked.data(), 3, {}), 0);
  std::vector<float> one = {-INFINITY, 1.0f, std::nanf(""), -INFINITY};
  for (int i = 0; i < 100; ++i) {
    std::vector<float> l = one;
    EXPECT_EQ(s.sample(l.data(), 4, {}), 1);
  }
}

}  // namespace
}  // namespace tqlm
