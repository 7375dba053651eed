// The scheduler on a thread of its own, for many clients on other threads (the HTTP server).
//
//   auto s = engine.submit(prompt, params, top_logprobs);   // any thread; throws RequestError (4xx/503)
//   while (engine.next(*s, ev)) ...                          // the client's thread: events as they come
//   s->cancel = true;                                        // a client that went away: freed next step
//
// Only the engine thread touches the scheduler, the model and the KV pool. It sleeps while there is nothing
// to do; a submission wakes it. A submission returns once the scheduler accepted or refused it (refusals
// carry the scheduler's message: prompt over the context, more KV than the whole pool), so errors reach the
// client as an HTTP status before any streaming starts.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "runtime/scheduler.h"

namespace tqlm {

struct RequestError : std::runtime_error {
  int status;  // HTTP status: 400 invalid request, 503 overloaded
  RequestError(int st, const std::string& m) : std::runtime_error(m), status(st) {}
};

struct TokenLogprob {
  int32_t token = -1;
  float logprob = 0;
  std::vector<std::pair<int32_t, float>> top;  // the most likely tokens and their log-probabilities
};

struct StreamEvent {
  std::string text;  // new final text (may be empty)
  std::vector<TokenLogprob> logprobs;
  bool finished = false;
  std::string finish_reason;  // "stop", "length", "cancelled", "error"
  std::string error;
};

// One request's events, written by the engine thread and read by the client's thread.
struct EngineStream {
  std::atomic<bool> cancel{false};
  int64_t prompt_tokens = 0, cached_tokens = 0, completion_tokens = 0;  // valid once finished
  double ttft = 0;                                                      // seconds, once the first token came
  // internal
  std::mutex mu;
  std::condition_variable cv;
  std::deque<StreamEvent> q;
  bool done = false;
  int top_logprobs = -1;                 // -1: no logprobs
  std::vector<TokenLogprob> pending_lp;  // logprobs computed this step, attached to the next event
};

struct EngineStats {
  int64_t requests = 0, prompt_tokens = 0, cached_tokens = 0, completion_tokens = 0;
  int64_t running = 0, waiting = 0, errors = 0, cancelled = 0;
  KVPoolStats pool;
  std::vector<double> ttft, itl;  // seconds, the last few thousand of each
};

class Engine {
 public:
  Engine(Model& model, const Tokenizer& tok, const KVSpec& kv, uint64_t kv_mem, const SchedulerOptions& so,
         int64_t max_queue);
  ~Engine();

  std::shared_ptr<EngineStream> submit(std::vector<int32_t> prompt, RequestParams params, int top_logprobs);
  // Waits for the next event of the stream; false once the stream finished and every event was read.
  bool next(EngineStream& s, StreamEvent& ev);
  EngineStats stats() const;
  int64_t context() const { return ctx_; }
  const KVLayout& kv_layout() const { return pool_->layout(); }

 private:
  struct Pending {
    std::vector<int32_t> prompt;
    RequestParams params;
    std::shared_ptr<EngineStream> stream;
    std::promise<void> accepted;
  };
  void loop();
  void deliver(EngineStream& s, StreamEvent ev);

  Model& model_;
  std::shared_ptr<KVPool> pool_;
  Scheduler sched_;
  int64_t max_queue_, ctx_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> inbox_;
  std::map<int64_t, std::shared_ptr<EngineStream>> active_;
  bool stop_ = false;
  EngineStats stats_;
  std::thread thread_;
};

}  // namespace tqlm
