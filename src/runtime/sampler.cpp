#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>
#include <unordered_set>

#include "kernels/kv_kernels.h"

namespace tqlm {

void SamplingParams::apply_generation_config(const nlohmann::json& g) {
  if (!g.is_object()) return;
  auto num = [&](const char* k, float& dst) {
    if (auto it = g.find(k); it != g.end() && it->is_number()) dst = it->get<float>();
  };
  num("temperature", temperature);
  num("top_p", top_p);
  num("min_p", min_p);
  num("repetition_penalty", repetition_penalty);
  if (auto it = g.find("top_k"); it != g.end() && it->is_number_integer()) top_k = it->get<int>();
  if (auto it = g.find("do_sample"); it != g.end() && it->is_boolean() && !it->get<bool>())
    temperature = 0.0f;
}

int32_t Sampler::sample(float* logits, int64_t vocab, const std::vector<int32_t>& history,
                        size_t generated_from) {
  if ((p_.presence_penalty != 0.0f || p_.frequency_penalty != 0.0f) && generated_from < history.size()) {
    std::unordered_map<int32_t, int> count;
    for (size_t i = generated_from; i < history.size(); ++i) ++count[history[i]];
    for (const auto& [t, c] : count)
      if (t >= 0 && t < vocab) logits[t] -= p_.presence_penalty + p_.frequency_penalty * float(c);
  }
  if (p_.repetition_penalty != 1.0f && !history.empty()) {
    // CTRL-style: divide positive logits, multiply negative ones, once per distinct recent token.
    std::unordered_set<int32_t> seen;
    const size_t start =
        history.size() > size_t(p_.repetition_context) ? history.size() - p_.repetition_context : 0;
    for (size_t i = start; i < history.size(); ++i) {
      const int32_t t = history[i];
      if (t < 0 || t >= vocab || !seen.insert(t).second) continue;
      logits[t] = logits[t] > 0 ? logits[t] / p_.repetition_penalty : logits[t] * p_.repetition_penalty;
    }
  }
  if (p_.temperature <= 0.0f) return int32_t(std::max_element(logits, logits + vocab) - logits);
  return draw(logits, vocab);
}

// z = logits / temperature, e = exp(z - max z) for all tokens at once (the attention's vector exp). The
// tokens in order of (z desc, id asc) are needed only as far as top-k, top-p, min-p and the draw walk,
// usually a few dozen of a vocabulary of 50-200K: they are sorted a band at a time (z >= m - 8, then - 16, -
// 32, then the rest) instead of all at once, with the result of sorting everything (the tokens with z >= c,
// sorted, are the first ones of the full order). Masses are sums of e in double: D over the top-k tokens (in
// order) when top-k cuts, else over all (8 strided partial sums, in id order).
int32_t Sampler::draw(const float* logits, int64_t vocab) {
  z_.resize(size_t(vocab));
  e_.resize(size_t(vocab));
  float m = -INFINITY;
  for (int64_t i = 0; i < vocab; ++i) {
    const float z = logits[i] / p_.temperature;
    z_[size_t(i)] = e_[size_t(i)] = std::isnan(z) ? -INFINITY : z;  // NaN would break the order
    m = std::max(m, z_[size_t(i)]);
  }
  if (m == -INFINITY) return 0;               // nothing has any probability: the first token, as greedy would
  kv_kernels().exp_sum(e_.data(), vocab, m);  // e_ = exp(z - m) in place
  const size_t limit = p_.top_k > 0 ? std::min(size_t(p_.top_k), size_t(vocab)) : size_t(vocab);
  cand_.clear();
  float above = INFINITY;  // cand_ holds, in order, every token with z >= above
  int band = 0;
  auto by_logit = [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  // Sorts the next band onto cand_; false when every token is there.
  auto extend = [&]() {
    if (above == -INFINITY) return false;
    const float below = band < 3 ? m - float(8 << band) : -INFINITY;
    const size_t from = cand_.size();
    for (int64_t i = 0; i < vocab; ++i) {
      const float z = z_[size_t(i)];
      if (z < above && z >= below) cand_.emplace_back(z, int32_t(i));
    }
    std::sort(cand_.begin() + std::ptrdiff_t(from), cand_.end(), by_logit);
    above = below;
    ++band;
    return true;
  };
  // whether the k-th token of the order exists within top-k (then cand_[k] is it)
  auto have = [&](size_t k) {
    while (k >= cand_.size() && k < limit)
      if (!extend()) return false;
    return k < limit && k < cand_.size();
  };
  auto e = [&](size_t k) { return double(e_[size_t(cand_[k].second)]); };
  double mass = 0.0;  // D: what the probabilities are relative to
  if (limit < size_t(vocab)) {
    have(limit - 1);
    for (size_t k = 0; k < limit; ++k) mass += e(k);
  } else {
    double part[8] = {};
    int64_t i = 0;
    for (; i + 8 <= vocab; i += 8)
      for (int j = 0; j < 8; ++j) part[j] += e_[size_t(i + j)];
    for (; i < vocab; ++i) part[i % 8] += e_[size_t(i)];
    for (double x : part) mass += x;
  }
  // The kept prefix and its mass: top-p (the smallest prefix whose mass reaches p x D) and min-p (e >= min_p
  // x the top token's) when asked, else all of top-k or all tokens.
  size_t n = limit;
  double total = mass;
  if (p_.top_p < 1.0f || p_.min_p > 0.0f) {
    have(0);
    const double floor = double(p_.min_p) * e(0), reach = double(p_.top_p) * mass;
    total = 0.0;
    for (n = 0; have(n); ++n) {
      if (n > 0 && e(n) < floor) break;
      total += e(n);
      if (p_.top_p < 1.0f && total >= reach) {
        ++n;
        break;
      }
    }
  }
  // The draw: the first token in order whose running mass passes r.
  std::uniform_real_distribution<double> U(0.0, total);
  const double r = U(rng_);
  double t = 0.0;
  size_t k = 0;
  for (; k < n && have(k); ++k)
    if (r < (t += e(k))) return cand_[k].second;
  return cand_[k - 1].second;  // r at the very top of the mass (rounding)
}

}  // namespace tqlm
