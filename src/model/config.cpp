#include "model/config.h"

#include <cmath>

#include "core/error.h"
#include "core/json.h"

namespace tqlm {

using json = nlohmann::json;

namespace cfg {

namespace {
std::string field(const std::string& label, const char* key, const Range& r) {
  return r.limit ? fmt::format("{}: field '{}' (limit {} = {})", label, key, r.limit, r.hi)
                 : fmt::format("{}: field '{}'", label, key);
}
bool absent(const json& c, const char* key) {
  auto it = c.find(key);
  return it == c.end() || it->is_null();
}
}  // namespace

int64_t get_int(const json& c, const char* key, const std::string& label, Range r) {
  if (absent(c, key)) fail("{}: missing field '{}'", label, key);
  return json_int(c[key], field(label, key, r), r.lo, r.hi);
}

int64_t get_int_or(const json& c, const char* key, int64_t dflt, const std::string& label, Range r) {
  return absent(c, key) ? dflt : json_int(c[key], field(label, key, r), r.lo, r.hi);
}

double get_num_or(const json& c, const char* key, double dflt, const std::string& label) {
  if (absent(c, key)) return dflt;
  const json& v = c[key];
  if (!v.is_number()) fail("{}: field '{}' must be a number, got {}", label, key, json_brief(v));
  const double x = v.get<double>();
  if (!std::isfinite(x)) fail("{}: field '{}' must be finite, got {}", label, key, x);
  return x;
}

bool get_bool_or(const json& c, const char* key, bool dflt, const std::string& label) {
  if (absent(c, key)) return dflt;
  if (!c[key].is_boolean())
    fail("{}: field '{}' must be true or false, got {}", label, key, json_brief(c[key]));
  return c[key].get<bool>();
}

std::string get_string_or(const json& c, const char* key, const std::string& dflt, const std::string& label) {
  if (absent(c, key)) return dflt;
  if (!c[key].is_string()) fail("{}: field '{}' must be a string, got {}", label, key, json_brief(c[key]));
  return c[key].get<std::string>();
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
std::vector<float> llama3_inv_freq(int64_t dims, float base, const json& sc, const std::string& where) {
  const double factor = get_num_or(sc, "factor", 8.0, where);
  const double low = get_num_or(sc, "low_freq_factor", 1.0, where);
  const double high = get_num_or(sc, "high_freq_factor", 4.0, where);
  const double old_ctx = get_num_or(sc, "original_max_position_embeddings", 8192, where);
  if (!(factor > 0) || !(low > 0) || !(high > low) || !(old_ctx >= 1))
    fail(
        "{}: llama3 scaling needs factor > 0, 0 < low_freq_factor < high_freq_factor and "
        "original_max_position_embeddings >= 1 (got {}, {}, {}, {})",
        where, factor, low, high, old_ctx);
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
  // Sizes first, each against its limit, before anything is computed or allocated from them.
  m.hidden = get_int(c, "hidden_size", label, {1, kMaxHidden, "kMaxHidden"});
  m.n_layers = get_int(c, "num_hidden_layers", label, kLayerRange);
  m.n_heads = get_int(c, "num_attention_heads", label, {1, kMaxHeads, "kMaxHeads"});
  m.n_kv_heads = get_int_or(c, "num_key_value_heads", m.n_heads, label, {1, kMaxHeads, "kMaxHeads"});
  m.vocab = get_int(c, "vocab_size", label, {1, kMaxVocab, "kMaxVocab"});
  m.intermediate = get_int_or(c, "intermediate_size", 0, label, kWidthRange);
  m.max_position = get_int_or(c, "max_position_embeddings", 0, label, {1, kMaxContext, "kMaxContext"});
  if (m.max_position == 0) {
    m.max_position = kDefaultContext;
    m.max_position_defaulted = true;
    m.warnings.push_back(fmt::format(
        "{}: no 'max_position_embeddings': the context is limited to kDefaultContext = {} tokens (--ctx "
        "sets another limit)",
        label, kDefaultContext));
  }
  if (m.n_heads % m.n_kv_heads != 0)
    fail("{}: num_attention_heads ({}) must be a multiple of num_key_value_heads ({})", label, m.n_heads,
         m.n_kv_heads);
  m.head_dim = get_int_or(c, "head_dim", m.hidden / m.n_heads, label, {0, kMaxHeadDim, "kMaxHeadDim"});
  if (m.head_dim <= 0 || m.head_dim % 2)
    fail("{}: head_dim {} must be positive and even (hidden_size / num_attention_heads when absent)", label,
         m.head_dim);
  m.rms_eps = float(get_num_or(c, "rms_norm_eps", 1e-6, label));
  if (!(m.rms_eps > 0 && m.rms_eps < 1))
    fail("{}: field 'rms_norm_eps' must be in (0, 1), got {}", label, m.rms_eps);
  m.tie_embeddings = get_bool_or(c, "tie_word_embeddings", false, label);
  m.rope_traditional = get_bool_or(c, "rope_traditional", false, label);
  // transformers >= 5 nests rope settings under rope_parameters
  const json* rp = nullptr;
  if (auto it = c.find("rope_parameters"); it != c.end() && !it->is_null()) {
    if (!it->is_object()) fail("{}: field 'rope_parameters' must be an object", label);
    rp = &*it;
  }
  const std::string rp_label = label + ": rope_parameters";
  const double theta = get_num_or(
      c, "rope_theta", rp ? get_num_or(*rp, "rope_theta", default_theta, rp_label) : default_theta, label);
  if (!(theta > 0 && theta < 3e38))
    fail("{}: field 'rope_theta' must be > 0 (and a float), got {}", label, theta);
  const double partial = get_num_or(c, "partial_rotary_factor", 1.0, label);
  if (!(partial > 0 && partial <= 1))
    fail("{}: field 'partial_rotary_factor' must be in (0, 1], got {}", label, partial);
  m.rotary_dim = get_int_or(c, "rotary_dim", int64_t(double(m.head_dim) * partial), label,
                            {1, kMaxHeadDim, "kMaxHeadDim"});
  if (m.rotary_dim <= 0 || m.rotary_dim > m.head_dim || m.rotary_dim % 2)
    fail("{}: field 'rotary_dim' {} must be even and at most head_dim {}", label, m.rotary_dim, m.head_dim);
  const json* sc = nullptr;
  if (auto it = c.find("rope_scaling"); it != c.end() && !it->is_null()) {
    if (!it->is_object()) fail("{}: field 'rope_scaling' must be an object or null", label);
    sc = &*it;
  } else if (rp && (rp->contains("rope_type") || rp->contains("type"))) {
    sc = rp;
  }
  const std::string sc_label = label + (sc == rp ? ": rope_parameters" : ": rope_scaling");
  std::string type = "default";
  if (sc) type = get_string_or(*sc, "rope_type", get_string_or(*sc, "type", "default", sc_label), sc_label);
  if (type == "default") {
    m.rope_inv_freq = default_inv_freq(m.rotary_dim, float(theta));
  } else if (type == "linear") {
    auto f = default_inv_freq(m.rotary_dim, float(theta));
    const double factor = get_num_or(*sc, "factor", 1.0, sc_label);
    if (!(factor > 0)) fail("{}: field 'factor' must be > 0, got {}", sc_label, factor);
    const float scale = 1.0f / float(factor);
    for (auto& x : f) x *= scale;  // positions * scale
    m.rope_inv_freq = f;
  } else if (type == "llama3") {
    m.rope_inv_freq = llama3_inv_freq(m.rotary_dim, float(theta), *sc, sc_label);
  } else {
    fail("{}: rope scaling type '{}' is not supported (default, linear, llama3)", sc_label, type);
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
  validate_model_config(m, label);
  return m;
}

}  // namespace tqlm
