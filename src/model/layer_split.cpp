#include "model/layer_split.h"

#include <fmt/format.h>

#include <numeric>

#include "core/error.h"

namespace tqlm {

namespace {

const std::string kLayers = "model.layers.";

std::string gb(uint64_t b) {
  return fmt::format("{:.2f} GB", double(b) / 1e9);
}

// Fills weights/kv of every stage from its range.
void account(SplitPlan& p, const ModelBytes& mb, const std::vector<uint64_t>& kv_layer) {
  for (size_t r = 0; r < p.stages.size(); ++r) {
    StagePlan& s = p.stages[r];
    s.weights = r == 0 ? mb.head : 0;
    s.kv = 0;
    for (int64_t l = s.layers.begin; l < s.layers.end; ++l)
      s.weights += mb.layers[size_t(l)], s.kv += kv_layer[size_t(l)];
  }
}

bool all_fit(const SplitPlan& p) {
  for (const StagePlan& s : p.stages)
    if (!s.fits()) return false;
  return true;
}

}  // namespace

uint64_t ModelBytes::total() const {
  return std::accumulate(layers.begin(), layers.end(), head);
}

ModelBytes model_bytes(const Checkpoint& ck, const ModelConfig& cfg) {
  ModelBytes mb;
  mb.layers.assign(size_t(cfg.n_layers), 0);
  for (const TensorView* t : ck.tensors().all()) {
    if (t->name.rfind(kLayers, 0) != 0) {
      mb.head += t->nbytes;
      continue;
    }
    const size_t dot = t->name.find('.', kLayers.size());
    int64_t l = -1;
    try {
      l = std::stoll(t->name.substr(kLayers.size(), dot - kLayers.size()));
    } catch (const std::exception&) {
    }
    if (l < 0 || l >= cfg.n_layers)
      fail("{}: tensor '{}' is outside the model's {} layers", ck.path(), t->name, cfg.n_layers);
    mb.layers[size_t(l)] += t->nbytes;
  }
  return mb;
}

ModelBytes model_bytes(const ConversionPlan& plan, int64_t n_layers) {
  ModelBytes mb;
  mb.layers.assign(size_t(n_layers), 0);
  for (const PlannedTensor& t : plan.tensors) {
    if (t.layer >= n_layers) fail("plan: tensor '{}' is in layer {} of {}", t.module, t.layer, n_layers);
    (t.layer < 0 ? mb.head : mb.layers[size_t(t.layer)]) += t.bytes;
  }
  return mb;
}

std::vector<uint64_t> kv_bytes_per_layer(const KVSpec& kv, const KVShape& shape, int64_t tokens) {
  const KVLayout L = kv_layout(kv, shape);
  std::vector<uint64_t> r(size_t(shape.layers));
  for (int64_t l = 0; l < shape.layers; ++l)
    r[size_t(l)] = uint64_t(tokens) * uint64_t(shape.kv_heads) *
                   uint64_t(L.k[size_t(l)].vector_bytes() + L.v[size_t(l)].vector_bytes());
  return r;
}

SplitPlan plan_layer_split(const ModelBytes& mb, const std::vector<uint64_t>& capacity,
                           const std::vector<uint64_t>& kv_layer, const std::vector<int64_t>& counts) {
  const int64_t P = int64_t(capacity.size()), L = int64_t(mb.layers.size());
  if (P < 1) fail("pipeline: no ranks to split the layers over");
  if (P > L)
    fail("pipeline: {} ranks but the model has only {} layers (every rank needs at least one)", P, L);
  if (int64_t(kv_layer.size()) != L)
    fail("pipeline: KV bytes given for {} layers, the model has {}", kv_layer.size(), L);
  SplitPlan p;
  p.stages.resize(size_t(P));
  for (int64_t r = 0; r < P; ++r) p.stages[size_t(r)].capacity = capacity[size_t(r)];
  auto set_counts = [&](const std::vector<int64_t>& c) {
    int64_t at = 0;
    for (int64_t r = 0; r < P; ++r) p.stages[size_t(r)].layers = {at, at + c[size_t(r)]}, at += c[size_t(r)];
    account(p, mb, kv_layer);
  };
  if (!counts.empty()) {
    if (int64_t(counts.size()) != P)
      fail("--layer-split has {} numbers but the job has {} ranks", counts.size(), P);
    int64_t sum = 0;
    for (int64_t c : counts) {
      if (c < 1) fail("--layer-split: every rank needs at least one layer");
      sum += c;
    }
    if (sum != L) fail("--layer-split adds up to {} layers, the model has {}", sum, L);
    set_counts(counts);
    p.how = "--layer-split";
    return p;
  }
  // Balanced: the split that minimises the largest fraction of any rank's memory in use (weights + KV),
  // found by bisection on that fraction x: at a given x, ranks in order take layers while they stay under
  // x * capacity (leaving one layer for every later rank); x is feasible when the last rank fits too. With
  // a capacity unknown, every rank counts as equal (the split balances bytes).
  bool known = true;
  for (uint64_t c : capacity) known = known && c > 0;
  std::vector<double> cap(static_cast<size_t>(P)), cost(static_cast<size_t>(L));
  for (int64_t r = 0; r < P; ++r) cap[size_t(r)] = known ? double(capacity[size_t(r)]) : 1.0;
  double total = double(mb.head);
  for (int64_t l = 0; l < L; ++l)
    cost[size_t(l)] = double(mb.layers[size_t(l)] + kv_layer[size_t(l)]), total += cost[size_t(l)];
  std::vector<int64_t> c(static_cast<size_t>(P));
  auto feasible = [&](double x) {
    int64_t l = 0;
    for (int64_t r = 0; r < P; ++r) {
      double need = r == 0 ? double(mb.head) : 0.0;
      c[size_t(r)] = 0;
      const int64_t last = r == P - 1 ? L : L - (P - 1 - r);  // layers [l, last) are open to rank r
      while (l < last && (c[size_t(r)] == 0 || r == P - 1 || need + cost[size_t(l)] <= x * cap[size_t(r)]))
        need += cost[size_t(l)], ++l, ++c[size_t(r)];
      if (need > x * cap[size_t(r)]) return false;
    }
    return true;
  };
  double lo = 0, hi = 1;
  while (!feasible(hi)) {
    hi *= 2;
    if (hi > 1e30) fail("pipeline: cannot split {} layers over {} ranks", L, P);
  }
  for (int i = 0; i < 100 && hi - lo > 1e-12 * hi; ++i) (feasible((lo + hi) / 2) ? hi : lo) = (lo + hi) / 2;
  feasible(hi);
  set_counts(c);
  p.how = known ? fmt::format("balanced by memory (at most {:.1f}% of a rank's memory)", 100 * hi)
                : "balanced by bytes (memory unknown)";
  if (all_fit(p)) return p;
  fail("the model does not fit these ranks ({} of weights and reserved KV over {} ranks):\n{}",
       gb(mb.total() + std::accumulate(kv_layer.begin(), kv_layer.end(), uint64_t(0))), P, format_split(p));
}

std::vector<int64_t> parse_layer_split(const std::string& text) {
  std::vector<int64_t> r;
  size_t at = 0;
  while (at <= text.size()) {
    const size_t comma = std::min(text.find(',', at), text.size());
    const std::string item = text.substr(at, comma - at);
    if (item.empty() || item.size() > 6 || item.find_first_not_of("0123456789") != std::string::npos)
      fail("--layer-split '{}': expected layer counts per rank such as 30,32", text);
    r.push_back(std::stoll(item));
    if (r.size() > 4096) fail("--layer-split: more than 4096 ranks");
    at = comma + 1;
  }
  return r;
}

std::string format_split(const SplitPlan& plan, const std::vector<std::string>& names) {
  std::string s = fmt::format("{:<5} {:<16} {:>9} {:>11} {:>11} {:>11} {:>11} {:>11}  {}\n", "rank", "host",
                              "layers", "range", "weights", "KV", "need", "capacity", "");
  for (size_t r = 0; r < plan.stages.size(); ++r) {
    const StagePlan& st = plan.stages[r];
    const std::string host = r < names.size() ? names[r] : "-";
    s += fmt::format("{:<5} {:<16} {:>9} {:>11} {:>11} {:>11} {:>11} {:>11}  {}\n", r, host,
                     st.layers.end - st.layers.begin, fmt::format("[{}, {})", st.layers.begin, st.layers.end),
                     gb(st.weights), gb(st.kv), gb(st.need()), st.capacity ? gb(st.capacity) : "unknown",
                     st.fits() ? (r == 0 ? "+ embedding, head" : "") : "DOES NOT FIT");
  }
  return s;
}

}  // namespace tqlm
