#include "quant/policy.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json.h"
#include "io/checkpoint.h"
#include "quant/affine.h"

namespace tqlm {

using json = nlohmann::json;

bool LayerSelector::matches(int layer, int n) const {
  switch (kind) {
    case all:
      return true;
    case global:
      return layer < 0;
    case first:
      return layer >= 0 && layer < a;
    case last:
      return layer >= 0 && layer >= n - a;
    case range:
      return layer >= a && layer <= b;
  }
  return false;
}

std::string LayerSelector::str() const {
  switch (kind) {
    case all:
      return "all";
    case global:
      return "global";
    case first:
      return "first:" + std::to_string(a);
    case last:
      return "last:" + std::to_string(a);
    case range:
      return std::to_string(a) + "-" + std::to_string(b);
  }
  return "?";
}

namespace {

LayerSelector parse_selector(const std::string& s, const std::string& where) {
  LayerSelector sel;
  auto num = [&](const std::string& t) {
    if (t.empty() || t.size() > 6 || t.find_first_not_of("0123456789") != std::string::npos)
      fail("{}: layer selector '{}' is not all, global, first:N, last:N, N or A-B (N < 1000000)", where, s);
    return std::stoi(t);
  };
  if (s == "all")
    sel.kind = LayerSelector::all;
  else if (s == "global")
    sel.kind = LayerSelector::global;
  else if (s.rfind("first:", 0) == 0)
    sel.kind = LayerSelector::first, sel.a = num(s.substr(6));
  else if (s.rfind("last:", 0) == 0)
    sel.kind = LayerSelector::last, sel.a = num(s.substr(5));
  else if (auto d = s.find('-'); d != std::string::npos)
    sel.kind = LayerSelector::range, sel.a = num(s.substr(0, d)), sel.b = num(s.substr(d + 1));
  else
    sel.kind = LayerSelector::range, sel.a = sel.b = num(s);
  return sel;
}

DType parse_keep(const std::string& s, const std::string& where) {
  if (s == "f16" || s == "float16") return DType::F16;
  if (s == "bf16" || s == "bfloat16") return DType::BF16;
  if (s == "f32" || s == "float32") return DType::F32;
  fail("{}: keep '{}' must be f16, bf16 or f32", where, s);
}

void check_bits(int bits, const std::string& where) {
  if (!affine_bits_supported(bits)) fail("{}: bits {} not in {{2, 3, 4, 5, 6, 8}}", where, bits);
}

PolicyRule rule(std::vector<Role> roles, std::vector<std::string> layers, int bits, int gs = 0,
                std::optional<DType> keep = std::nullopt) {
  PolicyRule r;
  r.roles = std::move(roles);
  for (const auto& l : layers) r.layers.push_back(parse_selector(l, "preset"));
  r.bits = bits;
  r.group_size = gs;
  r.keep = keep;
  return r;
}

const std::vector<Role> kAttn = {Role::attn_q, Role::attn_k, Role::attn_v, Role::attn_o};

}  // namespace

std::vector<std::string> Policy::preset_names() {
  return {"config-i",  "config-i-dense", "uniform-2",     "uniform-3",     "uniform-4",
          "uniform-8", "uniform-2-all",  "uniform-3-all", "uniform-4-all", "uniform-8-all",
          "mixed-2-6", "mixed-3-4",      "mixed-3-6",     "mixed-4-6"};
}

bool Policy::router_kept_8bit(const std::string& t) {
  return t == "qwen3_moe" || t == "minimax" || t == "minimax_m2";
}

Policy Policy::preset(const std::string& n) {
  Policy p;
  p.name = n;
  if (n == "config-i") {
    // The card's MoE policy: boundary layers (first 2, last 2) 8-bit for every weight, experts gate/up
    // 2-bit and down 3-bit, attention 4-bit, router kept f16, embeddings and head 8-bit; group 64.
    p.default_bits = 4;
    p.default_group = 64;
    p.rules = {rule({Role::router}, {}, 0, 0, DType::F16), rule({}, {"first:2", "last:2"}, 8),
               rule({Role::embed, Role::lm_head}, {}, 8),  rule({Role::expert_gate, Role::expert_up}, {}, 2),
               rule({Role::expert_down}, {}, 3),           rule(kAttn, {}, 4)};
  } else if (n == "config-i-dense") {
    // TurboQuant+ dense Config-I mapped onto MLX affine at equal bits per weight: boundary 2+2 q8_0 ->
    // 8-bit g32 (8.5 -> 9.0 bpw), attention and ffn gate/up TQ4_1S (5.0 bpw) -> 4-bit g32 (5.0 bpw), ffn_down
    // Q4_K (4.5 bpw) -> 4-bit g64 (4.5 bpw), embeddings/head q8_0 -> 8-bit g32; router kept f16.
    p.default_bits = 4;
    p.default_group = 32;
    p.rules = {rule({Role::router}, {}, 0, 0, DType::F16), rule({}, {"first:2", "last:2"}, 8, 32),
               rule({Role::embed, Role::lm_head}, {}, 8, 32),
               rule({Role::mlp_down, Role::expert_down, Role::shared_down}, {}, 4, 64), rule({}, {}, 4, 32)};
  } else if (n.rfind("uniform-", 0) == 0 && (n.size() == 9 || (n.size() == 13 && n.substr(9) == "-all"))) {
    // uniform-N: as mlx_lm.convert -q --q-bits N (the model's predicate); uniform-N-all: every weight at N
    p.default_bits = n[8] - '0';
    check_bits(p.default_bits, n);
    p.default_group = 64;
    p.model_predicate = n.size() == 9;
  } else if (n == "mixed-2-6" || n == "mixed-3-4" || n == "mixed-3-6" || n == "mixed-4-6") {
    p.mixed_low = n[6] - '0';
    p.mixed_high = n[8] - '0';
    p.default_bits = p.mixed_low;
    p.default_group = 64;
  } else {
    std::string list;
    for (const auto& s : preset_names()) list += (list.empty() ? "" : ", ") + s;
    fail("unknown policy '{}' (presets: {}; or a JSON file)", n, list);
  }
  return p;
}

namespace {
// "roles" / "layers": a string or an array of strings.
std::vector<std::string> string_list(const json& v, const std::string& where) {
  if (v.is_string()) return {v.get<std::string>()};
  if (!v.is_array()) fail("{}: expected a string or an array of strings, got {}", where, json_brief(v));
  std::vector<std::string> out;
  for (const auto& x : v) {
    if (!x.is_string()) fail("{}: expected strings, got {}", where, json_brief(x));
    out.push_back(x.get<std::string>());
  }
  return out;
}
// bits / group_size: integers in a small range, never wrapped modulo 2^32.
int small_int(const json& obj, const char* key, int dflt, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end()) return dflt;
  return int(json_int(*it, where + ": '" + key + "'", 0, 1024));
}
}  // namespace

Policy Policy::from_json_file(const std::string& path) {
  return from_json(read_json_file(path), path);
}

Policy Policy::from_json(const json& j, const std::string& path) {
  if (!j.is_object()) fail("{}: a policy must be a JSON object", path);
  Policy p;
  p.source = path;
  p.name = std::filesystem::path(path).stem().string();
  if (auto n = j.find("name"); n != j.end()) {
    if (!n->is_string()) fail("{}: 'name' must be a string", path);
    p.name = n->get<std::string>();
  }
  for (auto it = j.begin(); it != j.end(); ++it)
    if (it.key() != "name" && it.key() != "default" && it.key() != "rules")
      fail("{}: unknown field '{}' (name, default, rules)", path, it.key());
  if (auto d = j.find("default"); d != j.end()) {
    if (!d->is_object()) fail("{}: 'default' must be an object", path);
    p.default_bits = small_int(*d, "bits", 4, path + ": default");
    p.default_group = small_int(*d, "group_size", 64, path + ": default");
  }
  check_bits(p.default_bits, path + ": default");
  if (!affine_group_size_supported(p.default_group))
    fail("{}: default: group_size {} not in {{32, 64, 128}}", path, p.default_group);
  auto rs = j.find("rules");
  if (rs != j.end() && !rs->is_array()) fail("{}: 'rules' must be an array", path);
  if (rs != j.end())
    for (size_t i = 0; i < rs->size(); ++i) {
      const json& r = (*rs)[i];
      const std::string where = fmt::format("{}: rules[{}]", path, i);
      if (!r.is_object()) fail("{} must be an object", where);
      for (auto it = r.begin(); it != r.end(); ++it)
        if (it.key() != "roles" && it.key() != "layers" && it.key() != "bits" && it.key() != "group_size" &&
            it.key() != "keep")
          fail("{}: unknown field '{}'", where, it.key());
      PolicyRule pr;
      if (auto ro = r.find("roles"); ro != r.end()) {
        for (const auto& n : string_list(*ro, where + ": roles")) {
          auto role = role_from_name(n);
          if (!role) {
            std::string all;
            for (int k = 0; k < kNumRoles; ++k) all += (k ? ", " : "") + std::string(role_name(Role(k)));
            fail("{}: unknown role '{}' (roles: {})", where, n, all);
          }
          pr.roles.push_back(*role);
        }
      }
      if (auto la = r.find("layers"); la != r.end())
        for (const auto& s : string_list(*la, where + ": layers"))
          pr.layers.push_back(parse_selector(s, where));
      if (auto k = r.find("keep"); k != r.end()) {
        if (!k->is_string()) fail("{}: 'keep' must be a string (f16, bf16 or f32)", where);
        if (r.contains("bits") || r.contains("group_size"))
          fail("{}: 'keep' and 'bits' / 'group_size' exclude each other", where);
        pr.keep = parse_keep(k->get<std::string>(), where);
      } else {
        if (!r.contains("bits")) fail("{}: needs 'bits' or 'keep'", where);
        pr.bits = small_int(r, "bits", 0, where);
        check_bits(pr.bits, where);
        pr.group_size = small_int(r, "group_size", 0, where);
        if (r.contains("group_size") && !affine_group_size_supported(pr.group_size))
          fail("{}: group_size {} not in {{32, 64, 128}}", where, pr.group_size);
      }
      p.rules.push_back(std::move(pr));
    }
  return p;
}

Policy Policy::load(const std::string& s, int group_override) {
  std::error_code ec;
  Policy p = std::filesystem::is_regular_file(s, ec) ? from_json_file(s) : preset(s);
  if (group_override) {
    if (!affine_group_size_supported(group_override))
      fail("--group-size {} not in {{32, 64, 128}}", group_override);
    p.default_group = group_override;
    for (auto& r : p.rules)
      if (r.bits) r.group_size = group_override;
  }
  return p;
}

QuantDecision Policy::decide(Role role, int layer, int n_layers, int64_t in_dim, DType src) const {
  QuantDecision d;
  d.keep = src;
  if (role == Role::norm || in_dim <= 0) return d;  // norms and 1-D tensors stay float
  int bits = default_bits, gs = default_group;
  bool keep = false;
  if (mixed_low) {
    // mlx_lm: high bits for v_proj and down projections in the layers use_more_bits picks, and lm_head
    const int L = n_layers;
    const bool more =
        layer >= 0 && (layer < L / 8 || layer >= 7 * L / 8 || ((layer - L / 8) % 3 + 3) % 3 == 2);
    const bool hi =
        role == Role::lm_head || (more && (role == Role::attn_v || role == Role::mlp_down ||
                                           role == Role::expert_down || role == Role::shared_down));
    bits = hi ? mixed_high : mixed_low;
  } else {
    for (size_t i = 0; i < rules.size(); ++i) {
      const PolicyRule& r = rules[i];
      if (!r.roles.empty() && std::find(r.roles.begin(), r.roles.end(), role) == r.roles.end()) continue;
      if (!r.layers.empty() && std::none_of(r.layers.begin(), r.layers.end(),
                                            [&](const auto& s) { return s.matches(layer, n_layers); }))
        continue;
      d.rule = int(i);
      if (r.keep) {
        keep = true;
        d.keep = *r.keep;
      } else {
        bits = r.bits;
        if (r.group_size) gs = r.group_size;
      }
      break;
    }
  }
  if (keep) return d;
  if (in_dim % gs != 0) {
    int fb = 0;
    for (int g : {128, 64, 32})
      if (in_dim % g == 0) {
        fb = g;
        break;
      }
    if (!fb) {
      d.note = fmt::format("input dim {} not divisible by 32: kept", in_dim);
      return d;
    }
    d.note = fmt::format("group {} does not divide input dim {}: group {}", gs, in_dim, fb);
    gs = fb;
  }
  d.quantize = true;
  d.bits = bits;
  d.group_size = gs;
  return d;
}

}  // namespace tqlm
