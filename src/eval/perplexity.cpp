#include "eval/perplexity.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <numeric>

#include "core/error.h"
#include "runtime/scheduler.h"

namespace tqlm {

namespace {

constexpr int kTop = 64;
constexpr char kMagic[8] = {'T', 'Q', 'L', 'M', 'K', 'L', '1', '\0'};

// One prediction of the reference: top-K token ids with their log-probs, and the NLL of the target.
struct RefRecord {
  int32_t ids[kTop];
  float logp[kTop];
  float nll;
};

struct RefHeader {
  char magic[8];
  uint64_t ctx, windows, predictions, token_hash;
};

uint64_t hash_tokens(const std::vector<int32_t>& t, size_t n) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a over the scored tokens
  for (size_t i = 0; i < n; ++i) h = (h ^ uint32_t(t[i])) * 1099511628211ull;
  return h;
}

struct Accum {
  double sum = 0, sum2 = 0, max = 0;
  int64_t n = 0;
  void add(double x) {
    sum += x;
    sum2 += x * x;
    max = std::max(max, x);
    ++n;
  }
  double mean() const { return n ? sum / double(n) : 0; }
  double sd() const {
    return n > 1 ? std::sqrt(std::max(0.0, (sum2 - sum * sum / double(n)) / double(n - 1))) : 0;
  }
};

}  // namespace

PerplexityResult run_perplexity(Model& model, const std::vector<int32_t>& tokens,
                                const PerplexityOptions& opt, const Progress& progress) {
  if (opt.ctx < 2) fail("--ctx must be at least 2");
  const int64_t V = model.config().vocab;
  const int64_t full = int64_t(tokens.size()) / opt.ctx;
  if (full == 0) fail("the text has {} tokens, fewer than one window of --ctx {}", tokens.size(), opt.ctx);
  const int64_t windows = opt.samples > 0 ? std::min(opt.samples, full) : full;
  const int64_t preds = windows * (opt.ctx - 1);
  const uint64_t thash = hash_tokens(tokens, size_t(windows * opt.ctx));

  std::FILE* base = nullptr;
  if (!opt.kl_base.empty()) {
    base = std::fopen(opt.kl_base.c_str(), "rb");
    if (!base) fail("{}: cannot open the --kl-base file", opt.kl_base);
    RefHeader h{};
    if (std::fread(&h, sizeof h, 1, base) != 1 || std::memcmp(h.magic, kMagic, 8) != 0) {
      std::fclose(base);
      fail("{}: not a tqlm --save-logits file", opt.kl_base);
    }
    if (h.ctx != uint64_t(opt.ctx) || h.windows != uint64_t(windows) || h.token_hash != thash) {
      std::fclose(base);
      fail(
          "{}: reference was made with ctx {}, {} windows over other tokens; rerun with the same --data, "
          "--ctx "
          "and --samples",
          opt.kl_base, h.ctx, h.windows);
    }
  }
  std::FILE* save = nullptr;
  std::string save_tmp;
  if (!opt.save_logits.empty()) {
    save_tmp = opt.save_logits + ".tmp";
    save = std::fopen(save_tmp.c_str(), "wb");
    if (!save) fail("{}: cannot create", save_tmp);
    RefHeader h{};
    std::memcpy(h.magic, kMagic, 8);
    h.ctx = uint64_t(opt.ctx);
    h.windows = uint64_t(windows);
    h.predictions = uint64_t(preds);
    h.token_hash = thash;
    if (std::fwrite(&h, sizeof h, 1, save) != 1) {
      std::fclose(save);
      std::remove(save_tmp.c_str());
      fail("{}: write failed", save_tmp);
    }
  }
  struct Closer {  // on every error path: close the file and remove a half-written reference
    std::FILE*& f;
    std::string remove;
    bool done = false;
    ~Closer() {
      if (f) std::fclose(f);
      if (!done && !remove.empty()) std::remove(remove.c_str());
    }
  } c1{base, ""}, c2{save, save_tmp};

  // Windows run through the scheduler (opt.parallel at once, each from an empty cache: no prefix reuse).
  // A window's rows arrive in order; its per-prediction values are kept per window and reduced in window
  // order, and reference records sit at fixed offsets, so nothing depends on how windows interleave.
  struct Win {
    std::vector<double> nll, kl, base_nll;
    std::vector<RefRecord> save, base;  // [ctx - 1]
    int64_t agree = 0;
    double rest = 0;
  };
  std::vector<Win> win(static_cast<size_t>(windows));
  const long rec_bytes = long(sizeof(RefRecord)) * long(opt.ctx - 1);
  std::vector<int32_t> order(static_cast<size_t>(V));
  auto score = [&](int64_t w, int64_t row, const float* lg) {  // prediction `row` of window w
    Win& W = win[size_t(w)];
    const int32_t target = tokens[size_t(w * opt.ctx + row + 1)];
    float mx = *std::max_element(lg, lg + V);
    double se = 0;
    for (int64_t v = 0; v < V; ++v) se += std::exp(double(lg[v] - mx));
    const double lse = double(mx) + std::log(se);
    const double x = lse - double(lg[target]);
    W.nll.push_back(x);
    auto logp = [&](int32_t id) { return double(lg[id]) - lse; };
    if (save) {  // log-probs of the top K of this run
      RefRecord r{};
      std::iota(order.begin(), order.end(), 0);
      std::partial_sort(order.begin(), order.begin() + kTop, order.end(),
                        [&](int32_t a, int32_t b) { return lg[a] > lg[b] || (lg[a] == lg[b] && a < b); });
      for (int k = 0; k < kTop; ++k) r.ids[k] = order[size_t(k)], r.logp[k] = float(logp(order[size_t(k)]));
      r.nll = float(x);
      W.save.push_back(r);
    }
    if (base) {
      if (W.base.empty()) {  // this window's reference records, at their fixed offset
        W.base.resize(size_t(opt.ctx - 1));
        if (std::fseek(base, long(sizeof(RefHeader)) + long(w) * rec_bytes, SEEK_SET) != 0 ||
            std::fread(W.base.data(), sizeof(RefRecord), W.base.size(), base) != W.base.size())
          fail("{}: truncated reference file", opt.kl_base);
      }
      const RefRecord& r = W.base[size_t(row)];
      double p_in = 0, q_in = 0, k = 0;
      for (int j = 0; j < kTop; ++j) {
        const double p = std::exp(double(r.logp[j]));
        p_in += p;
        q_in += std::exp(logp(r.ids[j]));
        k += p * (double(r.logp[j]) - logp(r.ids[j]));
      }
      const double p_rest = std::max(0.0, 1.0 - p_in), q_rest = std::max(1e-30, 1.0 - q_in);
      if (p_rest > 0) k += p_rest * std::log(p_rest / q_rest);
      W.kl.push_back(std::max(0.0, k));
      W.rest += p_rest;
      W.base_nll.push_back(r.nll);
      const int32_t mine = int32_t(std::max_element(lg, lg + V) - lg);
      W.agree += mine == r.ids[0];
    }
  };

  SchedulerOptions so;
  so.max_seqs = std::max<int64_t>(1, opt.parallel);
  so.step_tokens = opt.chunk;
  so.ctx = opt.ctx;
  Scheduler sched(model, model.new_pool(opt.kv), nullptr, so);
  std::vector<int64_t> ids;
  for (int64_t w = 0; w < windows; ++w) {
    RequestParams rp;
    rp.max_tokens = 0;  // the last token of a window predicts nothing: feed ctx - 1 tokens
    rp.reuse_prefix = false;
    rp.on_prompt_logits = [&, w](int64_t row0, int64_t n, const float* lg) {
      for (int64_t i = 0; i < n; ++i) score(w, row0 + i, lg + i * V);
    };
    ids.push_back(sched.submit(
        std::vector<int32_t>(tokens.begin() + w * opt.ctx, tokens.begin() + (w + 1) * opt.ctx - 1),
        std::move(rp)));
  }
  int64_t finished = 0;
  auto t0 = std::chrono::steady_clock::now();
  while (!sched.idle())
    for (const SeqEvent& e : sched.step()) {
      if (!e.finished) continue;
      if (e.finish_reason == "error") fail("perplexity: {}", e.error);
      const int64_t w = int64_t(std::find(ids.begin(), ids.end(), e.id) - ids.begin());
      Win& W = win[size_t(w)];
      if (int64_t(W.nll.size()) != opt.ctx - 1)
        fail("perplexity: window {} scored {} of {} predictions", w, W.nll.size(), opt.ctx - 1);
      if (save) {
        if (std::fseek(save, long(sizeof(RefHeader)) + long(w) * rec_bytes, SEEK_SET) != 0 ||
            std::fwrite(W.save.data(), sizeof(RefRecord), W.save.size(), save) != W.save.size())
          fail("{}: write failed", save_tmp);
        W.save = {};
      }
      W.base = {};
      if (progress)
        progress(++finished, windows,
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
  Accum nll, kl, base_nll;
  int64_t agree = 0;
  double rest = 0;
  for (const Win& W : win) {
    for (double x : W.nll) nll.add(x);
    for (double x : W.kl) kl.add(x);
    for (double x : W.base_nll) base_nll.add(x);
    agree += W.agree;
    rest += W.rest;
  }
  PerplexityResult r;
  r.windows = windows;
  r.predictions = nll.n;
  r.mean_nll = nll.mean();
  r.ppl = std::exp(r.mean_nll);
  r.ppl_se = r.ppl * nll.sd() / std::sqrt(double(nll.n));
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (base) {
    r.compared = true;
    r.kl_mean = kl.mean();
    r.kl_se = kl.sd() / std::sqrt(double(kl.n));
    r.kl_max = kl.max;
    r.top1_agree = double(agree) / double(kl.n);
    r.base_ppl = std::exp(base_nll.mean());
    r.ppl_ratio = r.ppl / r.base_ppl;
    r.rest_mass = rest / double(kl.n);
  }
  if (save) {
    bool ok = std::fflush(save) == 0;
    ok = ::fsync(::fileno(save)) == 0 && ok;
    ok = std::fclose(save) == 0 && ok;
    save = nullptr;
    if (!ok) fail("{}: write failed", save_tmp);
    std::error_code ec;
    std::filesystem::rename(save_tmp, opt.save_logits, ec);
    if (ec) fail("{}: cannot rename to {}: {}", save_tmp, opt.save_logits, ec.message());
    c2.done = true;
  }
  return r;
}

}  // namespace tqlm
