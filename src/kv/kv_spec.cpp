#include "kv/kv_spec.h"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <string>

#include "core/error.h"
#include "kv/kv_alloc.h"
#include "kv/kv_calib.h"

namespace tqlm {

namespace {

int64_t pow2_at_least(int64_t n) {
  int64_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

KVSideFormat float_side(KVCodes c, int64_t hd) {
  return {c, c == KVCodes::F32 ? 32 : 16, hd};
}

bool valid_turbo_bits(int b) {
  return b == 2 || b == 3 || b == 4 || b == 5 || b == 6 || b == 8;
}

// "turbo{K}" or "turbo{K}v{V}" with one- or two-digit K, V (checked for validity by the caller).
bool parse_turbo(const std::string& m, int& kb, int& vb) {
  if (m.rfind("turbo", 0) != 0) return false;
  size_t i = 5;
  auto digits = [&](int& out) {
    const size_t start = i;
    out = 0;
    while (i < m.size() && i - start < 2 && m[i] >= '0' && m[i] <= '9') out = out * 10 + (m[i++] - '0');
    return i > start;
  };
  if (!digits(kb)) return false;
  vb = kb;
  if (i < m.size() && m[i] == 'v') {
    ++i;
    if (!digits(vb)) return false;
  }
  return i == m.size();
}

}  // namespace

std::string KVSideFormat::name() const {
  return base_name() + (centred ? "c" : "");
}

std::string KVSideFormat::base_name() const {
  switch (codes) {
    case KVCodes::F32:
      return "f32";
    case KVCodes::BF16:
      return "bf16";
    case KVCodes::F16:
      return "f16";
    case KVCodes::Q8:
      return "q8";
    case KVCodes::TURBO:
      return "turbo" + std::to_string(bits);
  }
  return "?";
}

std::string kv_modes_help() {
  return "bf16 (default), f16, f32, q8, turbo2, turbo3, turbo4, turbo8, turbo{K}v{V} with K, V in "
         "{2,3,4,5,6,8} "
         "(turbo4v2 = 4-bit keys, 2-bit values); a trailing c centres keys and values with --kv-calib's "
         "means "
         "(turbo4v2c); auto:R = bits per layer from --kv-calib's sensitivities at R times fewer bytes than "
         "bf16 "
         "(auto:3.5); FILE.json = per-layer formats";
}

KVSideFormat kv_side_format(const std::string& name, int64_t hd, const std::string& what) {
  if (name == "bf16" || name == "f16" || name == "f32")
    return float_side(name == "bf16" ? KVCodes::BF16 : name == "f16" ? KVCodes::F16 : KVCodes::F32, hd);
  if (name == "q8") return KVSideFormat{KVCodes::Q8, 8, hd};
  int kb = 0, vb = 0;
  if (parse_turbo(name, kb, vb) && kb == vb && valid_turbo_bits(kb))
    return KVSideFormat{KVCodes::TURBO, kb, pow2_at_least(hd)};
  fail("{}: unknown KV format '{}' (f32, bf16, f16, q8, turbo2, turbo3, turbo4, turbo5, turbo6, turbo8)",
       what, name);
}

std::vector<std::string> kv_plan_modes() {
  return {"bf16", "q8", "turbo8v4", "turbo4", "turbo4v3", "turbo4v2", "turbo3", "turbo3v2", "turbo2"};
}

namespace {

std::shared_ptr<const KVCalib> calib_for(const KVSpec& spec, const KVShape& cfg) {
  std::shared_ptr<const KVCalib> c = spec.calib;
  if (!c && spec.calib_path.empty())
    fail(
        "--kv {}: centred and auto modes need a calibration file: --kv-calib FILE (written by tqlm "
        "kv-calibrate)",
        spec.mode);
  if (!c) c = load_kv_calib(spec.calib_path);
  if (c->layers != cfg.layers || c->kv_heads != cfg.kv_heads || c->head_dim != cfg.head_dim)
    fail("--kv {}: the calibration is for {} layers x {} kv heads x {} dims, the model has {} x {} x {}",
         spec.mode, c->layers, c->kv_heads, c->head_dim, cfg.layers, cfg.kv_heads, cfg.head_dim);
  return c;
}

// "auto:3.5" or "auto:3.5x" -> 3.5 (a trailing "s": sink).
double auto_ratio(const std::string& m) {
  std::string r = m.substr(5);
  if (!r.empty() && r.back() == 's') r.pop_back();
  if (!r.empty() && r.back() == 'x') r.pop_back();
  char* end = nullptr;
  const double x = r.empty() ? 0 : std::strtod(r.c_str(), &end);
  if (r.empty() || *end || !(x > 1.0 && x < 100.0))
    fail("--kv {}: auto:R needs a compression ratio R in (1, 100), e.g. auto:3.5", m);
  return x;
}

KVLayout plan_layout(const KVSpec& spec, const KVShape& cfg, const KVLayerPlan& p) {
  if (int64_t(p.k.size()) != cfg.layers)
    fail("--kv {}: the plan has {} layers, the model {}", spec.mode, p.k.size(), cfg.layers);
  KVLayout L;
  L.mode = spec.mode;
  L.layers = cfg.layers;
  L.kv_heads = cfg.kv_heads;
  L.head_dim = cfg.head_dim;
  L.per_layer = true;
  L.sink = p.sink;
  bool any = false;
  for (int64_t l = 0; l < cfg.layers; ++l)
    for (int side = 0; side < 2; ++side) {
      KVSideFormat f = kv_side_format((side ? p.v : p.k)[size_t(l)], cfg.head_dim, "--kv " + spec.mode);
      f.centred = p.centred && (f.codes == KVCodes::Q8 || f.codes == KVCodes::TURBO) && kv_centre_side(side);
      any |= f.centred;
      (side ? L.v : L.k).push_back(f);
    }
  if (any) L.calib = calib_for(spec, cfg);
  return L;
}

}  // namespace

KVLayout kv_layout(const KVSpec& spec, const KVShape& cfg) {
  if (spec.boundary < 0) fail("--kv-boundary must be >= 0 (got {})", spec.boundary);
  if (spec.plan) return plan_layout(spec, cfg, *spec.plan);
  if (spec.mode.rfind("auto:", 0) == 0) {
    const double r = auto_ratio(spec.mode);
    return plan_layout(spec, cfg, kv_auto_plan(*calib_for(spec, cfg), cfg, r, spec.mode.back() == 's'));
  }
  if (spec.mode.size() > 5 && spec.mode.compare(spec.mode.size() - 5, 5, ".json") == 0)
    return plan_layout(spec, cfg, load_kv_layer_plan(spec.mode));
  KVLayout L;
  L.mode = spec.mode;
  L.layers = cfg.layers;
  L.kv_heads = cfg.kv_heads;
  L.head_dim = cfg.head_dim;
  const int64_t hd = cfg.head_dim;
  std::string base = spec.mode;
  L.sink = base.size() > 1 && base.back() == 's';
  if (L.sink) base.pop_back();
  const bool centred = base.size() > 1 && base.back() == 'c';
  if (centred) base.pop_back();

  KVSideFormat kf, vf;
  bool compressed = true;
  if (base == "bf16" || base == "f16" || base == "f32") {
    kf = vf = kv_side_format(base, hd, "--kv");
    compressed = false;
  } else if (base == "q8") {
    kf = vf = KVSideFormat{KVCodes::Q8, 8, hd};
  } else if (int kb = 0, vb = 0; parse_turbo(base, kb, vb)) {
    if (!valid_turbo_bits(kb) || !valid_turbo_bits(vb))
      fail("--kv {}: TurboQuant bits must be 2, 3, 4, 5, 6 or 8 for keys and values (modes: {})", spec.mode,
           kv_modes_help());
    const int64_t rd = pow2_at_least(hd);
    kf = KVSideFormat{KVCodes::TURBO, kb, rd};
    vf = KVSideFormat{KVCodes::TURBO, vb, rd};
  } else {
    fail("unknown --kv mode '{}' (modes: {})", spec.mode, kv_modes_help());
  }
  kf.centred = centred && kv_centre_side(0);
  vf.centred = centred && kv_centre_side(1);
  if (kf.centred || vf.centred) L.calib = calib_for(spec, cfg);
  L.boundary = compressed ? int(std::min<int64_t>(spec.boundary, cfg.layers / 2)) : 0;
  L.k.assign(size_t(cfg.layers), kf);
  L.v.assign(size_t(cfg.layers), vf);
  for (int64_t l = 0; l < cfg.layers; ++l)
    if (l < L.boundary || l >= cfg.layers - L.boundary)
      L.k[size_t(l)] = L.v[size_t(l)] = float_side(KVCodes::BF16, hd);
  return L;
}

int64_t KVLayout::bytes_per_token() const {
  int64_t b = 0;
  for (int64_t l = 0; l < layers; ++l)
    b += kv_heads * (k[size_t(l)].vector_bytes() + v[size_t(l)].vector_bytes());
  return b + (sink_bytes() + 255) / 256;
}

double KVLayout::nominal_ratio() const {
  if (layers == 0) return 1.0;
  if (per_layer) {
    double bits = 0;
    for (int64_t l = 0; l < layers; ++l) bits += k[size_t(l)].bits + v[size_t(l)].bits;
    return 32.0 * double(layers) / bits;
  }
  const size_t mid = size_t(layers / 2);  // a compressed layer whenever any exists
  return 32.0 / double(k[mid].bits + v[mid].bits);
}

int64_t KVLayout::sink_bytes() const {
  if (!sink) return 0;
  int64_t n = 0;
  for (const auto* side : {&k, &v})
    for (const KVSideFormat& f : *side)
      if (f.codes == KVCodes::Q8 || f.codes == KVCodes::TURBO) n += kv_heads * f.dim * 2;
  return n;
}

int64_t KVLayout::fixed_bytes() const {
  int64_t n = 0;
  for (int64_t l = 0; l < layers; ++l) n += k[size_t(l)].centred + v[size_t(l)].centred;
  return n * kv_heads * head_dim * 4;
}

std::string KVLayout::formats_summary() const {
  if (!per_layer) return k[size_t(layers / 2)].name() + "/" + v[size_t(layers / 2)].name();
  std::string out;
  for (int side = 0; side < 2; ++side) {
    std::map<std::string, int> n;
    for (const auto& f : side ? v : k) ++n[f.base_name()];
    out.append(side ? " V " : "K ");
    bool first = true;
    for (const auto& [name, c] : n) {
      if (!first) out.push_back('+');
      out.append(std::to_string(c)).push_back('x');
      out.append(name);
      first = false;
    }
  }
  return out;
}

}  // namespace tqlm
