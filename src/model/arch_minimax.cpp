// MiniMax-M2: q/k RMSNorm over the full projection (before the head split), partial RoPE over
// rotary_dim, sigmoid router in f32 with e_score_correction_bias used only for selection.
#include "core/error.h"
#include "model/config.h"

namespace tqlm {

void parse_minimax_family(const nlohmann::json& c, const std::string& label, ModelConfig& m) {
  m.family = "minimax";
  cfg::parse_common(c, label, m, 5000000.0);
  const std::string scoring = cfg::get_string_or(c, "scoring_func", "sigmoid", label);
  if (scoring != "sigmoid") fail("{}: scoring_func '{}' is not supported (only 'sigmoid')", label, scoring);
  if (cfg::get_int_or(c, "shared_intermediate_size", 0, label, {0, kMaxIntermediate, "kMaxIntermediate"}) !=
      0)
    fail("{}: shared experts (shared_intermediate_size > 0) are not supported", label);
  m.qk_norm = cfg::get_bool_or(c, "use_qk_norm", true, label) ? QkNorm::full : QkNorm::none;
  m.router = Router::sigmoid_bias;
  m.n_experts = cfg::get_int(c, "num_local_experts", label, cfg::kExpertRange);
  m.top_k = cfg::get_int(c, "num_experts_per_tok", label, cfg::kExpertRange);
  m.moe_intermediate = cfg::get_int(c, "intermediate_size", label, cfg::kWidthRange);
  m.norm_topk = true;
  m.layer_is_moe.assign(size_t(m.n_layers), true);
  m.moe_prefix = "block_sparse_moe";
}

}  // namespace tqlm
