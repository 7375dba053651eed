#include "quant/roles.h"

#include <array>
#include <cctype>
#include <vector>

namespace tqlm {

namespace {
constexpr std::array<std::string_view, kNumRoles> kNames = {
    "embed",       "lm_head",     "attn_q",    "attn_k",      "attn_v",      "attn_o",
    "router",      "expert_gate", "expert_up", "expert_down", "shared_gate", "shared_up",
    "shared_down", "mlp_gate",    "mlp_up",    "mlp_down",    "norm",        "other"};

bool ends_with(std::string_view s, std::string_view suf) {
  return s.size() >= suf.size() && s.substr(s.size() - suf.size()) == suf;
}

std::vector<std::string_view> split_dots(std::string_view s) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i)
    if (i == s.size() || s[i] == '.') {
      parts.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  return parts;
}

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

int to_int(std::string_view s) {
  int v = 0;
  for (char c : s) v = v * 10 + (c - '0');
  return v;
}

// gate/up/down from the projection's own name (HF w1/w3/w2 are gate/up/down).
int gud(std::string_view leaf) {
  if (leaf == "gate_proj" || leaf == "w1") return 0;
  if (leaf == "up_proj" || leaf == "w3") return 1;
  if (leaf == "down_proj" || leaf == "w2") return 2;
  return -1;
}
}  // namespace

std::string_view role_name(Role r) {
  return kNames[size_t(r)];
}

std::optional<Role> role_from_name(std::string_view s) {
  for (int i = 0; i < kNumRoles; ++i)
    if (kNames[size_t(i)] == s) return Role(i);
  return std::nullopt;
}

std::string module_path(std::string_view n) {
  for (std::string_view suf : {".weight_scale_inv", ".weight", ".scales", ".biases", ".bias"})
    if (ends_with(n, suf)) return std::string(n.substr(0, n.size() - suf.size()));
  return std::string(n);
}

TensorRole classify_tensor(std::string_view name) {
  TensorRole r;
  const std::string mod = module_path(name);
  auto parts = split_dots(mod);
  for (size_t i = 0; i + 1 < parts.size(); ++i)
    if (parts[i] == "layers" && all_digits(parts[i + 1])) {
      r.layer = to_int(parts[i + 1]);
      break;
    }
  for (size_t i = 0; i + 1 < parts.size(); ++i)
    if (parts[i] == "experts" && all_digits(parts[i + 1])) r.expert = to_int(parts[i + 1]);
  const std::string_view leaf = parts.back();
  auto has = [&](std::string_view p) {
    for (auto x : parts)
      if (x == p) return true;
    return false;
  };

  if (leaf == "embed_tokens" || leaf == "wte" || leaf == "tok_embeddings")
    r.role = Role::embed;
  else if (leaf == "lm_head" || leaf == "output")
    r.role = Role::lm_head;
  else if (leaf.find("norm") != std::string_view::npos)
    r.role = Role::norm;
  else if (leaf == "q_proj")
    r.role = Role::attn_q;
  else if (leaf == "k_proj")
    r.role = Role::attn_k;
  else if (leaf == "v_proj")
    r.role = Role::attn_v;
  else if (leaf == "o_proj")
    r.role = Role::attn_o;
  else if (leaf == "e_score_correction_bias" || leaf == "shared_expert_gate" ||
           (leaf == "gate" && (has("mlp") || has("block_sparse_moe"))))
    r.role = Role::router;
  else if (int k = gud(leaf); k >= 0) {
    if (has("experts") || has("switch_mlp"))
      r.role = Role(int(Role::expert_gate) + k);
    else if (has("shared_expert") || has("shared_experts") || has("shared_mlp"))
      r.role = Role(int(Role::shared_gate) + k);
    else if (has("mlp") || has("feed_forward") || has("block_sparse_moe"))
      r.role = Role(int(Role::mlp_gate) + k);
  }
  return r;
}

}  // namespace tqlm
