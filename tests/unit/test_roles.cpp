#include <gtest/gtest.h>

#include "quant/roles.h"

using namespace tqlm;

namespace {
void expect_role(const char* name, Role role, int layer) {
  TensorRole r = classify_tensor(name);
  EXPECT_EQ(role_name(r.role), role_name(role)) << name;
  EXPECT_EQ(r.layer, layer) << name;
}
}  // namespace

TEST(Roles, DenseLlamaQwen) {
  expect_role("model.embed_tokens.weight", Role::embed, -1);
  expect_role("lm_head.weight", Role::lm_head, -1);
  expect_role("model.norm.weight", Role::norm, -1);
  expect_role("model.layers.3.input_layernorm.weight", Role::norm, 3);
  expect_role("model.layers.3.post_attention_layernorm.weight", Role::norm, 3);
  expect_role("model.layers.12.self_attn.q_proj.weight", Role::attn_q, 12);
  expect_role("model.layers.12.self_attn.q_proj.bias", Role::attn_q, 12);
  expect_role("model.layers.12.self_attn.k_proj.scales", Role::attn_k, 12);
  expect_role("model.layers.12.self_attn.v_proj.biases", Role::attn_v, 12);
  expect_role("model.layers.12.self_attn.o_proj.weight", Role::attn_o, 12);
  expect_role("model.layers.0.self_attn.q_norm.weight", Role::norm, 0);
  expect_role("model.layers.0.mlp.gate_proj.weight", Role::mlp_gate, 0);
  expect_role("model.layers.0.mlp.up_proj.weight", Role::mlp_up, 0);
  expect_role("model.layers.0.mlp.down_proj.weight", Role::mlp_down, 0);
}

TEST(Roles, MoE) {
  expect_role("model.layers.1.mlp.gate.weight", Role::router, 1);  // qwen3_moe
  expect_role("model.layers.1.mlp.switch_mlp.gate_proj.weight", Role::expert_gate, 1);
  expect_role("model.layers.1.mlp.experts.7.down_proj.weight", Role::expert_down, 1);  // HF qwen3_moe
  expect_role("model.layers.1.mlp.shared_expert.up_proj.weight", Role::shared_up, 1);  // qwen2_moe
  expect_role("model.layers.1.mlp.shared_expert_gate.weight", Role::router, 1);
  expect_role("model.layers.5.block_sparse_moe.gate.weight", Role::router, 5);  // mixtral/minimax
  expect_role("model.layers.5.block_sparse_moe.e_score_correction_bias", Role::router, 5);
  expect_role("model.layers.5.block_sparse_moe.experts.0.w1.weight", Role::expert_gate, 5);
  expect_role("model.layers.5.block_sparse_moe.experts.0.w3.weight", Role::expert_up, 5);
  expect_role("model.layers.5.block_sparse_moe.experts.0.w2.weight", Role::expert_down, 5);
  expect_role("model.layers.5.block_sparse_moe.experts.0.w2.weight_scale_inv", Role::expert_down, 5);
  expect_role("model.layers.5.block_sparse_moe.switch_mlp.up_proj.weight", Role::expert_up, 5);
  expect_role("model.layers.5.something_new.weight", Role::other, 5);
  EXPECT_EQ(classify_tensor("model.layers.5.block_sparse_moe.experts.17.w1.weight").expert, 17);
}

TEST(Roles, NamesRoundTrip) {
  for (int i = 0; i < kNumRoles; ++i) EXPECT_EQ(role_from_name(role_name(Role(i))), Role(i));
  EXPECT_FALSE(role_from_name("attention").has_value());
}
