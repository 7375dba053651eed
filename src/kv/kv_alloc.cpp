#include "kv/kv_alloc.h"

#include <algorithm>
#include <limits>

#include "core/error.h"
#include "core/json.h"

namespace tqlm {

namespace {

using Json = nlohmann::json;

// One layer side's choices, cheapest first: bytes per token (all kv heads) and the KL it costs.
struct Choice {
  std::string name;
  int64_t bytes;
  double kl;
};

std::vector<Choice> choices(const std::map<int, std::vector<double>>& kl, int64_t layer, const KVShape& s) {
  std::vector<Choice> out;
  double best = std::numeric_limits<double>::infinity();
  for (const auto& [bits, v] : kl) {  // ascending bits; a noisy measurement never makes more bits cost more
    best = std::min(best, std::max(0.0, v[size_t(layer)]));
    const std::string n = "turbo" + std::to_string(bits);
    out.push_back({n, s.kv_heads * kv_side_format(n, s.head_dim, "auto").vector_bytes(), best});
  }
  out.push_back({"bf16", s.kv_heads * s.head_dim * 2, 0.0});
  return out;
}

}  // namespace

KVLayerPlan load_kv_layer_plan(const std::string& path) {
  const Json j = read_json_file_limited<Json>(path, 4);
  KVLayerPlan p;
  auto names = [&](const char* key) {
    if (!j.is_object() || !j.contains(key) || !j[key].is_array())
      fail("{}: expected {{\"k\": [formats per layer], \"v\": [...], \"centred\": bool}}", path);
    std::vector<std::string> out;
    for (const auto& x : j[key]) {
      if (!x.is_string()) fail("{}: {}: expected format names, got {}", path, key, json_brief(x));
      out.push_back(x.get<std::string>());
    }
    return out;
  };
  p.k = names("k");
  p.v = names("v");
  p.centred = j.value("centred", true);
  p.sink = j.value("sink", false);
  if (p.k.size() != p.v.size()) fail("{}: k has {} layers, v has {}", path, p.k.size(), p.v.size());
  return p;
}

std::string kv_layer_plan_json(const KVLayerPlan& p) {
  return Json{{"k", p.k}, {"v", p.v}, {"centred", p.centred}, {"sink", p.sink}}.dump();
}

KVLayerPlan kv_auto_plan(const KVCalib& c, const KVShape& s, double ratio, bool sink) {
  if (c.k_kl.empty() || c.v_kl.empty())
    fail("--kv auto:{}: the calibration file has no sensitivities (run tqlm kv-calibrate with --sensitivity)",
         ratio);
  if (c.layers != s.layers) fail("--kv auto: calibration has {} layers, the model {}", c.layers, s.layers);
  // The sink copy costs at most one bf16 token per 256 (every layer side compressed).
  const int64_t budget = int64_t(double(4 * s.layers * s.kv_heads * s.head_dim) / ratio) -
                         (sink ? (4 * s.layers * s.kv_heads * s.head_dim + 255) / 256 : 0);
  std::vector<std::vector<Choice>> items;  // [layers * 2]: layer l keys, layer l values
  for (int64_t l = 0; l < s.layers; ++l) {
    items.push_back(choices(c.k_kl, l, s));
    items.push_back(choices(c.v_kl, l, s));
  }
  int64_t floor_bytes = 0;
  for (const auto& it : items) floor_bytes += it.front().bytes;
  if (floor_bytes > budget)
    fail("--kv auto:{}: even the smallest formats take {} bytes per token, over the budget of {}", ratio,
         floor_bytes, budget);
  // Lagrangian: each item takes argmin kl + lambda * bytes; bisect lambda for the smallest total within
  // budget.
  std::vector<size_t> pick(items.size());
  auto choose = [&](double lambda) {
    int64_t total = 0;
    for (size_t i = 0; i < items.size(); ++i) {
      size_t best = 0;
      for (size_t j = 1; j < items[i].size(); ++j)
        if (items[i][j].kl + lambda * double(items[i][j].bytes) <
            items[i][best].kl + lambda * double(items[i][best].bytes))
          best = j;
      pick[i] = best;
      total += items[i][best].bytes;
    }
    return total;
  };
  double lo = 0, hi = 1.0;
  while (choose(hi) > budget) hi *= 2;
  for (int it = 0; it < 100; ++it) {
    const double mid = 0.5 * (lo + hi);
    (choose(mid) > budget ? lo : hi) = mid;
  }
  int64_t total = choose(hi);
  // Greedy: spend what is left on the upgrade with the most KL saved per byte that still fits.
  for (;;) {
    double best_gain = 0;
    size_t bi = 0, bj = 0;
    for (size_t i = 0; i < items.size(); ++i)
      for (size_t j = pick[i] + 1; j < items[i].size(); ++j) {
        const int64_t extra = items[i][j].bytes - items[i][pick[i]].bytes;
        const double gain = (items[i][pick[i]].kl - items[i][j].kl) / double(extra);
        if (total + extra <= budget && gain > best_gain) best_gain = gain, bi = i, bj = j;
      }
    if (best_gain <= 0) break;
    total += items[bi][bj].bytes - items[bi][pick[bi]].bytes;
    pick[bi] = bj;
  }
  KVLayerPlan p;
  p.sink = sink;
  for (int64_t l = 0; l < s.layers; ++l) {
    p.k.push_back(items[size_t(2 * l)][pick[size_t(2 * l)]].name);
    p.v.push_back(items[size_t(2 * l + 1)][pick[size_t(2 * l + 1)]].name);
  }
  return p;
}

}  // namespace tqlm
