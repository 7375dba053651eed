// Dense llama-family models: llama (SmolLM2, Llama 3), qwen2 (q/k/v biases), qwen3 (per-head q/k norm).
#include "core/error.h"
#include "model/config.h"

namespace tqlm {

void parse_llama_family(const nlohmann::json& c, const std::string& label, ModelConfig& m) {
  m.family = "llama";
  if (m.model_type == "llama") {
    cfg::parse_common(c, label, m, 10000.0);
    m.attn_qkv_bias = m.attn_o_bias = cfg::get_bool_or(c, "attention_bias", false, label);
    m.mlp_bias = cfg::get_bool_or(c, "mlp_bias", false, label);
    if (!c.contains("tie_word_embeddings")) m.tie_embeddings = true;  // mlx_lm's llama default
  } else if (m.model_type == "qwen2") {
    cfg::parse_common(c, label, m, 1000000.0);
    m.attn_qkv_bias = true;
    if (!c.contains("tie_word_embeddings")) m.tie_embeddings = true;
  } else {  // qwen3
    cfg::parse_common(c, label, m, 1000000.0);
    m.qk_norm = QkNorm::per_head;
  }
  if (m.intermediate <= 0) fail("{}: missing field 'intermediate_size'", label);
}

}  // namespace tqlm
