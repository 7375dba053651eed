// Tensor roles: what a weight does in the model, derived from its name. Policies match on roles and
// `tqlm inspect` reports per role. The same names cover llama, qwen2/3, qwen3_moe, mixtral and minimax_m2,
// in both HF (experts.E.w1) and MLX (switch_mlp.gate_proj) spellings.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace tqlm {

enum class Role {
  embed,
  lm_head,
  attn_q,
  attn_k,
  attn_v,
  attn_o,
  router,
  expert_gate,
  expert_up,
  expert_down,
  shared_gate,
  shared_up,
  shared_down,
  mlp_gate,
  mlp_up,
  mlp_down,
  norm,
  other
};
constexpr int kNumRoles = int(Role::other) + 1;

std::string_view role_name(Role r);
std::optional<Role> role_from_name(std::string_view s);

struct TensorRole {
  Role role = Role::other;
  int layer = -1;   // transformer layer index, -1 for global tensors
  int expert = -1;  // HF per-expert tensors (experts.E.*), else -1
};

// `name` may be a tensor name (with .weight/.scales/.biases/.bias) or a module path.
TensorRole classify_tensor(std::string_view name);

// Strips a trailing .weight/.scales/.biases/.bias to give the module path.
std::string module_path(std::string_view tensor_name);

}  // namespace tqlm
