// Architecture hyper-parameters read from an HF / MLX config.json. Each family file (arch_*.cpp) fills
// the flags that make it different; the forward pass (model.cpp) reads only this struct.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kv/kv_spec.h"

namespace tqlm {

enum class QkNorm { none, per_head, full };  // qwen3: RMSNorm(head_dim) per head; minimax: over all heads
enum class Router {
  none,
  softmax_topk,  // qwen3_moe: softmax (f32) -> top-k -> optional renormalisation
  topk_softmax,  // mixtral: top-k on logits -> softmax over the k
  sigmoid_bias,  // minimax: sigmoid (f32) -> top-k on score + bias -> unbiased scores renormalised
};

struct ModelConfig {
  std::string model_type;  // as written in config.json
  std::string family;      // "llama", "moe" or "minimax": which arch_*.cpp parsed it
  int64_t hidden = 0;      // D
  int64_t n_layers = 0;
  int64_t n_heads = 0;       // H
  int64_t n_kv_heads = 0;    // KV (GQA: query head h uses kv head h / (H / KV))
  int64_t head_dim = 0;      // hd
  int64_t intermediate = 0;  // dense MLP width
  int64_t vocab = 0;
  int64_t max_position = 0;
  float rms_eps = 1e-6f;
  bool tie_embeddings = false;
  bool attn_qkv_bias = false;  // qwen2
  bool attn_o_bias = false;
  bool mlp_bias = false;
  QkNorm qk_norm = QkNorm::none;

  // RoPE over the first rotary_dim dims of each head, rotate-half pairing (i, i + rotary_dim/2) unless
  // traditional (adjacent pairs). theta_i(pos) = pos * inv_freq[i].
  int64_t rotary_dim = 0;
  bool rope_traditional = false;
  std::vector<float> rope_inv_freq;  // [rotary_dim / 2]

  // Mixture of experts.
  Router router = Router::none;
  int64_t n_experts = 0;         // E
  int64_t top_k = 0;             // k
  int64_t moe_intermediate = 0;  // expert width
  bool norm_topk = true;
  std::vector<bool> layer_is_moe;  // [n_layers]

  KVShape kv_shape() const { return {n_layers, n_heads, n_kv_heads, head_dim}; }
  // Tensor name prefix of the MoE block in a layer ("mlp" or "block_sparse_moe").
  std::string moe_prefix = "mlp";
};

// Parses config.json (a JSON object). Unknown model_type: an error listing the supported ones.
ModelConfig parse_model_config(const nlohmann::json& config, const std::string& label);
std::vector<std::string> supported_model_types();

// ---- helpers shared by the family parsers (config.cpp) ----
namespace cfg {
int64_t get_int(const nlohmann::json& c, const char* key, const std::string& label);
int64_t get_int_or(const nlohmann::json& c, const char* key, int64_t dflt);
double get_num_or(const nlohmann::json& c, const char* key, double dflt);
bool get_bool_or(const nlohmann::json& c, const char* key, bool dflt);
// Common attention / size fields (hidden, layers, heads, head_dim, vocab, eps, rope).
void parse_common(const nlohmann::json& c, const std::string& label, ModelConfig& m, double default_theta);
}  // namespace cfg

// Family parsers (one file each).
void parse_llama_family(const nlohmann::json& c, const std::string& label,
                        ModelConfig& m);  // llama, qwen2, qwen3
void parse_moe_family(const nlohmann::json& c, const std::string& label,
                      ModelConfig& m);  // qwen3_moe, mixtral
void parse_minimax_family(const nlohmann::json& c, const std::string& label, ModelConfig& m);  // minimax_m2

}  // namespace tqlm
