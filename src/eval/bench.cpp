#include "eval/bench.h"

#include "kernels/kv_kernels.h"
#include "kernels/linear_kernels.h"
#include "kernels/qlinear.h"
#include "runtime/scheduler.h"

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>

#include "core/error.h"

namespace tqlm {

const char* kernel_isa() {
  return linear_kernels().isa;
}

const char* attention_isa() {
  return kv_kernels().isa;
}

std::string linear_family() {
  return linear_kernel_family();
}

namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

double active_weight_bytes(const Model& m) {
  const ModelWeights& w = m.weights();
  const ModelConfig& c = m.config();
  double b = double(w.lm_head.bytes()) + double(w.embed.bytes()) / double(std::max<int64_t>(1, c.vocab));
  for (const LayerWeights& l : w.layers) {
    for (const Linear* x : {&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down, &l.router})
      if (x->present()) b += double(x->bytes());
    for (const Linear* x : {&l.exp_gate, &l.exp_up, &l.exp_down})
      if (x->present()) b += double(c.top_k) * double(x->bytes());
  }
  return b;
}

std::vector<int32_t> bench_prompt(const std::vector<int32_t>& source, int64_t vocab, int64_t n, uint64_t seed,
                                  int64_t offset) {
  std::vector<int32_t> p(static_cast<size_t>(n));
  uint64_t rng = 0x9e3779b97f4a7c15ull ^ seed;
  for (int64_t i = 0; i < n; ++i) {
    if (!source.empty()) {
      p[size_t(i)] = source[size_t(offset + i) % source.size()];
    } else {
      rng = rng * 6364136223846793005ull + 1442695040888963407ull;
      p[size_t(i)] = int32_t(100 + (rng >> 33) % uint64_t(std::max<int64_t>(1, vocab - 100)));
    }
  }
  return p;
}

// Best of 4 passes over 512 MiB: each thread reads one contiguous share with 16-byte loads, prefetching 4 KiB
// ahead (as the decode kernels do: hardware prefetch alone leaves part of the bandwidth unused, and small
// dynamically taken chunks made the figure swing from run to run).
double measure_read_bandwidth(ThreadPool& pool) {
  typedef uint64_t v2 __attribute__((vector_size(16)));
  const int64_t n = (512ll << 20) / 16;
  std::unique_ptr<v2[]> buf(new v2[size_t(n)]);
  const int64_t share = (n + pool.size() - 1) / pool.size();
  pool.parallel_for(n, share, [&](int64_t a, int64_t b, int) {
    for (int64_t i = a; i < b; ++i) buf[size_t(i)] = v2{uint64_t(i), uint64_t(~i)};
  });
  double best = 0;
  std::vector<uint64_t> sums(size_t(pool.size()) + 1, 0);
  for (int pass = 0; pass < 4; ++pass) {
    const auto t0 = Clock::now();
    pool.parallel_for(n, share, [&](int64_t a, int64_t b, int tid) {
      v2 s0 = {}, s1 = {}, s2 = {}, s3 = {};
      int64_t i = a;
      for (; i + 4 <= b; i += 4) {
        __builtin_prefetch(&buf[size_t(std::min(i + 256, b - 1))]);
        s0 += buf[size_t(i)];
        s1 += buf[size_t(i + 1)];
        s2 += buf[size_t(i + 2)];
        s3 += buf[size_t(i + 3)];
      }
      for (; i < b; ++i) s0 += buf[size_t(i)];
      const v2 s = s0 + s1 + s2 + s3;
      sums[size_t(tid)] += s[0] + s[1];
    });
    best = std::max(best, double(n * 16) / since(t0) / 1e9);
  }
  if (sums[0] == 42) std::fputc(' ', stderr);  // keep the reads
  return best;
}

std::vector<BenchPoint> run_bench(Model& model, const BenchOptions& opt,
                                  const std::function<void(const std::string&)>& on_progress) {
  const ModelConfig& c = model.config();
  const int64_t vocab = c.vocab;
  std::vector<BenchPoint> points;
  const double wbytes = active_weight_bytes(model);
  for (int64_t ctx : opt.contexts) {
    if (ctx < 1) fail("bench: context {} must be at least 1 token", ctx);
    if (c.max_position > 0 && ctx + opt.decode > c.max_position)
      fail("bench: context {} + {} decoded tokens exceeds the model's max_position_embeddings {}", ctx,
           opt.decode, c.max_position);
    const std::vector<int32_t> prompt = bench_prompt(opt.tokens, vocab, ctx, uint64_t(ctx));
    BenchPoint p;
    p.context = ctx;
    // One sequence through the scheduler: the prefill in chunks, then `decode` timed decode steps.
    auto pool = model.new_pool(opt.kv);
    SchedulerOptions so;
    so.max_seqs = 1;
    so.step_tokens = opt.chunk;
    so.ctx = ctx + opt.decode + 1;
    Scheduler sched(model, pool, nullptr, so);
    RequestParams rp;
    rp.sampling.temperature = 0;
    rp.max_tokens = opt.decode + 1;  // the first token comes from the prefill, then `decode` forwards
    rp.ignore_eos = true;
    rp.reuse_prefix = false;
    {  // warm-up: one prefill chunk in a pool of its own, so the workspaces exist before memory is measured
      Scheduler warm(model, model.new_pool(opt.kv), nullptr, so);
      RequestParams wp = rp;
      wp.max_tokens = 0;
      warm.submit(std::vector<int32_t>(prompt.begin(), prompt.begin() + std::min(ctx, opt.chunk)), wp);
      while (!warm.idle()) warm.step();
    }
    malloc_trim(0);  // hand freed heap memory back, so new pages must grow RSS
    const int64_t rss0 = resident_bytes();
    const uint64_t bytes0 = pool->stats().bytes();
    const int64_t id = sched.submit(prompt, rp);
    int64_t rss_max = rss0, fed = 0;
    uint64_t bytes_max = bytes0;
    while (!sched.idle()) {
      const bool prefill = fed < ctx;
      sched.step();
      fed += sched.last_step().prefill_rows + sched.last_step().decode_rows;
      if (!sched.idle()) {  // the last step releases the sequence's blocks: measure before it
        rss_max = std::max(rss_max, resident_bytes());
        bytes_max = std::max(bytes_max, pool->stats().bytes());
      }
      if (prefill)
        on_progress("ctx " + std::to_string(ctx) + ": prefill " + std::to_string(std::min(fed, ctx)) + "/" +
                    std::to_string(ctx));
    }
    const SeqStats& st = sched.stats(id);
    p.prefill_seconds = st.t_first_token - st.t_submit;
    p.decode_seconds = st.t_finish - st.t_first_token;
    p.prefill_tps = double(ctx) / p.prefill_seconds;
    p.decode_tps = opt.decode > 0 ? double(opt.decode) / p.decode_seconds : 0;
    p.weight_bytes_per_token = wbytes;
    // decoded token i attends over ctx + i + 1 cached tokens
    p.kv_bytes_per_token =
        double(pool->layout().bytes_per_token()) * (double(ctx) + double(opt.decode + 1) / 2.0);
    p.achieved_gbps = opt.decode > 0 ? (wbytes + p.kv_bytes_per_token) * p.decode_tps / 1e9 : 0;
    p.cache_bytes = st.kv_bytes;
    p.rss_growth = rss_max - rss0;
    p.cache_growth = bytes_max - bytes0;
    points.push_back(p);
  }
  return points;
}

}  // namespace tqlm
