#include "model/config.h"

#include <cmath>

#include "core/error.h"

namespace tqlm {

using json = nlohmann::json;

namespace cfg {

int64_t get_int(const json& c, const char* key, const std::string& label) {
  auto it = c.find(key);
  if (it == c.end() || !it->is_number_integer()) fail("{}: missing or non-integer field '{}'", label, key);
  int64_t v = it->get<int64_t>();
  if (v < 0) fail("{}: field '{}' must be non-negative, got {}", label, key, v);
  return v;
}

int64_t get_int_or(const json& c, const char* key, int64_t dflt) {
  auto it = c.find(key);
  return (it == c.end() || !it->is_number_integer()) ? dflt : it->get<int64_t>();
}

double get_num_or(const json& c, const char* key, double dflt) {
  auto it = c.find(key);
  return (it == c.end() || !it->is_number()) ? dflt : it->get<double>();
}

bool get_bool_or(const json& c, const char* key, bool dflt) {
  auto it = c.find(key);
  return (it == c.end() || !it->is_boolean()) ? dflt : it->get<bool>();
}

namespace {
// inv_freq[i] = exp(-i * ln(base) / half), in f32 as MLX computes it.
std::vector<float> default_inv_freq(int64_t dims, float base) {
  const int64_t half = dims / 2;
  const float step = std::log(base) / float(half);
  std::vector<float> f(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) f[size_t(i)] = std::exp(-float(i) * step);
  return f;
}

// Llama 3 frequency smoothing (rope_scaling.rope_type == "llama3").
std::vector<float> llama3_inv_freq(int64_t dims, float base, const json& sc) {
  const double factor = get_num_or(sc, "factor", 8.0);
  const double low = get_num_or(sc, "low_freq_factor", 1.0);
  const double high = get_num_or(sc, "high_freq_factor", 4.0);
  const double old_ctx = get_num_or(sc, "original_max_position_embeddings", 8192);
  const float low_wl = float(old_ctx / low), high_wl = float(old_ctx / high);
  std::vector<float> out;
  for (int64_t i = 0; i < dims; i += 2) {
    float freq = std::pow(base, float(i) / float(dims));  // a period, as mlx_lm's Llama3RoPE keeps it
    const float wl = 2.0f * float(M_PI) * freq;
    if (wl > low_wl) freq = freq * float(factor);
    if (wl > high_wl && wl < low_wl) {
      const float smooth = (float(old_ctx) / wl - float(low)) / float(high - low);
      freq = freq / ((1.0f - smooth) / float(factor) + smooth);
    }
    out.push_back(1.0f / freq);
  }
  return out;
}
}  // namespace

void parse_common(const json& c, const std::string& label, ModelConfig& m, double default_theta) {
  m.hidden = get_int(c, "hidden_size", label);
  m.n_layers = get_int(c, "num_hidden_layers", label);
  m.n_heads = get_int(c, "num_attention_heads", label);
  m.n_kv_heads = get_int_or(c, "num_key_value_heads", m.n_heads);
  m.vocab = get_int(c, "vocab_size", label);
  m.intermediate = get_int_or(c, "intermediate_size", 0);
  m.max_position = get_int_or(c, "max_position_embeddings", 0);
  if (m.n_heads == 0 || m.n_kv_heads == 0 || m.n_heads % m.n_kv_heads != 0)
    fail("{}: num_attention_heads ({}) must be a positive multiple of num_key_value_heads ({})", label,
         m.n_heads, m.n_kv_heads);
  auto hd = c.find("head_dim");
  m.head_dim = (hd != c.end() && hd->is_number_integer()) ? hd->get<int64_t>() : m.hidden / m.n_heads;
  if (m.head_dim <= 0 || m.head_dim % 2) fail("{}: head_dim {} must be positive and even", label, m.head_dim);
  m.rms_eps = float(get_num_or(c, "rms_norm_eps", 1e-6));
  m.tie_embeddings = get_bool_or(c, "tie_word_embeddings", false);
  m.rope_traditional = get_bool_or(c, "rope_traditional", false);
  // transformers >= 5 nests rope settings under rope_parameters
  const json* rp = nullptr;
  if (auto it = c.find("rope_parameters"); it != c.end() && it->is_object()) rp = &*it;
  double theta =
      get_num_or(c, "rope_theta", rp ? get_num_or(*rp, "rope_theta", default_theta) : default_theta);
  m.rotary_dim =
      get_int_or(c, "rotary_dim", int64_t(double(m.head_dim) * get_num_or(c, "partial_rotary_factor", 1.0)));
  if (m.rotary_dim <= 0 || m.rotary_dim > m.head_dim || m.rotary_dim % 2)
    fail("{}: rotary dimension {} must be even and at most head_dim {}", label, m.rotary_dim, m.head_dim);
  const json* sc = nullptr;
  if (auto it = c.find("rope_scaling"); it != c.end() && it->is_object())
    sc = &*it;
  else if (rp && (rp->contains("rope_type") || rp->contains("type")))
    sc = rp;
  std::string type = "default";
  if (sc) {
    if (auto t = sc->find("rope_type"); t != sc->end() && t->is_string())
      type = t->get<std::string>();
    else if (auto t2 = sc->find("type"); t2 != sc->end() && t2->is_string())
      type = t2->get<std::string>();
  }
  if (type == "default") {
    m.rope_inv_freq = default_inv_freq(m.rotary_dim, float(theta));
  } else if (type == "linear") {
    auto f = default_inv_freq(m.rotary_dim, float(theta));
    const float scale = 1.0f / float(get_num_or(*sc, "factor", 1.0));
    for (auto& x : f) x *= scale;  // positions * scale
    m.rope_inv_freq = f;
  } else if (type == "llama3") {
    m.rope_inv_freq = llama3_inv_freq(m.rotary_dim, float(theta), *sc);
  } else {
    fail("{}: rope scaling type '{}' is not supported (default, linear, llama3)", label, type);
  }
}

}  // namespace cfg

std::vector<std::string> supported_model_types() {
  return {"llama", "qwen2", "qwen3", "qwen3_moe", "mixtral", "minimax_m2", "minimax"};
}

ModelConfig parse_model_config(const json& c, const std::string& label) {
  if (!c.is_object()) fail("{}: config must be a JSON object", label);
  auto mt = c.find("model_type");
  if (mt == c.end() || !mt->is_string()) fail("{}: missing 'model_type'", label);
  ModelConfig m;
  m.model_type = mt->get<std::string>();
  if (m.model_type == "llama" || m.model_type == "qwen2" || m.model_type == "qwen3") {
    parse_llama_family(c, label, m);
  } else if (m.model_type == "qwen3_moe" || m.model_type == "mixtral") {
    parse_moe_family(c, label, m);
  } else if (m.model_type == "minimax_m2" || m.model_type == "minimax") {
    parse_minimax_family(c, label, m);
  } else {
    std::string list;
    for (const auto& s : supported_model_types()) list += (list.empty() ? "" : ", ") + s;
    fail("{}: unknown architecture model_type '{}' (supported: {})", label, m.model_type, list);
  }
  if (m.layer_is_moe.empty()) m.layer_is_moe.assign(size_t(m.n_layers), false);
  return m;
}

}  // namespace tqlm
