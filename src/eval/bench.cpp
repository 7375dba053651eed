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
#include <utility>

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

double median_of(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Each thread reads one contiguous share with 16-byte loads, prefetching 4 KiB ahead (as the decode kernels
// do: hardware prefetch alone leaves part of the bandwidth unused, and small dynamically taken chunks made
// the figure swing from run to run).
typedef uint64_t probe_v2 __attribute__((vector_size(16)));
struct ReadProbe::Buffer {
  static constexpr int64_t n = (512ll << 20) / 16;  // [n] 16-byte vectors
  std::unique_ptr<probe_v2[]> v{new probe_v2[size_t(n)]};
  std::vector<uint64_t> sums;  // [threads] keeps the reads
};

ReadProbe::ReadProbe(ThreadPool& pool) : pool_(pool), buf_(std::make_unique<Buffer>()) {
  const int64_t n = Buffer::n, share = (n + pool.size() - 1) / pool.size();
  buf_->sums.assign(size_t(pool.size()) + 1, 0);
  probe_v2* v = buf_->v.get();
  pool.parallel_for(n, share, [&](int64_t a, int64_t b, int) {
    for (int64_t i = a; i < b; ++i) v[i] = probe_v2{uint64_t(i), uint64_t(~i)};
  });
}

ReadProbe::~ReadProbe() {
  if (buf_->sums[0] == 42) std::fputc(' ', stderr);  // the reads are used
}

double ReadProbe::pass() {
  const int64_t n = Buffer::n, share = (n + pool_.size() - 1) / pool_.size();
  const probe_v2* v = buf_->v.get();
  const auto t0 = Clock::now();
  pool_.parallel_for(n, share, [&](int64_t a, int64_t b, int tid) {
    probe_v2 s0 = {}, s1 = {}, s2 = {}, s3 = {};
    int64_t i = a;
    for (; i + 4 <= b; i += 4) {
      __builtin_prefetch(&v[std::min(i + 256, b - 1)]);
      s0 += v[i];
      s1 += v[i + 1];
      s2 += v[i + 2];
      s3 += v[i + 3];
    }
    for (; i < b; ++i) s0 += v[i];
    const probe_v2 s = s0 + s1 + s2 + s3;
    buf_->sums[size_t(tid)] += s[0] + s[1];
  });
  return double(n * 16) / since(t0) / 1e9;
}

double median_read_gbps(const std::vector<BenchPoint>& pts) {
  std::vector<double> r;
  for (const BenchPoint& p : pts)
    if (p.read_gbps > 0) r.push_back(p.read_gbps);
  return median_of(r);
}

std::vector<BenchPoint> run_bench(Model& model, const BenchOptions& opt,
                                  const std::function<void(const std::string&)>& on_progress) {
  const ModelConfig& c = model.config();
  const int64_t vocab = c.vocab;
  std::vector<BenchPoint> points;
  const double wbytes = active_weight_bytes(model);
  std::unique_ptr<ReadProbe> probe;
  if (opt.probe_bandwidth && opt.decode > 0) probe = std::make_unique<ReadProbe>(model.pool());
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
    std::vector<double> probed;  // GB/s of the passes beside this point's decode
    double probe_seconds = 0;    // their time, inside the sequence's decode span
    auto probe_passes = [&](int n) {
      const auto t0 = Clock::now();
      for (int i = 0; i < n; ++i) probed.push_back(probe->pass());
      probe_seconds += since(t0);
    };
    // time inside the decoder layers, per layer: the prefill's, then the decode's
    std::vector<double> clock(size_t(model.config().n_layers), 0.0);
    double prefill_layers = 0;
    model.set_layer_clock(&clock);
    struct Unset {
      Model& m;
      ~Unset() { m.set_layer_clock(nullptr); }
    } unset{model};
    int64_t decoded = 0;
    while (!sched.idle()) {
      const bool prefill = fed < ctx;
      sched.step();
      fed += sched.last_step().prefill_rows + sched.last_step().decode_rows;
      if (prefill && fed >= ctx) {  // the first token is out: the decode starts
        for (double& c : clock) prefill_layers += std::exchange(c, 0.0);
        if (probe && !sched.idle()) probe_passes(2);
      } else if (!prefill && probe && ++decoded % kProbeEvery == 0 && !sched.idle()) {
        probe_passes(1);
      }
      if (!sched.idle()) {  // the last step releases the sequence's blocks: measure before it
        rss_max = std::max(rss_max, resident_bytes());
        bytes_max = std::max(bytes_max, pool->stats().bytes());
      }
      if (prefill)
        on_progress("ctx " + std::to_string(ctx) + ": prefill " + std::to_string(std::min(fed, ctx)) + "/" +
                    std::to_string(ctx));
    }
    if (probe) {
      // after the sequence's finish time was taken: these passes are not inside its decode span
      const double inside = probe_seconds;
      probe_passes(2);
      probe_seconds = inside;
      p.read_gbps = median_of(probed);
    }
    double decode_layers = 0;
    for (double c : clock) decode_layers += c;
    const SeqStats& st = sched.stats(id);
    p.prefill_seconds = st.t_first_token - st.t_submit;
    p.decode_seconds = st.t_finish - st.t_first_token - probe_seconds;
    p.prefill_tps = double(ctx) / p.prefill_seconds;
    p.decode_tps = opt.decode > 0 ? double(opt.decode) / p.decode_seconds : 0;
    p.prefill_layer_seconds = prefill_layers / double(ctx);
    p.decode_layer_seconds = opt.decode > 0 ? decode_layers / double(opt.decode) : 0;
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
