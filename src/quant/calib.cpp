#include "quant/calib.h"

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/files.h"
#include "io/safetensors.h"

namespace tqlm {

namespace {

bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

// The stored key of the input that `module` reads (k/v read q's input, up reads gate's).
std::string input_key(std::string m) {
  for (const char* p : {"self_attn.k_proj", "self_attn.v_proj"})
    if (ends_with(m, p)) return m.substr(0, m.size() - 6) + "q_proj";
  if (ends_with(m, "up_proj")) return m.substr(0, m.size() - 7) + "gate_proj";
  return m;
}

}  // namespace

std::string calib_key(const ModelConfig& c, int64_t layer, LinearSite site) {
  if (site == LinearSite::lm_head) return "lm_head";
  const std::string p = "model.layers." + std::to_string(layer) + ".";
  switch (site) {
    case LinearSite::attn_qkv:
      return p + "self_attn.q_proj";
    case LinearSite::attn_o:
      return p + "self_attn.o_proj";
    case LinearSite::mlp_gate_up:
      return p + "mlp.gate_proj";
    case LinearSite::mlp_down:
      return p + "mlp.down_proj";
    case LinearSite::router:
      return p + c.moe_prefix + ".gate";
    case LinearSite::expert_gate_up:
      return p + c.moe_prefix + ".switch_mlp.gate_proj";
    case LinearSite::expert_down:
      return p + c.moe_prefix + ".switch_mlp.down_proj";
    case LinearSite::lm_head:
      break;
  }
  return "lm_head";
}

void CalibObserver::observe(int64_t layer, LinearSite site, int64_t expert, const float* rows, int64_t n,
                            int64_t in, const float* row_weights) {
  const bool per_expert = site == LinearSite::expert_gate_up || site == LinearSite::expert_down;
  stats_.add(calib_key(cfg_, layer, site), per_expert ? expert : -1, per_expert ? cfg_.n_experts : 0, rows, n,
             in, row_weights);
}

void CalibStats::add(const std::string& key, int64_t e, int64_t experts, const float* rows, int64_t n,
                     int64_t in, const float* row_w) {
  CalibEntry& c = inputs[key];
  if (c.in == 0) {
    c.experts = experts;
    c.in = in;
    c.sumsq.assign(size_t(std::max<int64_t>(1, experts) * in), 0.0);
    c.tokens.assign(size_t(std::max<int64_t>(1, experts)), 0);
  }
  if (c.in != in || c.experts != experts || e >= std::max<int64_t>(1, experts))
    fail("calibration: input '{}' changed shape ({} channels, {} experts; now {}, {})", key, c.in, c.experts,
         in, experts);
  double* acc = &c.sumsq[size_t(std::max<int64_t>(0, e) * in)];  // [in]
  for (int64_t t = 0; t < n; ++t) {
    const double rw = row_w ? double(row_w[t]) * double(row_w[t]) : 1.0;
    for (int64_t j = 0; j < in; ++j) acc[j] += rw * double(rows[t * in + j]) * double(rows[t * in + j]);
  }
  c.tokens[size_t(std::max<int64_t>(0, e))] += n;
}

const CalibEntry* CalibStats::find(const std::string& module) const {
  auto it = inputs.find(input_key(module));
  return it == inputs.end() ? nullptr : &it->second;
}

std::vector<float> CalibStats::importance(const std::string& module, int64_t expert) const {
  const CalibEntry* c = find(module);
  if (!c) return {};
  std::vector<float> out(size_t(c->in), 0.0f);  // [in]
  const int64_t E = std::max<int64_t>(1, c->experts);
  const bool one = expert >= 0 && expert < E && c->tokens[size_t(expert)] > 0;
  int64_t n = 0;
  for (int64_t e = 0; e < E; ++e)
    if (!one || e == expert) n += c->tokens[size_t(e)];
  if (n == 0) return std::vector<float>(size_t(c->in), 1.0f);  // never reached: uniform
  for (int64_t e = 0; e < E; ++e)
    if (!one || e == expert)
      for (int64_t j = 0; j < c->in; ++j)
        out[size_t(j)] += float(c->sumsq[size_t(e * c->in + j)] / double(n));
  return out;
}

std::vector<double> CalibStats::energy(const std::string& module, int64_t expert) const {
  const CalibEntry* c = find(module);
  if (!c) return {};
  std::vector<double> out(size_t(c->in), 0.0);  // [in]
  const int64_t E = std::max<int64_t>(1, c->experts);
  for (int64_t e = 0; e < E; ++e)
    if (expert < 0 || e == expert)
      for (int64_t j = 0; j < c->in; ++j) out[size_t(j)] += c->sumsq[size_t(e * c->in + j)];
  return out;
}

void CalibStats::save(const std::string& path) const {
  nlohmann::json h = nlohmann::json::object();
  nlohmann::json md = {{"format", "tqlm-calib"}, {"version", "1"}, {"tokens", std::to_string(tokens)}};
  for (const auto& [k, v] : meta) md[k] = v;
  h["__metadata__"] = md;
  std::string data;
  auto put = [&](const std::string& name, const char* dt, std::vector<int64_t> shape, const void* p,
                 size_t nb) {
    h[name] = {{"dtype", dt}, {"shape", shape}, {"data_offsets", {data.size(), data.size() + nb}}};
    data.append(static_cast<const char*>(p), nb);
  };
  for (const auto& [k, c] : inputs) {
    const int64_t E = std::max<int64_t>(1, c.experts);
    put(k + ".sumsq", "F64", c.experts ? std::vector<int64_t>{E, c.in} : std::vector<int64_t>{c.in},
        c.sumsq.data(), c.sumsq.size() * 8);
    put(k + ".tokens", "I64", {E}, c.tokens.data(), c.tokens.size() * 8);
  }
  std::string head = h.dump();
  head.append((8 - head.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  const uint64_t n = head.size();
  std::memcpy(out.data(), &n, 8);
  write_file_atomic(path, out + head + data, "calibration statistics");
}

CalibStats CalibStats::load(const std::string& path) {
  SafetensorsFile f(path);
  const auto& md = f.header().metadata;
  auto fmt_it = md.find("format");
  if (fmt_it == md.end() || fmt_it->second != "tqlm-calib")
    fail(
        "{}: not a calibration statistics file (__metadata__.format is not 'tqlm-calib'; make one with "
        "tqlm calibrate)",
        path);
  if (auto v = md.find("version"); v == md.end() || v->second != "1")
    fail("{}: calibration statistics version '{}' is not supported (1)", path,
         v == md.end() ? "" : v->second);
  CalibStats s;
  for (const auto& [k, v] : md)
    if (k != "format" && k != "version" && k != "tokens") s.meta[k] = v;
  try {
    s.tokens = std::stoll(md.count("tokens") ? md.at("tokens") : "0");
  } catch (const std::exception&) {
    fail("{}: __metadata__.tokens is not a number", path);
  }
  std::map<std::string, const TensorView*> sq, tk;
  for (const TensorView& t : f.tensors()) {
    if (ends_with(t.name, ".sumsq"))
      sq[t.name.substr(0, t.name.size() - 6)] = &t;
    else if (ends_with(t.name, ".tokens"))
      tk[t.name.substr(0, t.name.size() - 7)] = &t;
    else
      fail("{}: unexpected tensor '{}' (only <module>.sumsq and <module>.tokens)", path, t.name);
  }
  for (const auto& [k, t] : sq) {
    auto it = tk.find(k);
    if (it == tk.end()) fail("{}: '{}.sumsq' has no '{}.tokens'", path, k, k);
    const TensorView& c = *it->second;
    if (t->dtype != DType::F64 || c.dtype != DType::I64 || t->shape.empty() || t->shape.size() > 2 ||
        c.shape.size() != 1 || c.shape[0] != (t->shape.size() == 2 ? t->shape[0] : 1))
      fail("{}: '{}': sumsq must be F64 [in] or [E, in] and tokens I64 [1] or [E] (got {} {}, {} {})", path,
           k, dtype_name(t->dtype), shape_str(t->shape), dtype_name(c.dtype), shape_str(c.shape));
    CalibEntry e;
    e.experts = t->shape.size() == 2 ? t->shape[0] : 0;
    e.in = t->shape.back();
    e.sumsq.resize(size_t(t->numel()));
    e.tokens.resize(size_t(c.numel()));
    std::memcpy(e.sumsq.data(), t->data, t->nbytes);
    std::memcpy(e.tokens.data(), c.data, c.nbytes);
    for (double v : e.sumsq)
      if (!(v >= 0) || !std::isfinite(v))
        fail("{}: '{}.sumsq' holds a negative or non-finite value", path, k);
    for (int64_t v : e.tokens)
      if (v < 0) fail("{}: '{}.tokens' holds a negative count", path, k);
    s.inputs[k] = std::move(e);
  }
  for (const auto& [k, t] : tk)
    if (!sq.count(k)) fail("{}: '{}.tokens' has no '{}.sumsq'", path, k, k);
  return s;
}

}  // namespace tqlm
