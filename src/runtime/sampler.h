// Token sampling: repetition penalty -> temperature -> top-k -> top-p -> min-p -> draw (seeded).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <vector>

namespace tqlm {

struct SamplingParams {
  float temperature = 1.0f;         // 0: greedy
  float top_p = 1.0f;               // 1: off
  int top_k = 0;                    // 0: off
  float min_p = 0.0f;               // 0: off
  float repetition_penalty = 1.0f;  // 1: off
  int repetition_context = 64;      // how many recent tokens the penalty looks at
  float presence_penalty = 0.0f;    // OpenAI: minus this once for every token already generated
  float frequency_penalty = 0.0f;   // OpenAI: minus this times how often the token was generated
  uint64_t seed = 0;

  // Defaults from a generation_config.json (temperature, top_p, top_k, min_p, repetition_penalty;
  // do_sample false means greedy).
  void apply_generation_config(const nlohmann::json& gen);
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& p) : p_(p), rng_(p.seed) {}
  // logits [vocab] (modified in place); `history` = tokens so far (prompt + generated), of which
  // history[generated_from..] were generated (what presence / frequency penalties count).
  int32_t sample(float* logits, int64_t vocab, const std::vector<int32_t>& history,
                 size_t generated_from = 0);
  const SamplingParams& params() const { return p_; }

 private:
  int32_t draw(const float* logits, int64_t vocab);  // temperature > 0: top-k, top-p, min-p, then a draw

  SamplingParams p_;
  std::mt19937_64 rng_;
  std::vector<float> z_;                         // [vocab] logits / temperature
  std::vector<float> e_;                         // [vocab] exp(z - max z)
  std::vector<std::pair<float, int32_t>> cand_;  // (z, token) in order of z desc, token asc, as far as needed
};

}  // namespace tqlm
