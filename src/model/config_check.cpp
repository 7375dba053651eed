// Cross-field consistency of a parsed config and the context limit a run uses (docs/limits.md). The
// per-field ranges are checked while parsing (config.cpp), so nothing here can overflow.
#include <cmath>

#include "core/error.h"
#include "model/config.h"

namespace tqlm {

void validate_model_config(const ModelConfig& m, const std::string& label) {
  if (m.n_kv_heads > m.n_heads || m.n_heads % m.n_kv_heads)
    fail("{}: num_attention_heads ({}) must be a multiple of num_key_value_heads ({})", label, m.n_heads,
         m.n_kv_heads);
  if (int64_t(m.layer_is_moe.size()) != m.n_layers)
    fail("{}: {} layer kinds for num_hidden_layers {}", label, m.layer_is_moe.size(), m.n_layers);
  bool any_moe = false, any_dense = false;
  for (bool b : m.layer_is_moe) (b ? any_moe : any_dense) = true;
  if (any_dense && m.intermediate <= 0)
    fail("{}: field 'intermediate_size' is needed by the dense layers (missing or 0)", label);
  if (any_moe) {
    if (m.n_experts < 1 || m.moe_intermediate < 1)
      fail("{}: MoE layers need at least one expert and an expert width (got {} experts, width {})", label,
           m.n_experts, m.moe_intermediate);
    if (m.top_k < 1 || m.top_k > m.n_experts)
      fail("{}: field 'num_experts_per_tok' {} must be in [1, {}] (the number of experts)", label, m.top_k,
           m.n_experts);
  }
  if (int64_t(m.rope_inv_freq.size()) != m.rotary_dim / 2)
    fail("{}: RoPE frequencies for rotary_dim {} are missing", label, m.rotary_dim);
  for (float f : m.rope_inv_freq)
    if (!std::isfinite(f) || f < 0)
      fail("{}: the rope settings give a frequency of {} (rope_theta / rope_scaling out of range)", label, f);
  // Parameters from the config's shapes, in double (each factor is bounded, the total may be absurd).
  const double D = double(m.hidden), hd = double(m.head_dim);
  const double attn = D * hd * double(2 * m.n_heads + 2 * m.n_kv_heads);
  double total = 2 * double(m.vocab) * D;
  for (bool moe : m.layer_is_moe)
    total += attn + (moe ? double(m.n_experts) * (3 * D * double(m.moe_intermediate) + D)
                         : 3 * D * double(m.intermediate));
  if (total > kMaxParameters)
    fail("{}: the config describes {:.3g} parameters, over the limit kMaxParameters = {:.0e}", label, total,
         kMaxParameters);
}

int64_t context_limit(const ModelConfig& m, int64_t requested, const char* flag) {
  if (requested < 0) fail("{} {} must be positive", flag, requested);
  if (requested == 0) return m.max_position;
  if (requested > kMaxContext)
    fail("{} {} exceeds the limit kMaxContext = {} tokens", flag, requested, kMaxContext);
  if (!m.max_position_defaulted && requested > m.max_position)
    fail("{} {} exceeds the model's max_position_embeddings of {} tokens", flag, requested, m.max_position);
  return requested;
}

}  // namespace tqlm
