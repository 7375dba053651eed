// The engine's core loop: many sequences advanced together, one forward step at a time.
//
//   submit(prompt, params) -> id        queued; refused at once (Error) if it could never fit the KV pool
//   step()                              admits queued sequences (reusing cached prefixes), builds one batch:
//                                       every decoding sequence's next token, then prefill chunks of the
//                                       others under a per-step token budget; runs it; samples; returns
//                                       events
//   cancel(id)                          at any step; its KV blocks go back to the pool
//
// Every sequence feeds the tokens its cache does not hold yet (prompt chunks, then one token per step), so
// prefill, decode and recomputation after preemption are the same operation. When the pool runs out of
// blocks, the newest running sequence is preempted (its blocks released, it waits again and recomputes its
// tokens later); the oldest always makes progress. A sequence's results do not depend on the others: the
// forward pass is batch-invariant bit for bit, and each sequence has its own sampler and seed.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "kv/kv_cache.h"
#include "model/model.h"
#include "runtime/sampler.h"
#include "runtime/text_stream.h"
#include "tokenizer/tokenizer.h"

namespace tqlm {

struct RequestParams {
  SamplingParams sampling;
  int64_t max_tokens = 256;       // generated tokens at most (0: prefill only, e.g. perplexity)
  std::vector<std::string> stop;  // stop strings (not included in the text)
  bool ignore_eos = false;
  bool reuse_prefix = true;  // take cached KV blocks of an identical prefix instead of recomputing it
  // Called with the logits of prompt rows [row0, row0 + n) as they are computed ([n, vocab]); when set, the
  // whole prompt is computed (no prefix reuse) so that every row has logits.
  std::function<void(int64_t row0, int64_t n, const float* logits)> on_prompt_logits;
  // Called with the logits [vocab] each generated token was sampled from (before any sampling transform) and
  // the token chosen.
  std::function<void(const float* logits, int32_t token)> on_sample_logits;
  // Called before each sampling with the sequence's tokens (prompt + generated); a token >= 0 is taken
  // instead of sampling (e.g. the end of a reasoning block once its budget is spent, runtime/reasoning.h).
  std::function<int32_t(const std::vector<int32_t>& tokens, int64_t prompt_len)> force_token;
};

struct SeqEvent {
  int64_t id = 0;
  int32_t token = -1;  // the token sampled this step (-1: none)
  std::string text;    // text that became final this step
  bool finished = false;
  std::string finish_reason;  // "stop" (EOS or stop string), "length", "cancelled", "error"
  std::string error;
};

struct SeqStats {
  int64_t prompt_tokens = 0;  // prompt length
  int64_t cached_tokens = 0;  // prompt tokens reused from the prefix cache (first admission)
  int64_t generated = 0;
  int64_t preemptions = 0;
  uint64_t kv_bytes = 0;                                 // bytes of the KV blocks it held when it finished
  int64_t kv_tokens = 0;                                 // tokens its cache held then
  double t_submit = 0, t_first_token = 0, t_finish = 0;  // seconds on the scheduler's clock
  std::vector<double> token_times;                       // when each generated token was sampled
};

// What the last collected step ran: rows of decoding sequences (one token each) and of prefill chunks, and
// its share of the wall clock (from its launch, or from the previous collect when that was later).
struct StepInfo {
  int64_t decode_rows = 0, prefill_rows = 0;
  double seconds = 0;
};

struct SchedulerOptions {
  int64_t max_seqs = 16;      // sequences running at once
  int64_t step_tokens = 512;  // tokens per forward step (decode tokens first, then prefill chunks)
  int64_t ctx = 0;            // context limit per sequence (0: the model's max_position_embeddings)
};

class Scheduler {
 public:
  Scheduler(Model& model, std::shared_ptr<KVPool> pool, const Tokenizer* tok,
            const SchedulerOptions& opt = {});
  ~Scheduler();

  // Queues a sequence. Throws (naming the numbers) if the prompt is empty, longer than the context, or if
  // prompt + max_tokens could never fit the KV pool.
  int64_t submit(std::vector<int32_t> prompt, RequestParams params);
  void cancel(int64_t id);
  // One forward step (admission, batch, sampling). Returns what happened to each sequence it touched.
  std::vector<SeqEvent> step();
  bool idle() const { return waiting_.empty() && running_.empty() && flight_.empty(); }
  int64_t running() const { return int64_t(running_.size()); }
  int64_t waiting() const { return int64_t(waiting_.size()); }
  const StepInfo& last_step() const { return last_; }

  // Statistics of a sequence (kept after it finishes, until forget()).
  const SeqStats& stats(int64_t id) const;
  void forget(int64_t id);
  // Tokens of a sequence (prompt + generated).
  const std::vector<int32_t>& tokens(int64_t id) const;

  KVPool& pool() { return *pool_; }
  Model& model() { return model_; }
  const SchedulerOptions& options() const { return opt_; }
  int64_t context() const { return ctx_; }  // the context limit per sequence in effect
  std::set<int32_t> eos_ids;                // a sampled EOS ends a sequence (unless ignore_eos)
  std::set<int32_t> keep_special;           // special tokens whose text is still emitted (<think>, </think>)
  double now() const;                       // seconds since the scheduler started

 private:
  struct Seq;
  // A step launched into the model (Model::launch) and not yet collected.
  struct Flight {
    struct Entry {
      Seq* seq;
      int64_t gen, len, n, logits_from;  // len: the sequence's cache length before the step
    };
    std::vector<Entry> seqs;
    int64_t rows = 0;  // logit rows
    StepInfo info;
    double t_launch = 0;
  };
  void launch(std::vector<SeqEvent>& ev);   // plans and launches one step (nothing when no sequence can go)
  void collect(std::vector<SeqEvent>& ev);  // the oldest launched step: logits, sampling, events
  bool admit(Seq& s);
  void preempt(Seq& s);
  void finish(Seq& s, const std::string& reason, std::vector<SeqEvent>& ev, const std::string& error = {});
  Seq& get(int64_t id) const;

  Model& model_;
  std::shared_ptr<KVPool> pool_;
  const Tokenizer* tok_;
  SchedulerOptions opt_;
  int64_t ctx_ = 0, next_id_ = 1;
  std::deque<Seq*> waiting_;   // admission order (preempted sequences go to the front)
  std::vector<Seq*> running_;  // oldest first
  std::vector<std::unique_ptr<Seq>> all_;
  std::vector<float> logits_;
  std::deque<Flight> flight_;  // launch order
  bool launched_now_ = false;
  double t_collected_ = 0;  // when the last step was collected
  double t0_ = 0;
  StepInfo last_;
};

// The default KV pool budget: half of the memory the system reports available (MemAvailable) now.
uint64_t default_kv_budget();

// EOS ids: generation_config.json eos_token_id (int or list), config.json eos_token_id, and the
// tokenizer's <|endoftext|>-style token named by tokenizer_config.json's eos_token.
std::set<int32_t> model_eos_ids(const Model& m, const Tokenizer& tok);

}  // namespace tqlm
