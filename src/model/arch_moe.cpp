// Mixture-of-experts families with softmax routers: qwen3_moe (softmax -> top-k -> renormalise, per-head
// q/k norm, some layers dense) and mixtral (top-k on logits -> softmax over the k).
#include <algorithm>

#include "core/error.h"
#include "core/json.h"
#include "model/config.h"

namespace tqlm {

void parse_moe_family(const nlohmann::json& c, const std::string& label, ModelConfig& m) {
  m.family = "moe";
  if (m.model_type == "qwen3_moe") {
    cfg::parse_common(c, label, m, 1000000.0);
    m.qk_norm = QkNorm::per_head;
    m.router = Router::softmax_topk;
    m.n_experts = cfg::get_int(c, "num_experts", label, cfg::kExpertRange);
    m.top_k = cfg::get_int(c, "num_experts_per_tok", label, cfg::kExpertRange);
    m.moe_intermediate = cfg::get_int(c, "moe_intermediate_size", label, cfg::kWidthRange);
    m.norm_topk = cfg::get_bool_or(c, "norm_topk_prob", false, label);
    const int64_t step = cfg::get_int_or(c, "decoder_sparse_step", 1, label, cfg::kLayerRange);
    std::vector<int64_t> dense_layers;
    if (auto it = c.find("mlp_only_layers"); it != c.end() && !it->is_null()) {
      if (!it->is_array()) fail("{}: field 'mlp_only_layers' must be an array of layer indices", label);
      for (size_t i = 0; i < it->size(); ++i)
        dense_layers.push_back(
            json_int((*it)[i], fmt::format("{}: mlp_only_layers[{}]", label, i), 0, m.n_layers - 1));
    }
    m.layer_is_moe.resize(size_t(m.n_layers));
    for (int64_t l = 0; l < m.n_layers; ++l) {
      bool dense = std::find(dense_layers.begin(), dense_layers.end(), l) != dense_layers.end();
      m.layer_is_moe[size_t(l)] = !dense && m.n_experts > 0 && (l + 1) % step == 0;
    }
    m.moe_prefix = "mlp";
  } else {  // mixtral
    cfg::parse_common(c, label, m, 1000000.0);
    m.router = Router::topk_softmax;
    m.n_experts = cfg::get_int_or(c, "num_local_experts", 8, label, cfg::kExpertRange);
    m.top_k = cfg::get_int_or(c, "num_experts_per_tok", 2, label, cfg::kExpertRange);
    m.moe_intermediate = cfg::get_int(c, "intermediate_size", label, cfg::kWidthRange);
    m.layer_is_moe.assign(size_t(m.n_layers), true);
    m.moe_prefix = "block_sparse_moe";
  }
}

}  // namespace tqlm
