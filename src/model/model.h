// A loaded model: config, weights, thread pool, and the forward pass over a KV cache.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "io/checkpoint.h"
#include "kv/kv_cache.h"
#include "model/config.h"
#include "model/observer.h"
#include "model/weights.h"

namespace tqlm {

class PipelineHead;

// One sequence's part of a forward step: its new tokens continue its cache at cache->length().
struct BatchSeq {
  KVCache* cache = nullptr;
  const int32_t* tokens = nullptr;  // [n]
  int64_t n = 0;
  int64_t logits_from = 0;  // rows [logits_from, n) get logits: n - 1 = the last token only, n = none
};

class Model {
 public:
  // `path`: an MLX or HF checkpoint directory. threads = 0: one per physical core. `part`: the layers (and
  // whether the embedding and head) this process holds; shards with none of its tensors are not mapped.
  // Rank 0 of an MPI job (world().size() > 1) with the default part becomes the head of a pipeline: it
  // plans the split, the other ranks load the other layers, and forward() runs through all of them.
  explicit Model(const std::string& path, int threads = 0, const ModelPart& part = {});
  ~Model();

  const ModelConfig& config() const { return cfg_; }
  const ModelPart& part() const { return part_; }
  const Checkpoint& checkpoint() const { return *ck_; }
  const ModelWeights& weights() const { return *w_; }
  ThreadPool& pool() { return *pool_; }

  // A KV pool for this model's caches (budget 0: no limit): every sequence of a forward step must come from
  // one pool made here.
  std::shared_ptr<KVPool> new_pool(const KVSpec& kv = {}, uint64_t budget_bytes = 0) const;
  // A cache with a pool of its own (one sequence); many sequences share a KVPool instead (runtime/).
  std::unique_ptr<KVCache> new_cache(const KVSpec& kv = {}) const;

  // One step over many sequences: every linear layer runs once over all their token rows, attention runs per
  // sequence over its own cache at its own positions. Appends each sequence's keys/values to its cache and
  // writes logits [sum of (n - logits_from), vocab] in batch order. A sequence's logits do not depend on what
  // else is in the batch, nor on how its tokens were split into steps (bit for bit).
  void forward(const std::vector<BatchSeq>& batch, float* logits);

  // The same step in two halves, so that several steps can be in flight through a pipeline: launch() runs
  // it as far as this process goes (all of it in one process; rank 0's layers in a pipeline), advances the
  // caches and queues it; collect() waits for the oldest launched step and writes its logits. Steps are
  // collected in launch order. A sequence's next step may be launched before its previous one is collected
  // (its cache already holds the launched tokens): prefill chunks overlap across pipeline stages.
  void launch(const std::vector<BatchSeq>& batch);
  void collect(float* logits);
  int64_t in_flight() const;
  // Steps worth keeping in flight: the number of pipeline stages (1 in one process).
  int pipeline_depth() const;

  // One sequence: tokens[0..T) at positions [cache.length(), +T); logits [T, vocab] when all_logits, else
  // [1, vocab] for the last token.
  void forward(const int32_t* tokens, int64_t T, KVCache& cache, float* logits, bool all_logits);

  // The stages of forward(), for a pipeline that runs them in different processes (model/pipeline.h).
  // begin_step: checks the batch, sizes the workspace, records each row's position; returns T (rows).
  int64_t begin_step(const std::vector<BatchSeq>& batch);
  float* hidden();                                      // [T, D] the residual stream of the step
  void embed(const std::vector<BatchSeq>& batch);       // hidden = token embeddings (needs the head part)
  void run_layers(const std::vector<BatchSeq>& batch);  // this part's layers over hidden, in order
  // The rows of hidden that get logits, in batch order: [n, D] (workspace memory, valid until head()).
  const float* logit_rows(const std::vector<BatchSeq>& batch, int64_t* n);
  void head(const float* rows, int64_t n, float* logits);   // final norm + LM head: [n, D] -> [n, vocab]
  static void advance(const std::vector<BatchSeq>& batch);  // each cache's length += its n
  // Called after each layer of run_layers (a pipeline keeps its messages moving while it computes).
  void set_layer_hook(std::function<void()> f) { layer_hook_ = std::move(f); }
  // While set, run_layers adds the wall time of each decoder layer to (*seconds)[l] (sized n_layers by the
  // caller; not owned): how a step's time divides between the layers and the rest (embedding, LM head,
  // sampling), measured in the same run (tqlm bench).
  void set_layer_clock(std::vector<double>* seconds) { layer_clock_ = seconds; }

  // Reports every linear input of later forward steps to `obs` (nullptr: none); not owned.
  void set_observer(ActivationObserver* obs);  // one process only (a pipeline's other layers are elsewhere)

 private:
  struct Workspace;
  void attention(int64_t l, int64_t T, const std::vector<BatchSeq>& batch);
  void mlp(int64_t l, int64_t T);
  void route(int64_t l, int64_t T);  // router -> sel, selw (moe.cpp)
  void moe(int64_t l, int64_t T);
  void ensure_workspace(int64_t T);

  std::unique_ptr<Checkpoint> ck_;
  ModelConfig cfg_;
  ModelPart part_;
  std::unique_ptr<ModelWeights> w_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<Workspace> ws_;
  std::unique_ptr<PipelineHead> pipe_;       // rank 0 of a pipeline over several processes (model/pipeline.h)
  std::deque<std::vector<float>> launched_;  // one process: each launched step's logit rows [n, D]
  ActivationObserver* observer_ = nullptr;
  std::function<void()> layer_hook_;
  std::vector<double>* layer_clock_ = nullptr;
};

}  // namespace tqlm
