#include "server/engine.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace tqlm {

namespace {
constexpr size_t kKeepSamples = 4096;  // latency samples kept for /metrics

void keep_recent(std::vector<double>& v, double x) {
  if (v.size() >= kKeepSamples) v.erase(v.begin(), v.begin() + kKeepSamples / 2);
  v.push_back(x);
}

// log-softmax of the raw logits: the chosen token's log-probability and the k most likely tokens.
TokenLogprob logprobs(const float* lg, int64_t vocab, int32_t token, int k) {
  const float mx = *std::max_element(lg, lg + vocab);
  double se = 0;
  for (int64_t i = 0; i < vocab; ++i) se += std::exp(double(lg[i] - mx));
  const double lse = double(mx) + std::log(se);
  TokenLogprob r;
  r.token = token;
  r.logprob = float(double(lg[token]) - lse);
  const int kk = std::max(0, std::min<int>(k, int(vocab)));
  if (kk == 0) return r;
  std::vector<int32_t> idx(static_cast<size_t>(vocab));
  for (int64_t i = 0; i < vocab; ++i) idx[size_t(i)] = int32_t(i);
  std::partial_sort(idx.begin(), idx.begin() + kk, idx.end(),
                    [&](int32_t a, int32_t b) { return lg[a] > lg[b] || (lg[a] == lg[b] && a < b); });
  for (int i = 0; i < kk; ++i) r.top.emplace_back(idx[size_t(i)], float(double(lg[idx[size_t(i)]]) - lse));
  return r;
}
}  // namespace

Engine::Engine(Model& model, const Tokenizer& tok, const KVSpec& kv, uint64_t kv_mem,
               const SchedulerOptions& so, int64_t max_queue)
    : model_(model),
      pool_(model.new_pool(kv, kv_mem)),
      sched_(model, pool_, &tok, so),
      max_queue_(max_queue),
      ctx_(sched_.context()) {
  thread_ = std::thread([this] { loop(); });
}

Engine::~Engine() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

std::shared_ptr<EngineStream> Engine::submit(std::vector<int32_t> prompt, RequestParams params,
                                             int top_logprobs) {
  auto s = std::make_shared<EngineStream>();
  s->top_logprobs = top_logprobs;
  std::future<void> accepted;
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (int64_t(inbox_.size()) + stats_.waiting >= max_queue_)
      throw RequestError(503, fmt::format("the server is busy: {} requests are waiting (--max-queue {})",
                                          int64_t(inbox_.size()) + stats_.waiting, max_queue_));
    Pending p{std::move(prompt), std::move(params), s, {}};
    accepted = p.accepted.get_future();
    inbox_.push_back(std::move(p));
  }
  cv_.notify_all();
  try {
    accepted.get();
  } catch (const Error& e) {
    throw RequestError(400, e.what());
  }
  return s;
}

bool Engine::next(EngineStream& s, StreamEvent& ev) {
  std::unique_lock<std::mutex> lk(s.mu);
  s.cv.wait(lk, [&] { return !s.q.empty() || s.done; });
  if (s.q.empty()) return false;
  ev = std::move(s.q.front());
  s.q.pop_front();
  return true;
}

EngineStats Engine::stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  return stats_;
}

void Engine::deliver(EngineStream& s, StreamEvent ev) {
  {
    std::lock_guard<std::mutex> lk(s.mu);
    if (ev.finished) s.done = true;
    s.q.push_back(std::move(ev));
  }
  s.cv.notify_all();
}

void Engine::loop() {
  const int64_t vocab = model_.config().vocab;
  for (;;) {
    std::deque<Pending> inbox;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return stop_ || !inbox_.empty() || !sched_.idle(); });
      if (stop_) break;
      inbox.swap(inbox_);
    }
    for (Pending& p : inbox) {
      try {
        std::shared_ptr<EngineStream> s = p.stream;
        if (s->top_logprobs >= 0) {
          EngineStream* raw = s.get();
          p.params.on_sample_logits = [raw, vocab](const float* lg, int32_t tok) {
            raw->pending_lp.push_back(logprobs(lg, vocab, tok, raw->top_logprobs));
          };
        }
        const int64_t n = int64_t(p.prompt.size());
        // no max_tokens asked: at most what the pool could ever hold for it (not a refusal for a long
        // context)
        const int64_t cap = pool_->capacity_blocks();
        if (p.params.max_tokens >= INT32_MAX && cap < INT64_MAX / kPageTokens)
          p.params.max_tokens = std::max<int64_t>(1, cap * kPageTokens - n);
        const int64_t id = sched_.submit(std::move(p.prompt), std::move(p.params));
        s->prompt_tokens = n;
        active_[id] = s;
        std::lock_guard<std::mutex> lk(mu_);
        ++stats_.requests;
        stats_.prompt_tokens += n;
        p.accepted.set_value();
      } catch (...) {
        p.accepted.set_exception(std::current_exception());
      }
    }
    for (auto& [id, s] : active_)
      if (s->cancel.load()) sched_.cancel(id);
    std::vector<SeqEvent> events;
    try {
      events = sched_.step();
    } catch (const std::exception& e) {  // an engine failure ends every sequence with the message
      for (auto& [id, s] : active_) {
        StreamEvent ev;
        ev.finished = true;
        ev.finish_reason = "error";
        ev.error = e.what();
        deliver(*s, std::move(ev));
        sched_.cancel(id);
      }
      active_.clear();
      continue;
    }
    for (SeqEvent& e : events) {
      auto it = active_.find(e.id);
      if (it == active_.end()) continue;
      EngineStream& s = *it->second;
      StreamEvent ev;
      ev.text = std::move(e.text);
      if (e.token >= 0 && !s.pending_lp.empty()) {
        ev.logprobs.push_back(std::move(s.pending_lp.front()));
        s.pending_lp.erase(s.pending_lp.begin());
      }
      const SeqStats& st = sched_.stats(e.id);
      if (e.token >= 0 && st.generated == 1) s.ttft = st.t_first_token - st.t_submit;
      if (e.finished) {
        ev.finished = true;
        ev.finish_reason = e.finish_reason;
        ev.error = e.error;
        s.cached_tokens = st.cached_tokens;
        s.completion_tokens = st.generated;
        std::lock_guard<std::mutex> lk(mu_);
        stats_.cached_tokens += st.cached_tokens;
        stats_.completion_tokens += st.generated;
        stats_.errors += e.finish_reason == "error";
        stats_.cancelled += e.finish_reason == "cancelled";
        if (st.generated > 0) keep_recent(stats_.ttft, st.t_first_token - st.t_submit);
        for (size_t i = 1; i < st.token_times.size(); ++i)
          keep_recent(stats_.itl, st.token_times[i] - st.token_times[i - 1]);
      }
      deliver(s, std::move(ev));
      if (e.finished) {
        sched_.forget(e.id);
        active_.erase(it);
      }
    }
    std::lock_guard<std::mutex> lk(mu_);
    stats_.running = sched_.running();
    stats_.waiting = sched_.waiting();
    stats_.pool = pool_->stats();
  }
}

}  // namespace tqlm
