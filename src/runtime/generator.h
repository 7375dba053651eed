// One sequence at a time through the scheduler (runtime/scheduler.h): `tqlm generate`, `tqlm chat` and the
// evaluation runners that want a blocking call. Streams text (never a split UTF-8 character, never the start
// of a stop string), stops at EOS / stop strings / max tokens / the context, and times prompt and generation.
// Multi-turn chats reuse the KV blocks of the previous turns through the pool's prefix cache.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "model/model.h"
#include "runtime/sampler.h"
#include "runtime/scheduler.h"
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
  uint64_t kv_bytes = 0;      // the sequence's KV blocks at the end
  int64_t kv_tokens = 0;      // tokens its cache held then
  std::string finish_reason;  // "stop" (EOS or stop string) or "length"
  double prompt_tps() const { return prompt_seconds > 0 ? double(prompt_tokens) / prompt_seconds : 0; }
  double gen_tps() const { return gen_seconds > 0 ? double(generated) / gen_seconds : 0; }
};

class Generator {
 public:
  // kv_mem: the pool's byte budget (0: no limit beyond the context).
  Generator(Model& model, const Tokenizer& tok, const KVSpec& kv = {}, uint64_t kv_mem = 0);

  // Streams generated text through on_text (return false to stop early). The sampler's parameters (and
  // seed) apply; prompt tokens already in the prefix cache are not recomputed.
  GenerateStats generate(const std::vector<int32_t>& prompt, Sampler& sampler, const GenerateOptions& opt,
                         const std::function<bool(const std::string&)>& on_text);

  KVPool& pool() { return *pool_; }
  const KVLayout& kv_layout() const { return pool_->layout(); }

 private:
  Model& model_;
  const Tokenizer& tok_;
  std::shared_ptr<KVPool> pool_;
  int64_t turn_ = 0;
};

}  // namespace tqlm
