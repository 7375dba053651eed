// A loaded model: config, weights, thread pool, and the forward pass over a KV cache.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "io/checkpoint.h"
#include "kv/kv_cache.h"
#include "model/config.h"
#include "model/weights.h"

namespace tqlm {

class Model {
 public:
  // `path`: an MLX or HF checkpoint directory. threads = 0: one per physical core.
  explicit Model(const std::string& path, int threads = 0);
  ~Model();

  const ModelConfig& config() const { return cfg_; }
  const Checkpoint& checkpoint() const { return *ck_; }
  const ModelWeights& weights() const { return *w_; }
  ThreadPool& pool() { return *pool_; }

  std::unique_ptr<KVCache> new_cache(const KVSpec& kv = {}) const;

  // Runs tokens[0..T) at positions [cache.length(), +T), appends their keys/values to the cache, and
  // writes logits: [T, vocab] when all_logits, else [1, vocab] for the last token.
  void forward(const int32_t* tokens, int64_t T, KVCache& cache, float* logits, bool all_logits);

 private:
  struct Workspace;
  void attention(int64_t l, int64_t T, int64_t pos, KVCache& cache);
  void mlp(int64_t l, int64_t T);
  void moe(int64_t l, int64_t T);
  void ensure_workspace(int64_t T);

  std::unique_ptr<Checkpoint> ck_;
  ModelConfig cfg_;
  std::unique_ptr<ModelWeights> w_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<Workspace> ws_;
};

}  // namespace tqlm
