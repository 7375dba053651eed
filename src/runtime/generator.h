// Generation loop: chunked prefill (reusing the cached prefix), sampling, streaming text that never
// splits a UTF-8 character or leaks the start of a stop string, EOS / stop-string / max-token stops,
// and timing for prompt and generation.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "model/model.h"
#include "runtime/sampler.h"
#include "tokenizer/tokenizer.h"

namespace tqlm {

struct GenerateOptions {
  int max_tokens = 256;
  std::vector<std::string> stop;  // stop strings (not included in the output)
  bool ignore_eos = false;
  int64_t prefill_chunk = 512;  // tokens per prefill forward
  int64_t ctx = 0;              // context limit (0: the model's max_position_embeddings)
};

struct GenerateStats {
  int64_t prompt_tokens = 0;  // tokens actually prefilled (after reusing the cached prefix)
  int64_t cached_tokens = 0;  // prompt tokens found in the cache
  int64_t generated = 0;
  double prompt_seconds = 0, gen_seconds = 0;
  std::string finish_reason;  // "stop" (EOS or stop string) or "length"
  double prompt_tps() const { return prompt_seconds > 0 ? double(prompt_tokens) / prompt_seconds : 0; }
  double gen_tps() const { return gen_seconds > 0 ? double(generated) / gen_seconds : 0; }
};

// EOS ids: generation_config.json eos_token_id (int or list), config.json eos_token_id, and the
// tokenizer's <|endoftext|>-style token named by tokenizer_config.json's eos_token.
std::set<int32_t> model_eos_ids(const Model& m, const Tokenizer& tok);

class Generator {
 public:
  Generator(Model& model, const Tokenizer& tok, const KVSpec& kv = {});

  // Streams generated text through on_text (return false to stop early). Tokens of `prompt` already
  // in the cache from the previous call are not recomputed.
  GenerateStats generate(const std::vector<int32_t>& prompt, Sampler& sampler, const GenerateOptions& opt,
                         const std::function<bool(const std::string&)>& on_text);

  const std::vector<int32_t>& history() const { return tokens_; }  // what the cache holds
  KVCache& cache() { return *cache_; }
  std::set<int32_t> eos_ids;
  std::set<int32_t> keep_special;  // special tokens whose text is still emitted (<think>, </think>)

 private:
  Model& model_;
  const Tokenizer& tok_;
  std::unique_ptr<KVCache> cache_;
  std::vector<int32_t> tokens_;
  std::vector<float> logits_;
};

}  // namespace tqlm
