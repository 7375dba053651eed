#include "runtime/scheduler.h"

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "core/error.h"
#include "core/memory.h"

namespace tqlm {

struct Scheduler::Seq {
  int64_t id = 0;
  std::vector<int32_t> tokens;  // prompt, then generated tokens; the cache holds tokens[0, cache->length())
  int64_t prompt_len = 0;
  RequestParams p;
  Sampler sampler;
  std::unique_ptr<KVCache> cache;  // null while waiting
  std::unique_ptr<TextStream> text;
  SeqStats st;
  int64_t logits_delivered = 0;  // prompt rows already given to on_prompt_logits
  bool cancelled = false, done = false, admitted = false;
  // Launched steps (model.h) not yet collected that include this sequence; busy: one of them ends its known
  // tokens, so it samples when collected and has nothing to launch until then. gen changes on preemption:
  // results of steps launched before it are dropped.
  int64_t flights = 0, gen = 0;
  bool busy = false, forgotten = false;
  Seq(int64_t i, std::vector<int32_t> t, RequestParams rp)
      : id(i),
        tokens(std::move(t)),
        prompt_len(int64_t(tokens.size())),
        p(std::move(rp)),
        sampler(p.sampling) {}
  int64_t pending() const { return int64_t(tokens.size()) - cache->length(); }
};

namespace {
using Clock = std::chrono::steady_clock;
double clock_seconds() {
  return std::chrono::duration<double>(Clock::now().time_since_epoch()).count();
}
int64_t blocks_for(int64_t tokens) {
  return (tokens + kPageTokens - 1) / kPageTokens;
}
}  // namespace

Scheduler::Scheduler(Model& model, std::shared_ptr<KVPool> pool, const Tokenizer* tok,
                     const SchedulerOptions& opt)
    : model_(model), pool_(std::move(pool)), tok_(tok), opt_(opt), t0_(clock_seconds()) {
  if (opt_.max_seqs < 1) fail("the number of concurrent sequences must be >= 1 (got {})", opt_.max_seqs);
  if (opt_.step_tokens < 1) fail("the tokens per step must be >= 1 (got {})", opt_.step_tokens);
  const int64_t mp = model.config().max_position;
  ctx_ = opt_.ctx > 0 ? opt_.ctx : (mp > 0 ? mp : int64_t(1) << 30);
  if (tok_) {
    eos_ids = model_eos_ids(model, *tok_);
    for (const char* t : {"<think>", "</think>"})
      if (auto id = tok_->token_to_id(t)) keep_special.insert(*id);
  }
}

Scheduler::~Scheduler() = default;

double Scheduler::now() const {
  return clock_seconds() - t0_;
}

Scheduler::Seq& Scheduler::get(int64_t id) const {
  for (const auto& s : all_)
    if (s && s->id == id) return *s;
  fail("no sequence {}", id);
}

const SeqStats& Scheduler::stats(int64_t id) const {
  return get(id).st;
}
const std::vector<int32_t>& Scheduler::tokens(int64_t id) const {
  return get(id).tokens;
}

void Scheduler::forget(int64_t id) {
  for (auto& s : all_)
    if (s && s->id == id && s->done) {
      if (s->flights > 0)
        s->forgotten = true;  // deleted when its last launched step is collected
      else
        s.reset();
    }
  all_.erase(std::remove(all_.begin(), all_.end(), nullptr), all_.end());
}

int64_t Scheduler::submit(std::vector<int32_t> prompt, RequestParams params) {
  const int64_t n = int64_t(prompt.size()), vocab = model_.config().vocab;
  if (n == 0) fail("the prompt is empty");
  if (n >= ctx_)
    fail("the prompt has {} tokens, which does not fit the context of {} tokens (--ctx)", n, ctx_);
  for (int32_t t : prompt)
    if (t < 0 || t >= vocab) fail("token id {} is outside the vocabulary [0, {})", t, vocab);
  if (params.max_tokens < 0) fail("max_tokens must be >= 0 (got {})", params.max_tokens);
  const int64_t most = n + std::min(ctx_ - n, params.max_tokens), need = blocks_for(most);  // no overflow
  if (need > pool_->capacity_blocks())
    fail(
        "the request needs up to {} tokens of KV cache ({} bytes), more than the whole KV pool holds ({} "
        "bytes, "
        "{} tokens): lower max_tokens or raise --kv-mem",
        most, uint64_t(need) * pool_->block_bytes(), pool_->budget(), pool_->capacity_blocks() * kPageTokens);
  auto s = std::make_unique<Seq>(next_id_++, std::move(prompt), std::move(params));
  if (tok_) s->text = std::make_unique<TextStream>(*tok_, s->p.stop, &keep_special);
  s->st.prompt_tokens = n;
  s->st.t_submit = now();
  waiting_.push_back(s.get());
  all_.push_back(std::move(s));
  return all_.back()->id;
}

void Scheduler::cancel(int64_t id) {
  Seq& s = get(id);
  if (!s.done) s.cancelled = true;
}

bool Scheduler::admit(Seq& s) {
  s.cache = std::make_unique<KVCache>(pool_);
  const int64_t n = int64_t(s.tokens.size());
  int64_t reused = 0;
  if (s.p.reuse_prefix && !s.p.on_prompt_logits) reused = s.cache->attach_prefix(s.tokens.data(), n, n - 1);
  if (!s.cache->reserve(n)) {  // the whole prompt must fit now; otherwise wait
    s.cache.reset();
    return false;
  }
  if (!s.admitted) s.st.cached_tokens = reused;
  s.admitted = true;
  return true;
}

void Scheduler::preempt(Seq& s) {
  s.cache.reset();
  ++s.gen;
  s.busy = false;  // full blocks stay in the prefix cache: recomputation may find them again
  ++s.st.preemptions;
  running_.erase(std::find(running_.begin(), running_.end(), &s));
  waiting_.push_front(&s);
}

void Scheduler::finish(Seq& s, const std::string& reason, std::vector<SeqEvent>& ev,
                       const std::string& error) {
  SeqEvent e;
  e.id = s.id;
  e.finished = true;
  e.finish_reason = reason;
  e.error = error;
  if (s.text) e.text = s.text->finish();
  if (s.cache) {
    s.st.kv_bytes = s.cache->bytes();
    s.st.kv_tokens = s.cache->length();
    s.cache->publish(s.tokens.data(), /*final=*/true);
    s.cache.reset();
  }
  s.done = true;
  s.st.t_finish = now();
  running_.erase(std::remove(running_.begin(), running_.end(), &s), running_.end());
  waiting_.erase(std::remove(waiting_.begin(), waiting_.end(), &s), waiting_.end());
  ev.push_back(std::move(e));
}

std::vector<SeqEvent> Scheduler::step() {
  std::vector<SeqEvent> ev;
  for (Seq* s : std::vector<Seq*>(running_))
    if (s->cancelled) finish(*s, "cancelled", ev);
  for (Seq* s : std::vector<Seq*>(waiting_.begin(), waiting_.end()))
    if (s->cancelled) finish(*s, "cancelled", ev);
  while (!waiting_.empty() && int64_t(running_.size()) < opt_.max_seqs && admit(*waiting_.front())) {
    running_.push_back(waiting_.front());
    waiting_.pop_front();
  }
  if (running_.empty() && !waiting_.empty()) {  // nothing runs and the first in line cannot get its blocks
    Seq& s = *waiting_.front();
    finish(s, "error", ev,
           fmt::format("the KV pool cannot hold this prompt ({} tokens) even with nothing else running",
                       s.tokens.size()));
    return ev;
  }

  launch(ev);
  // Collect the oldest step once the pipeline is full, or when nothing new could be launched.
  while (!flight_.empty() && (int64_t(flight_.size()) >= model_.pipeline_depth() || !launched_now_))
    collect(ev), launched_now_ = true;
  return ev;
}

void Scheduler::launch(std::vector<SeqEvent>& ev) {
  launched_now_ = false;
  // Plan: decoding sequences (one pending token) first, then prefill chunks, oldest first, under the budget.
  // A busy sequence waits for its launched step. In a pipeline (depth P), at most 1/P of the decoding
  // sequences go in one step, so that P groups of them are in flight at once.
  const int64_t depth = model_.pipeline_depth();
  int64_t decoding = 0;
  for (Seq* s : running_) decoding += s->busy || s->pending() == 1;
  int64_t decode_cap = (decoding + depth - 1) / depth;
  std::vector<int64_t> take(running_.size(), 0);
  int64_t budget = opt_.step_tokens;
  for (int pass = 0; pass < 2; ++pass)
    for (size_t i = 0; i < running_.size(); ++i) {
      const int64_t pend = running_[i]->pending();
      if (running_[i]->busy || pend == 0 || (pass == 0) != (pend == 1)) continue;
      if (pend == 1 && decode_cap-- <= 0) continue;
      take[i] = std::min(pend, budget);
      budget -= take[i];
    }
  // Blocks, oldest first: when the pool is short, the newest sequences are preempted (recomputed later),
  // down to this one itself when older ones hold the rest. Only the oldest, which cannot grow even alone
  // (the pool is full of its own tokens), ends with "length".
  for (size_t i = 0; i < running_.size();) {
    Seq* s = running_[i];
    while (!s->cache->reserve(s->cache->length() + take[i]) && running_.size() > i + 1) {
      preempt(*running_.back());
      take.pop_back();
    }
    if (s->cache->reserve(s->cache->length() + take[i])) {
      ++i;
      continue;
    }
    if (i > 0) {  // s is the newest now: it waits for the older ones
      preempt(*s);
      take.pop_back();
      continue;
    }
    take.erase(take.begin() + int64_t(i));
    finish(*s, "length", ev, "the KV pool is full");
  }
  Flight f;
  std::vector<BatchSeq> batch;
  for (size_t i = 0; i < running_.size(); ++i) {
    Seq* s = running_[i];
    if (take[i] == 0) continue;
    const int64_t len = s->cache->length(), n = take[i];
    const bool last = len + n == int64_t(s->tokens.size());
    const bool prompt_rows = s->p.on_prompt_logits && len < s->prompt_len;
    const int64_t from = prompt_rows ? 0 : last ? n - 1 : n;
    batch.push_back(BatchSeq{s->cache.get(), s->tokens.data() + len, n, from});
    (n == 1 && last ? f.info.decode_rows : f.info.prefill_rows) += n;
    f.seqs.push_back({s, s->gen, len, n, from});
    f.rows += n - from;
    ++s->flights;
    s->busy = last;
  }
  if (batch.empty()) return;
  f.t_launch = now();
  model_.launch(batch);
  flight_.push_back(std::move(f));
  launched_now_ = true;
}

void Scheduler::collect(std::vector<SeqEvent>& ev) {
  Flight f = std::move(flight_.front());
  flight_.pop_front();
  const int64_t vocab = model_.config().vocab;
  logits_.resize(size_t(std::max<int64_t>(f.rows, 1) * vocab));
  model_.collect(logits_.data());
  last_ = f.info;
  // The step's share of the wall clock: since it was launched or the previous step was collected, whichever
  // is later (in a pipeline steps overlap, and their latencies would count the same time several times).
  const double t = now();
  last_.seconds = t - std::max(f.t_launch, t_collected_);
  t_collected_ = t;

  const float* lg = logits_.data();
  for (const Flight::Entry& b : f.seqs) {
    Seq& s = *b.seq;
    const int64_t nrows = b.n - b.logits_from;
    const float* last = lg + (nrows - 1) * vocab;
    lg += nrows * vocab;
    --s.flights;
    if (s.done || s.gen != b.gen) {  // finished, cancelled or preempted since the launch
      if (s.forgotten && s.flights == 0) forget(s.id);
      continue;
    }
    const int64_t len = b.len;
    if (s.p.on_prompt_logits && b.logits_from == 0) {  // prompt rows [len, min(len + n, prompt_len))
      const int64_t r0 = std::max(len, s.logits_delivered), r1 = std::min(len + b.n, s.prompt_len);
      if (r1 > r0) s.p.on_prompt_logits(r0, r1 - r0, lg - nrows * vocab + (r0 - len) * vocab);
      s.logits_delivered = std::max(s.logits_delivered, r1);
    }
    s.cache->publish(s.tokens.data(), /*final=*/false);
    if (len + b.n < int64_t(s.tokens.size())) continue;  // prefill not finished
    s.busy = false;
    if (s.st.generated >= s.p.max_tokens || int64_t(s.tokens.size()) >= ctx_) {
      finish(s, "length", ev);
      continue;
    }
    int32_t tok = s.p.force_token ? s.p.force_token(s.tokens, s.prompt_len) : -1;
    if (tok < 0 || tok >= vocab) {
      std::vector<float> row(last, last + vocab);  // the sampler modifies its logits
      tok = s.sampler.sample(row.data(), vocab, s.tokens, size_t(s.prompt_len));
    }
    if (s.p.on_sample_logits) s.p.on_sample_logits(last, tok);
    s.tokens.push_back(tok);
    ++s.st.generated;
    const double t = now();
    if (s.st.generated == 1) s.st.t_first_token = t;
    s.st.token_times.push_back(t);
    SeqEvent e;
    e.id = s.id;
    e.token = tok;
    if (!s.p.ignore_eos && eos_ids.count(tok)) {
      ev.push_back(std::move(e));
      finish(s, "stop", ev);
      continue;
    }
    if (s.text) e.text = s.text->push(tok);
    const bool stopped = s.text && s.text->stopped();
    ev.push_back(std::move(e));
    if (stopped)
      finish(s, "stop", ev);
    else if (s.st.generated >= s.p.max_tokens || int64_t(s.tokens.size()) >= ctx_)
      finish(s, "length", ev);
  }
}

uint64_t default_kv_budget() {
  const uint64_t avail = available_memory_bytes();
  return avail ? avail / 2 : uint64_t(4) << 30;  // unknown: 4 GiB
}

namespace {
void add_ids(const nlohmann::json& v, std::set<int32_t>& out) {
  if (v.is_number_integer())
    out.insert(v.get<int32_t>());
  else if (v.is_array())
    for (const auto& x : v)
      if (x.is_number_integer()) out.insert(x.get<int32_t>());
}
}  // namespace

std::set<int32_t> model_eos_ids(const Model& m, const Tokenizer& tok) {
  std::set<int32_t> ids;
  if (const auto& g = m.checkpoint().generation_config(); g && g->is_object())
    if (auto it = g->find("eos_token_id"); it != g->end()) add_ids(*it, ids);
  if (auto it = m.checkpoint().config().find("eos_token_id"); it != m.checkpoint().config().end())
    add_ids(*it, ids);
  const auto tc_path = std::filesystem::path(m.checkpoint().path()) / "tokenizer_config.json";
  std::error_code ec;
  if (std::filesystem::exists(tc_path, ec)) {
    nlohmann::json tc = read_json_file(tc_path.string());
    auto eos = tc.find("eos_token");
    std::string name;
    if (eos != tc.end() && eos->is_string())
      name = eos->get<std::string>();
    else if (eos != tc.end() && eos->is_object() && eos->contains("content"))
      name = (*eos)["content"].get<std::string>();
    if (!name.empty())
      if (auto id = tok.token_to_id(name)) ids.insert(*id);
  }
  return ids;
}

}  // namespace tqlm
