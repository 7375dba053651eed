#include "kv/kv_calib.h"

#include <cmath>
#include <cstdlib>
#include <mutex>

#include "core/error.h"
#include "core/files.h"
#include "core/json.h"

namespace tqlm {

namespace {

using Json = nlohmann::json;

std::vector<float> floats(const Json& j, const std::string& what, size_t n) {
  if (!j.is_array() || j.size() != n) fail("{}: expected {} numbers", what, n);
  std::vector<float> v;
  v.reserve(n);
  for (const auto& x : j) {
    if (!x.is_number()) fail("{}: expected numbers, got {}", what, json_brief(x));
    v.push_back(x.get<float>());
    if (!std::isfinite(v.back())) fail("{}: non-finite value", what);
  }
  return v;
}

std::map<int, std::vector<double>> kl_table(const Json& j, const std::string& what, int64_t layers) {
  std::map<int, std::vector<double>> t;
  if (j.is_null()) return t;
  if (!j.is_object()) fail("{}: expected an object of bits -> [layers] KL", what);
  for (const auto& [k, v] : j.items()) {
    const int bits = std::atoi(k.c_str());
    if (bits < 2 || bits > 8 || bits == 7) fail("{}: bits '{}' not in 2, 3, 4, 5, 6, 8", what, k);
    const std::vector<float> f = floats(v, what + "." + k, size_t(layers));
    t[bits].assign(f.begin(), f.end());
  }
  return t;
}

Json kl_json(const std::map<int, std::vector<double>>& t) {
  Json j = Json::object();
  for (const auto& [b, v] : t) j[std::to_string(b)] = v;
  return j;
}

}  // namespace

std::shared_ptr<const KVCalib> load_kv_calib(const std::string& path) {
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<const KVCalib>> cache;
  std::lock_guard<std::mutex> lock(mu);
  if (auto it = cache.find(path); it != cache.end()) return it->second;
  const Json j = read_json_file_limited<Json>(path, 8);
  auto c = std::make_shared<KVCalib>();
  if (!j.is_object() || j.value("format", "") != "tqlm-kv-calib-1")
    fail("{}: not a tqlm KV calibration file (format tqlm-kv-calib-1; write one with tqlm kv-calibrate)",
         path);
  c->layers = json_int(j.at("layers"), path + ": layers", 1, 1 << 16);
  c->kv_heads = json_int(j.at("kv_heads"), path + ": kv_heads", 1, 1 << 12);
  c->head_dim = json_int(j.at("head_dim"), path + ": head_dim", 1, 1 << 14);
  c->rotary_dim = json_int(j.at("rotary_dim"), path + ": rotary_dim", 0, c->head_dim);
  c->rope_traditional = j.value("rope_traditional", false);
  c->rope_inv_freq = floats(j.at("rope_inv_freq"), path + ": rope_inv_freq", size_t(c->rotary_dim / 2));
  const size_t n = size_t(c->layers * c->kv_heads * c->head_dim);
  c->k_mean = floats(j.at("k_mean"), path + ": k_mean", n);
  c->v_mean = floats(j.at("v_mean"), path + ": v_mean", n);
  c->source = j.value("source", "");
  c->kl_tokens = j.contains("kl_tokens") ? json_int(j.at("kl_tokens"), path + ": kl_tokens", 0) : 0;
  c->k_kl = kl_table(j.value("k_kl", Json()), path + ": k_kl", c->layers);
  c->v_kl = kl_table(j.value("v_kl", Json()), path + ": v_kl", c->layers);
  cache[path] = c;
  return c;
}

void save_kv_calib(const KVCalib& c, const std::string& path) {
  Json j = {{"format", "tqlm-kv-calib-1"},
            {"source", c.source},
            {"layers", c.layers},
            {"kv_heads", c.kv_heads},
            {"head_dim", c.head_dim},
            {"rotary_dim", c.rotary_dim},
            {"rope_traditional", c.rope_traditional},
            {"rope_inv_freq", c.rope_inv_freq},
            {"k_mean", c.k_mean},
            {"v_mean", c.v_mean},
            {"kl_tokens", c.kl_tokens},
            {"k_kl", kl_json(c.k_kl)},
            {"v_kl", kl_json(c.v_kl)}};
  write_file_atomic(path, j.dump() + "\n", "KV calibration");
}

std::vector<uint8_t> kv_slow_dims(const KVCalib& c, double min_period) {
  std::vector<uint8_t> keep(size_t(c.head_dim), 1);
  const int64_t half = c.rotary_dim / 2;
  for (int64_t i = 0; i < half; ++i) {
    const double f = c.rope_inv_freq[size_t(i)];
    const bool slow = f <= 0 || 2 * M_PI / f >= min_period;
    const int64_t a = c.rope_traditional ? 2 * i : i, b = c.rope_traditional ? 2 * i + 1 : i + half;
    keep[size_t(a)] = keep[size_t(b)] = slow;
  }
  return keep;
}

bool kv_centre_side(int side) {
  const char* sides = std::getenv("TQLM_KV_CENTRE");
  const std::string s = sides ? sides : "k";
  if (s != "kv" && s != "k" && s != "v" && s != "none") fail("TQLM_KV_CENTRE={}: use k, kv, v or none", s);
  return s == "kv" || (side == 0 && s == "k") || (side == 1 && s == "v");
}

std::vector<float> kv_centre_vector(const KVCalib& c, int64_t layer, int side) {
  if (!kv_centre_side(side)) return {};
  const size_t n = size_t(c.kv_heads * c.head_dim);
  const std::vector<float>& m = side == 0 ? c.k_mean : c.v_mean;
  std::vector<float> out(m.begin() + ptrdiff_t(size_t(layer) * n),
                         m.begin() + ptrdiff_t(size_t(layer + 1) * n));
  const char* kd = std::getenv("TQLM_KV_CENTRE_KDIMS");
  const std::string dims = kd ? kd : "all";
  if (side == 0 && dims != "all") {
    if (dims.rfind("slow:", 0) != 0) fail("TQLM_KV_CENTRE_KDIMS={}: use all or slow:P (P tokens)", dims);
    const std::vector<uint8_t> keep = kv_slow_dims(c, std::atof(dims.c_str() + 5));
    for (size_t i = 0; i < n; ++i)
      if (!keep[i % size_t(c.head_dim)]) out[i] = 0.0f;
  }
  return out;
}

}  // namespace tqlm
