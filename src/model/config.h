// Architecture hyper-parameters read from an HF / MLX config.json. Each family file (arch_*.cpp) fills
// the flags that make it different; the forward pass (model.cpp) reads only this struct.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kv/kv_spec.h"

namespace tqlm {

// Limits on config.json values (docs/limits.md): a value outside is an error naming the file, the field and
// the constant, before anything is planned or allocated from it. The largest real models stay far below.
inline constexpr int64_t kMaxLayers = 1024;
inline constexpr int64_t kMaxHidden = 65536;
inline constexpr int64_t kMaxHeads = 1024;
inline constexpr int64_t kMaxHeadDim = 1024;
inline constexpr int64_t kMaxIntermediate = int64_t(1) << 19;  // dense and expert MLP width
inline constexpr int64_t kMaxExperts = 4096;
inline constexpr int64_t kMaxVocab = int64_t(1) << 22;    // 4,194,304 token ids
inline constexpr int64_t kMaxContext = int64_t(1) << 24;  // 16,777,216 positions
inline constexpr double kMaxParameters = 1e13;            // the whole model, from the config's shapes
// Context when config.json has no max_position_embeddings (a warning names the field; --ctx overrides).
inline constexpr int64_t kDefaultContext = 4096;

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
  int64_t max_position = 0;  // always >= 1: the config's value, or kDefaultContext when it has none
  bool max_position_defaulted = false;
  std::vector<std::string> warnings;  // things a user should hear about (printed by the CLI)
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

// Parses and validates config.json (a JSON object): types, ranges (the limits above) and cross-field
// consistency; every error names `label` (the file) and the field. Unknown model_type: an error listing the
// supported ones. Fields that change the model's output are never defaulted when present with a wrong type.
ModelConfig parse_model_config(const nlohmann::json& config, const std::string& label);
std::vector<std::string> supported_model_types();

// The context limit a run uses: `requested` (a --ctx flag, 0 = none) or the model's max_position. A request
// over a max_position the config states is an error giving both numbers; over kMaxContext always.
int64_t context_limit(const ModelConfig& cfg, int64_t requested, const char* flag = "--ctx");

// Cross-field checks and the parameter total (config_check.cpp); called by parse_model_config.
void validate_model_config(const ModelConfig& m, const std::string& label);

// ---- helpers shared by the family parsers (config.cpp) ----
namespace cfg {
struct Range {
  int64_t lo, hi;
  const char* limit = nullptr;  // the constant's name, quoted in the error
};
// Present with the wrong type, or out of range: an error naming the field. get_int: required.
int64_t get_int(const nlohmann::json& c, const char* key, const std::string& label, Range r);
int64_t get_int_or(const nlohmann::json& c, const char* key, int64_t dflt, const std::string& label, Range r);
double get_num_or(const nlohmann::json& c, const char* key, double dflt, const std::string& label);
bool get_bool_or(const nlohmann::json& c, const char* key, bool dflt, const std::string& label);
std::string get_string_or(const nlohmann::json& c, const char* key, const std::string& dflt,
                          const std::string& label);
inline constexpr Range kLayerRange{1, kMaxLayers, "kMaxLayers"};
inline constexpr Range kExpertRange{1, kMaxExperts, "kMaxExperts"};
inline constexpr Range kWidthRange{1, kMaxIntermediate, "kMaxIntermediate"};
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
