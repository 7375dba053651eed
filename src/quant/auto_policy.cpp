#include "quant/auto_policy.h"

#include <algorithm>
#include <map>
#include <queue>

#include "core/error.h"
#include "io/checkpoint.h"
#include "quant/affine.h"
#include "quant/affine_fit.h"
#include "quant/convert.h"
#include "quant/plan.h"
#include "quant/source.h"

namespace tqlm {

using json = nlohmann::json;

namespace {

struct Option {
  int bits, group;
  uint64_t bytes;
  double err = 0;
};

struct Candidate {
  const PlannedTensor* t;
  std::vector<Option> opts;  // after hull(): the lower convex hull, bytes ascending
  size_t at = 0;             // chosen option
  double gain = 0;           // ||W||_F^2 / in (experts: averaged), from the sampled rows
};

// The weight whose input is `module`'s output, in the same layer: q/k/v -> o_proj, gate/up -> down_proj.
std::string next_module(const std::string& m) {
  for (const char* p : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"})
    if (m.size() > 16 && m.compare(m.size() - 16, 16, p) == 0) return m.substr(0, m.size() - 6) + "o_proj";
  for (const char* p : {"gate_proj", "up_proj"}) {
    const size_t n = std::char_traits<char>::length(p);
    if (m.size() > n && m.compare(m.size() - n, n, p) == 0) return m.substr(0, m.size() - n) + "down_proj";
  }
  return "";
}

// Keeps the options on the lower convex hull of (bytes, err): each step buys a smaller error drop per byte.
void hull(std::vector<Option>& o) {
  std::sort(o.begin(), o.end(), [](const Option& a, const Option& b) {
    return a.bytes < b.bytes || (a.bytes == b.bytes && a.err < b.err);
  });
  std::vector<Option> h;
  for (const Option& x : o) {
    if (!h.empty() && x.err >= h.back().err) continue;  // dominated
    while (h.size() >= 2) {
      const Option &a = h[h.size() - 2], &b = h.back();
      // b is above the segment a -> x: drop it
      const double lhs = (b.err - a.err) * double(x.bytes - a.bytes);
      const double rhs = (x.err - a.err) * double(b.bytes - a.bytes);
      if (lhs >= rhs)
        h.pop_back();
      else
        break;
    }
    h.push_back(x);
  }
  o = std::move(h);
}

bool allocatable(const PlannedTensor& t, bool tied) {
  if (!t.decision.quantize || t.shape.size() < 2) return false;
  if (t.role == Role::router || t.role == Role::norm || t.role == Role::other) return false;
  return t.role != Role::embed || tied;
}

// Proxy errors of every option of one weight, from sampled rows (see auto_policy.h).
void measure(Source& source, const CalibStats& stats, const ModelConfig& mc, Candidate& c,
             const AutoPolicyOptions& opt, ThreadPool& pool) {
  const PlannedTensor& t = *c.t;
  const bool stacked = t.shape.size() == 3;
  const int64_t E = stacked ? t.shape[0] : 1, rows = t.shape[t.shape.size() - 2], cols = t.shape.back();
  const std::string key = t.role == Role::embed ? "lm_head" : t.module;
  const double T = double(std::max<int64_t>(1, stats.tokens));
  const int64_t per = std::min(rows, std::max<int64_t>(8, opt.sample_rows / E));
  struct Rows {
    std::vector<float> w;        // [n, cols]
    std::vector<double> energy;  // [cols] per calibration token
    std::vector<float> h;        // [cols] fit importance
    int64_t n = 0;
  };
  std::vector<Rows> sample(static_cast<size_t>(E));
  std::vector<uint8_t> buf;
  for (int64_t e = 0; e < E; ++e) {
    Rows& s = sample[size_t(e)];
    std::vector<double> en = stats.energy(key, stacked ? e : -1);
    if (en.empty()) fail("calibration statistics have no input for '{}' (made for another model?)", t.module);
    s.energy.resize(size_t(cols));
    for (int64_t j = 0; j < cols; ++j) s.energy[size_t(j)] = en[size_t(j)] / T;
    s.h = opt.calibrated ? weight_importance(stats, mc, t.module, stacked ? e : -1) : std::vector<float>{};
    // blocks of 8 rows spread over the weight (starts on 128-row boundaries when there is room: FP8 blocks)
    const int64_t nblk = (per + 7) / 8;
    for (int64_t b = 0; b < nblk; ++b) {
      int64_t r0 = rows * b / nblk;
      if (rows >= 128 * nblk) r0 = r0 / 128 * 128;
      const int64_t nr = std::min<int64_t>(8, rows - r0);
      source.read(t.module, stacked ? e : -1, r0, nr, rows, cols, DType::F32, buf);
      const float* f = reinterpret_cast<const float*>(buf.data());
      s.w.insert(s.w.end(), f, f + nr * cols);
      s.n += nr;
    }
  }
  double sq = 0;  // gain: rows x mean square of the sampled rows, averaged over experts
  for (const Rows& s : sample) {
    double e = 0;
    for (float v : s.w) e += double(v) * double(v);
    sq += double(rows) * e / double(std::max<size_t>(1, s.w.size())) / double(E);
  }
  c.gain = sq;
  const DType sdt = DType::BF16;  // scale dtype for the estimate
  pool.parallel_for(int64_t(c.opts.size()), 1, [&](int64_t a, int64_t b, int) {
    std::vector<uint8_t> q(static_cast<size_t>(cols));
    std::vector<float> ones(static_cast<size_t>(cols), 1.0f);
    for (int64_t i = a; i < b; ++i) {
      Option& o = c.opts[size_t(i)];
      double total = 0;
      for (int64_t e = 0; e < E; ++e) {
        const Rows& s = sample[size_t(e)];
        const float* h = s.h.empty() ? ones.data() : s.h.data();
        double err = 0;
        for (int64_t r = 0; r < s.n; ++r)
          for (int64_t g = 0; g < cols / o.group; ++g) {
            const float* w = &s.w[size_t(r * cols + g * o.group)];
            const GroupFit f = opt.calibrated
                                   ? affine_fit_group(w, h + g * o.group, o.group, o.bits, sdt, q.data())
                                   : affine_fit_rtn(w, h + g * o.group, o.group, o.bits, sdt, q.data());
            for (int j = 0; j < o.group; ++j) {
              const double d = double(w[j]) - double(f.scale * float(q[size_t(j)]) + f.bias);
              err += s.energy[size_t(g * o.group + j)] * d * d;
            }
          }
        total += err * double(rows) / double(std::max<int64_t>(1, s.n));
      }
      o.err = total;
    }
  });
}

}  // namespace

AutoPolicy choose_auto_policy(const std::string& src, const CalibStats& stats, const AutoPolicyOptions& opt,
                              ThreadPool& pool) {
  Checkpoint ck(src);
  if (!ck.has_config()) fail("{}: config.json is missing", src);
  const ModelConfig mc = parse_model_config(ck.config(), src + "/config.json");
  const DType sdt = config_float_dtype(ck.config());
  // Fixed parts (see auto_policy.h); every allocatable weight is planned at 4 bits here, then replaced.
  json fixed = json::array();
  if (mc.n_experts > 0) fixed.push_back({{"roles", {"router"}}, {"bits", 8}, {"group_size", 64}});
  if (!mc.tie_embeddings) fixed.push_back({{"roles", {"embed"}}, {"bits", 8}, {"group_size", 64}});
  const Policy base = Policy::from_json({{"name", "auto-base"}, {"rules", fixed}}, "auto policy");
  const ConversionPlan plan = plan_conversion(mc, base, sdt);

  std::vector<Candidate> cands;
  uint64_t fixed_bytes = 0;
  for (const auto& t : plan.tensors) {
    if (!allocatable(t, mc.tie_embeddings)) {
      fixed_bytes += t.bytes;
      continue;
    }
    Candidate c{&t, {}, 0, 0};
    const uint64_t n = uint64_t(t.params());
    for (int b : opt.bits)
      for (int g : opt.groups)
        if (t.shape.back() % g == 0)
          c.opts.push_back({b, g, n * uint64_t(b) / 8 + 2 * (n / uint64_t(g)) * dtype_size(sdt)});
    if (c.opts.empty())
      fail("auto policy: '{}' has input dimension {}, which no group size divides", t.module, t.shape.back());
    cands.push_back(std::move(c));
  }
  Source source(ck);
  std::map<std::string, const Candidate*> by_module;
  for (auto& c : cands) {
    measure(source, stats, mc, c, opt, pool);
    by_module[c.t->module] = &c;
  }
  // q/k/v and gate/up errors are measured at their outputs; the o_proj / down_proj that reads them carries
  // them into the residual stream with gain ||W_next||_F^2 / in (an error of independent entries).
  for (auto& c : cands) {
    auto it = by_module.find(next_module(c.t->module));
    if (it != by_module.end())
      for (Option& o : c.opts) o.err *= it->second->gain;
    hull(c.opts);
  }
  AutoPolicy res;
  res.min_bytes = res.max_bytes = fixed_bytes;
  for (const auto& c : cands) res.min_bytes += c.opts.front().bytes, res.max_bytes += c.opts.back().bytes;
  if (opt.budget_bytes < res.min_bytes)
    fail(
        "auto policy: the budget of {} bytes is below the smallest allocation, {} bytes ({:.3f} bits per "
        "weight)",
        opt.budget_bytes, res.min_bytes, 8.0 * double(res.min_bytes) / double(plan.report.total.params));
  // Greedy: the upgrade with the largest error drop per byte first, while it fits.
  uint64_t used = res.min_bytes;
  auto slope = [&](size_t i) {
    const Candidate& c = cands[i];
    const Option &a = c.opts[c.at], &b = c.opts[c.at + 1];
    return (a.err - b.err) / double(b.bytes - a.bytes);
  };
  std::priority_queue<std::pair<double, size_t>> heap;
  for (size_t i = 0; i < cands.size(); ++i)
    if (cands[i].opts.size() > 1) heap.push({slope(i), i});
  while (!heap.empty()) {
    const size_t i = heap.top().second;
    heap.pop();
    Candidate& c = cands[i];
    const uint64_t step = c.opts[c.at + 1].bytes - c.opts[c.at].bytes;
    if (used + step > opt.budget_bytes) continue;  // does not fit: this weight stays
    used += step;
    ++c.at;
    if (c.at + 1 < c.opts.size()) heap.push({slope(i), i});
  }
  // The policy document: the fixed rules, then one rule per allocated weight.
  std::map<std::pair<int, int>, int> common;
  for (const auto& c : cands) ++common[{c.opts[c.at].bits, c.opts[c.at].group}];
  const auto dflt = std::max_element(common.begin(), common.end(),
                                     [](const auto& a, const auto& b) { return a.second < b.second; });
  json rules = fixed;
  for (const auto& c : cands) {
    const Option& o = c.opts[c.at];
    const PlannedTensor& t = *c.t;
    res.choices.push_back({t.module, t.role, t.layer, o.bits, o.group, o.bytes, o.err});
    res.err += o.err;
    if (o.bits == dflt->first.first && o.group == dflt->first.second) continue;
    rules.push_back({{"roles", {std::string(role_name(t.role))}},
                     {"layers", {t.layer < 0 ? std::string("global") : std::to_string(t.layer)}},
                     {"bits", o.bits},
                     {"group_size", o.group}});
  }
  res.policy = {{"name", fmt::format("auto-{}", opt.budget_bytes)},
                {"default", {{"bits", dflt->first.first}, {"group_size", dflt->first.second}}},
                {"rules", rules}};
  // The document must give back exactly this allocation.
  const ConversionPlan check = plan_conversion(mc, Policy::from_json(res.policy, "auto policy"), sdt);
  res.bytes = check.report.total.bytes;
  if (res.bytes != used)
    fail("auto policy: the written policy plans {} bytes, not {} (a bug)", res.bytes, used);
  return res;
}

}  // namespace tqlm
