#include "quant/plan.h"

#include "core/error.h"

namespace tqlm {

DType config_float_dtype(const nlohmann::json& c) {
  for (const char* k : {"torch_dtype", "dtype"})
    if (auto it = c.find(k); it != c.end() && it->is_string()) {
      const std::string s = it->get<std::string>();
      if (s == "float16") return DType::F16;
      if (s == "float32") return DType::F32;
      if (s == "bfloat16") return DType::BF16;
    }
  return DType::BF16;
}

ConversionPlan plan_conversion(const ModelConfig& c, const Policy& policy, DType src) {
  ConversionPlan plan;
  plan.policy = policy.name;
  const int L = int(c.n_layers);
  auto add = [&](std::string module, Role role, int layer, Shape shape, DType dtype_1d = DType::BF16,
                 bool oned = false) {
    PlannedTensor t{std::move(module), role, layer, std::move(shape), {}, 0};
    const int64_t in = oned ? 0 : t.shape.back();
    t.decision = policy.decide(role, layer, L, in, src);
    if (policy.model_predicate && role == Role::router && !oned && Policy::router_kept_8bit(c.model_type) &&
        in % 64 == 0) {  // mlx_lm's quant_predicate for this model
      t.decision.quantize = true;
      t.decision.bits = 8;
      t.decision.group_size = 64;
    }
    if (oned) t.decision.keep = dtype_1d;
    const uint64_t n = uint64_t(t.params());
    if (t.decision.quantize)
      t.bytes =
          n * uint64_t(t.decision.bits) / 8 + 2 * (n / uint64_t(t.decision.group_size)) * dtype_size(src);
    else
      t.bytes = n * dtype_size(t.decision.keep);
    plan.tensors.push_back(std::move(t));
  };
  const int64_t D = c.hidden, H = c.n_heads, KV = c.n_kv_heads, hd = c.head_dim;
  add("model.embed_tokens", Role::embed, -1, {c.vocab, D});
  for (int l = 0; l < L; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm", Role::norm, l, {D}, src, true);
    add(p + "post_attention_layernorm", Role::norm, l, {D}, src, true);
    add(p + "self_attn.q_proj", Role::attn_q, l, {H * hd, D});
    add(p + "self_attn.k_proj", Role::attn_k, l, {KV * hd, D});
    add(p + "self_attn.v_proj", Role::attn_v, l, {KV * hd, D});
    add(p + "self_attn.o_proj", Role::attn_o, l, {D, H * hd});
    if (c.attn_qkv_bias) {
      add(p + "self_attn.q_proj.bias", Role::attn_q, l, {H * hd}, src, true);
      add(p + "self_attn.k_proj.bias", Role::attn_k, l, {KV * hd}, src, true);
      add(p + "self_attn.v_proj.bias", Role::attn_v, l, {KV * hd}, src, true);
    }
    if (c.qk_norm == QkNorm::per_head) {
      add(p + "self_attn.q_norm", Role::norm, l, {hd}, src, true);
      add(p + "self_attn.k_norm", Role::norm, l, {hd}, src, true);
    } else if (c.qk_norm == QkNorm::full) {
      add(p + "self_attn.q_norm", Role::norm, l, {H * hd}, src, true);
      add(p + "self_attn.k_norm", Role::norm, l, {KV * hd}, src, true);
    }
    if (c.layer_is_moe[size_t(l)]) {
      const std::string m = p + c.moe_prefix + ".";
      const int64_t E = c.n_experts, I = c.moe_intermediate;
      add(m + "gate", Role::router, l, {E, D});
      if (c.router == Router::sigmoid_bias)
        add(m + "e_score_correction_bias", Role::router, l, {E}, DType::F32, true);
      add(m + "switch_mlp.gate_proj", Role::expert_gate, l, {E, I, D});
      add(m + "switch_mlp.up_proj", Role::expert_up, l, {E, I, D});
      add(m + "switch_mlp.down_proj", Role::expert_down, l, {E, D, I});
    } else {
      add(p + "mlp.gate_proj", Role::mlp_gate, l, {c.intermediate, D});
      add(p + "mlp.up_proj", Role::mlp_up, l, {c.intermediate, D});
      add(p + "mlp.down_proj", Role::mlp_down, l, {D, c.intermediate});
    }
  }
  add("model.norm", Role::norm, -1, {D}, src, true);
  if (!c.tie_embeddings) add("lm_head", Role::lm_head, -1, {c.vocab, D});

  // Per-role totals in the inspect report's shape (tensors counted as files would hold them).
  std::vector<RoleStats> per(kNumRoles);
  for (int i = 0; i < kNumRoles; ++i) per[size_t(i)].role = Role(i);
  for (const auto& t : plan.tensors) {
    RoleStats& r = per[size_t(t.role)];
    r.tensors += t.decision.quantize ? 3 : 1;
    r.params += t.params();
    r.bytes += t.bytes;
    if (t.decision.quantize) {
      r.formats.insert(std::to_string(t.decision.bits));
      r.group_sizes.insert(t.decision.group_size);
    } else {
      std::string n(dtype_name(t.decision.keep));
      for (auto& ch : n) ch = char(std::tolower(static_cast<unsigned char>(ch)));
      r.formats.insert(n);
    }
  }
  plan.report.model_type = c.model_type;
  for (auto& r : per)
    if (r.tensors) {
      plan.report.total.tensors += r.tensors;
      plan.report.total.params += r.params;
      plan.report.total.bytes += r.bytes;
      plan.report.total.formats.insert(r.formats.begin(), r.formats.end());
      plan.report.total.group_sizes.insert(r.group_sizes.begin(), r.group_sizes.end());
      plan.report.roles.push_back(r);
    }
  // shards of at most 5 GiB, as the writer will cut them
  plan.report.shards =
      size_t(std::max<uint64_t>(1, (plan.report.total.bytes + (5ull << 30) - 1) / (5ull << 30)));
  return plan;
}

std::string weight_name(const PlannedTensor& t) {
  const std::string& m = t.module;
  if (m.size() > 5 && m.ends_with(".bias")) return m;
  if (m.find("e_score_correction_bias") != std::string::npos) return m;
  return m + ".weight";
}

std::vector<StoredTensor> stored_tensors(const PlannedTensor& t, DType src) {
  if (!t.decision.quantize) return {{weight_name(t), t.decision.keep, t.shape}};
  Shape ws = t.shape, ss = t.shape;
  ws.back() = t.shape.back() * t.decision.bits / 32;
  ss.back() = t.shape.back() / t.decision.group_size;
  return {{t.module + ".weight", DType::U32, ws},
          {t.module + ".scales", src, ss},
          {t.module + ".biases", src, ss}};
}

nlohmann::json mlx_quantization(const std::vector<PlannedTensor>& tensors, const Policy& policy) {
  nlohmann::json q = {
      {"group_size", policy.default_group}, {"bits", policy.default_bits}, {"mode", "affine"}};
  for (const auto& t : tensors)
    if (t.decision.quantize &&
        (t.decision.bits != policy.default_bits || t.decision.group_size != policy.default_group))
      q[t.module] = {{"group_size", t.decision.group_size}, {"bits", t.decision.bits}, {"mode", "affine"}};
  return q;
}

std::vector<std::string> unused_rule_warnings(const ConversionPlan& plan, const Policy& policy) {
  std::vector<std::string> out;
  if (policy.source.empty() || policy.mixed_low) return out;
  std::vector<bool> used(policy.rules.size(), false);
  for (const auto& t : plan.tensors)
    if (t.decision.rule >= 0) used[size_t(t.decision.rule)] = true;
  for (size_t i = 0; i < used.size(); ++i)
    if (!used[i])
      out.push_back(
          fmt::format("policy {}: rules[{}] matches no tensor of this model (earlier rules take "
                      "them, or its roles / layers do not exist here)",
                      policy.source, i));
  return out;
}

}  // namespace tqlm
