#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>
#include <unordered_set>

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

int32_t Sampler::sample(float* logits, int64_t vocab, const std::vector<int32_t>& history, size_t generated_from) {
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

  // Candidates sorted by logit, cut by top-k.
  cand_.clear();
  for (int64_t i = 0; i < vocab; ++i) cand_.emplace_back(logits[i] / p_.temperature, int32_t(i));
  size_t n = cand_.size();
  auto by_logit = [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  if (p_.top_k > 0 && size_t(p_.top_k) < n) {
    std::partial_sort(cand_.begin(), cand_.begin() + p_.top_k, cand_.end(), by_logit);
    n = size_t(p_.top_k);
  } else {
    std::sort(cand_.begin(), cand_.end(), by_logit);
  }
  // Softmax over the survivors.
  const float mx = cand_[0].first;
  double sum = 0.0;
  for (size_t i = 0; i < n; ++i) sum += (cand_[i].first = std::exp(cand_[i].first - mx));
  for (size_t i = 0; i < n; ++i) cand_[i].first = float(cand_[i].first / sum);
  // top-p: the smallest prefix whose mass reaches p.
  if (p_.top_p < 1.0f) {
    double c = 0.0;
    size_t keep = n;
    for (size_t i = 0; i < n; ++i) {
      c += cand_[i].first;
      if (c >= p_.top_p) {
        keep = i + 1;
        break;
      }
    }
    n = keep;
  }
  // min-p: drop tokens below min_p x the top probability.
  if (p_.min_p > 0.0f) {
    const float floor = p_.min_p * cand_[0].first;
    size_t keep = 1;
    while (keep < n && cand_[keep].first >= floor) ++keep;
    n = keep;
  }
  double total = 0.0;
  for (size_t i = 0; i < n; ++i) total += cand_[i].first;
  std::uniform_real_distribution<double> U(0.0, total);
  double r = U(rng_), c = 0.0;
  for (size_t i = 0; i < n; ++i) {
    c += cand_[i].first;
    if (r < c) return cand_[i].second;
  }
  return cand_[n - 1].second;
}

}  // namespace tqlm
