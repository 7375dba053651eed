#include "eval/bench_concurrency.h"

#include <algorithm>

#include "core/error.h"
#include "eval/bench.h"
#include "runtime/scheduler.h"

namespace tqlm {

namespace {

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[size_t(std::min<double>(double(v.size() - 1), q * double(v.size() - 1) + 0.5))];
}

// n tokens of request r: the source text shifted per request (distinct prompts, no shared prefix), or ids.
std::vector<int32_t> prompt_tokens(const ConcurrencyOptions& opt, int64_t vocab, int64_t r, int64_t n) {
  return bench_prompt(opt.tokens, vocab, n, uint64_t(r * 7919 + n), r * 977);
}

RequestParams greedy(int64_t max_tokens) {
  RequestParams rp;
  rp.sampling.temperature = 0;
  rp.max_tokens = max_tokens;
  rp.ignore_eos = true;
  return rp;
}

}  // namespace

std::vector<ConcurrencyPoint> run_concurrency_bench(
    Model& model, const ConcurrencyOptions& opt, const std::function<void(const std::string&)>& on_progress) {
  const int64_t vocab = model.config().vocab;
  const uint64_t budget = opt.kv_mem ? opt.kv_mem : default_kv_budget();
  std::vector<ConcurrencyPoint> out;
  for (int64_t c : opt.levels) {
    if (c < 1) fail("bench: concurrency {} must be at least 1", c);
    auto pool = model.new_pool(opt.kv, budget);
    SchedulerOptions so;
    so.max_seqs = c;
    so.step_tokens = opt.step_tokens;
    Scheduler sched(model, pool, nullptr, so);
    std::vector<int64_t> ids;
    for (int64_t r = 0; r < c; ++r)
      ids.push_back(sched.submit(prompt_tokens(opt, vocab, r, opt.prompt), greedy(opt.generate)));
    ConcurrencyPoint p;
    p.concurrency = c;
    double decode_s = 0;
    int64_t decode_rows = 0, done = 0;
    const double t0 = sched.now();
    while (!sched.idle()) {
      for (const auto& e : sched.step()) done += e.finished;
      const StepInfo& s = sched.last_step();
      if (s.prefill_rows == 0 && s.decode_rows > 0) decode_s += s.seconds, decode_rows += s.decode_rows;
      p.kv_pool_bytes = std::max<uint64_t>(p.kv_pool_bytes, pool->stats().bytes());
      on_progress("concurrency " + std::to_string(c) + ": " + std::to_string(done) + "/" + std::to_string(c) +
                  " done");
    }
    p.seconds = sched.now() - t0;
    std::vector<double> itl, ttft;
    int64_t generated = 0;
    for (int64_t id : ids) {
      const SeqStats& st = sched.stats(id);
      generated += st.generated;
      p.preemptions += st.preemptions;
      ttft.push_back(1e3 * (st.t_first_token - st.t_submit));
      for (size_t i = 1; i < st.token_times.size(); ++i)
        itl.push_back(1e3 * (st.token_times[i] - st.token_times[i - 1]));
    }
    p.aggregate_decode_tps = decode_s > 0 ? double(decode_rows) / decode_s : 0;
    p.wall_tps = double(generated) / p.seconds;
    p.itl_p50_ms = percentile(itl, 0.5);
    p.itl_p99_ms = percentile(itl, 0.99);
    p.ttft_p50_ms = percentile(ttft, 0.5);
    p.ttft_max_ms = ttft.empty() ? 0 : *std::max_element(ttft.begin(), ttft.end());
    p.rss_bytes = resident_bytes();
    out.push_back(p);
  }
  return out;
}

PrefixReuse run_prefix_reuse_bench(Model& model, const ConcurrencyOptions& opt) {
  const int64_t vocab = model.config().vocab;
  PrefixReuse r;
  r.prefix = opt.prefix;
  r.suffix = 32;
  const uint64_t budget = opt.kv_mem ? opt.kv_mem : default_kv_budget();
  auto pool = model.new_pool(opt.kv, budget);
  SchedulerOptions so;
  so.max_seqs = 1;
  so.step_tokens = opt.step_tokens;
  Scheduler sched(model, pool, nullptr, so);
  const std::vector<int32_t> prefix = prompt_tokens(opt, vocab, 1000, opt.prefix);
  auto ttft = [&](int64_t salt, int64_t* cached) {
    std::vector<int32_t> p = prefix, tail = prompt_tokens(opt, vocab, salt, r.suffix);
    p.insert(p.end(), tail.begin(), tail.end());
    const int64_t id = sched.submit(p, greedy(1));
    while (!sched.idle()) sched.step();
    const SeqStats& st = sched.stats(id);
    if (cached) *cached = st.cached_tokens;
    return 1e3 * (st.t_first_token - st.t_submit);
  };
  r.ttft_cold_ms = ttft(1, nullptr);           // computes the prefix (and leaves it in the prefix cache)
  r.ttft_warm_ms = ttft(2, &r.cached_tokens);  // another question after the same prefix
  return r;
}

}  // namespace tqlm
