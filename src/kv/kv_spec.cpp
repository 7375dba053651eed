#include "kv/kv_spec.h"

#include <string>

#include "core/error.h"

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
  return b == 2 || b == 3 || b == 4 || b == 8;
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
  return "bf16 (default), f16, f32, q8, turbo2, turbo3, turbo4, turbo8, turbo{K}v{V} with K, V in {2,3,4,8} "
         "(turbo4v2 = 4-bit keys, 2-bit values)";
}

std::vector<std::string> kv_plan_modes() {
  return {"bf16", "q8", "turbo8v4", "turbo4", "turbo4v3", "turbo4v2", "turbo3", "turbo3v2", "turbo2"};
}

KVLayout kv_layout(const KVSpec& spec, const KVShape& cfg) {
  KVLayout L;
  L.mode = spec.mode;
  L.layers = cfg.layers;
  L.kv_heads = cfg.kv_heads;
  L.head_dim = cfg.head_dim;
  const int64_t hd = cfg.head_dim;
  if (spec.boundary < 0) fail("--kv-boundary must be >= 0 (got {})", spec.boundary);

  KVSideFormat kf, vf;
  bool compressed = true;
  if (spec.mode == "bf16" || spec.mode == "f16" || spec.mode == "f32") {
    const KVCodes c = spec.mode == "bf16" ? KVCodes::BF16 : spec.mode == "f16" ? KVCodes::F16 : KVCodes::F32;
    kf = vf = float_side(c, hd);
    compressed = false;
  } else if (spec.mode == "q8") {
    kf = vf = KVSideFormat{KVCodes::Q8, 8, hd};
  } else if (int kb = 0, vb = 0; parse_turbo(spec.mode, kb, vb)) {
    if (!valid_turbo_bits(kb) || !valid_turbo_bits(vb))
      fail("--kv {}: TurboQuant bits must be 2, 3, 4 or 8 for keys and values (modes: {})", spec.mode,
           kv_modes_help());
    const int64_t rd = pow2_at_least(hd);
    kf = KVSideFormat{KVCodes::TURBO, kb, rd};
    vf = KVSideFormat{KVCodes::TURBO, vb, rd};
  } else {
    fail("unknown --kv mode '{}' (modes: {})", spec.mode, kv_modes_help());
  }
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
  return b;
}

double KVLayout::nominal_ratio() const {
  if (layers == 0) return 1.0;
  const size_t mid = size_t(layers / 2);  // a compressed layer whenever any exists
  return 32.0 / double(k[mid].bits + v[mid].bits);
}

}  // namespace tqlm
