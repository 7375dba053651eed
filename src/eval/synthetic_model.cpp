#include "eval/synthetic_model.h"

#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "core/files.h"
#include "core/splitmix.h"
#include "io/checkpoint.h"
#include "io/safetensors_writer.h"
#include "quant/convert.h"
#include "quant/source.h"

namespace tqlm {

namespace fs = std::filesystem;

namespace {

// Bumped whenever what is written for the same plan changes (values, seed, layout): older checkpoints kept
// in the cache are then rewritten instead of reused.
constexpr int kFormatVersion = 1;
constexpr uint64_t kSeed = 0x5eed;

// MiniMax-M2's config.json (MiniMaxAI/MiniMax-M2, tests/fixtures/configs/minimax-m2.json) without its FP8
// quantization_config: the synthetic weights are written in MLX affine form directly. attn_type_list (62
// ones) is filled in below.
constexpr const char* kMiniMaxM2Config = R"json({
  "architectures": ["MiniMaxM2ForCausalLM"],
  "model_type": "minimax_m2",
  "hidden_size": 3072,
  "num_hidden_layers": 62,
  "num_attention_heads": 48,
  "num_key_value_heads": 8,
  "head_dim": 128,
  "intermediate_size": 1536,
  "num_local_experts": 256,
  "num_experts_per_tok": 8,
  "shared_intermediate_size": 0,
  "hidden_act": "silu",
  "rms_norm_eps": 1e-06,
  "rope_theta": 5000000,
  "rotary_dim": 64,
  "max_position_embeddings": 196608,
  "vocab_size": 200064,
  "tie_word_embeddings": false,
  "use_qk_norm": true,
  "qk_norm_type": "per_layer",
  "scoring_func": "sigmoid",
  "use_routing_bias": true,
  "use_mtp": true,
  "num_mtp_modules": 3,
  "mtp_transformer_layers": 1,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.46.1"
})json";

// Random values for one tensor, in chunks of about 16 MiB.
class Filler {
 public:
  explicit Filler(uint64_t seed) : state_(seed) {}

  // n uint32 words of random codes.
  void words(uint64_t n, const std::function<void(const void*, size_t)>& out) {
    std::vector<uint64_t> buf(kChunk / 8);
    for (uint64_t done = 0; done < n;) {
      const uint64_t k = std::min<uint64_t>(buf.size() * 2, n - done);
      for (size_t i = 0; i < (k + 1) / 2; ++i) buf[i] = splitmix64_next(state_);
      out(buf.data(), size_t(k) * 4);
      done += k;
    }
  }

  // n values stored as `t`: all `value`, or normal(0, sd) when sd > 0.
  void floats(uint64_t n, DType t, float value, float sd,
              const std::function<void(const void*, size_t)>& out) {
    std::vector<float> f;
    std::vector<uint8_t> bytes;
    for (uint64_t done = 0; done < n;) {
      const uint64_t k = std::min<uint64_t>(kChunk / 4, n - done);
      f.assign(size_t(k), value);
      if (sd > 0)
        for (size_t i = 0; i < f.size(); i += 2) {  // Box-Muller: two normals from two uniforms
          const double u1 = (double(splitmix64_next(state_) >> 11) + 1.0) * 0x1p-53;  // (0, 1]
          const double u2 = double(splitmix64_next(state_) >> 11) * 0x1p-53;
          const double r = std::sqrt(-2.0 * std::log(u1)), a = 2.0 * M_PI * u2;
          f[i] = float(sd * r * std::cos(a));
          if (i + 1 < f.size()) f[i + 1] = float(sd * r * std::sin(a));
        }
      Source::store(f, t, bytes);
      out(bytes.data(), bytes.size());
      done += k;
    }
  }

 private:
  static constexpr size_t kChunk = 16u << 20;
  uint64_t state_;
};

}  // namespace

std::vector<std::string> synthetic_model_names() {
  return {"minimax-m2"};
}

nlohmann::json synthetic_full_config(const SyntheticSpec& spec) {
  if (spec.model != "minimax-m2")
    fail("--synthetic {}: unknown model (known: {})", spec.model, fmt::join(synthetic_model_names(), ", "));
  nlohmann::json c =
      parse_json_limited<nlohmann::json>(kMiniMaxM2Config, "the compiled-in MiniMax-M2 config");
  c["attn_type_list"] = std::vector<int>(size_t(c["num_hidden_layers"].get<int>()), 1);
  const int64_t top_k = c["num_experts_per_tok"].get<int64_t>();
  if (spec.experts) {
    if (spec.experts < top_k || spec.experts > c["num_local_experts"].get<int64_t>())
      fail("--experts {}: must be in [{}, {}] (the model's top-k .. its expert count)", spec.experts, top_k,
           c["num_local_experts"].get<int64_t>());
    c["num_local_experts"] = spec.experts;
  }
  if (spec.vocab) {
    if (spec.vocab < 256 || spec.vocab > c["vocab_size"].get<int64_t>())
      fail("--vocab {}: must be in [256, {}]", spec.vocab, c["vocab_size"].get<int64_t>());
    c["vocab_size"] = spec.vocab;
  }
  return c;
}

nlohmann::json SyntheticPlan::marker() const {
  return {{"format_version", kFormatVersion},
          {"seed", kSeed},
          {"model", spec.model},
          {"policy", policy_name},
          {"first_layer", first_layer},
          {"layers", spec.layers},
          {"config", config}};
}

SyntheticPlan plan_synthetic(const SyntheticSpec& spec) {
  SyntheticPlan p;
  p.spec = spec;
  const nlohmann::json full_cfg = synthetic_full_config(spec);
  p.full = parse_model_config(full_cfg, spec.model + " (compiled in)");
  const Policy policy = Policy::load(spec.policy);
  p.policy_name = policy.name;
  p.dtype = config_float_dtype(full_cfg);
  p.full_plan = plan_conversion(p.full, policy, p.dtype);
  const int L = int(p.full.n_layers);
  p.first_layer = L / 2;
  if (spec.layers < 1 || p.first_layer + spec.layers > L)
    fail("--layers {}: must be in [1, {}] (middle layers {}.. of {})", spec.layers, L - p.first_layer,
         p.first_layer, L);
  for (const PlannedTensor& t : p.full_plan.tensors) {
    if (t.layer >= 0 && (t.layer < p.first_layer || t.layer >= p.first_layer + spec.layers)) continue;
    PlannedTensor c = t;
    if (t.layer >= 0) {
      const std::string from = "model.layers." + std::to_string(t.layer) + ".";
      c.layer = t.layer - p.first_layer;
      c.module = "model.layers." + std::to_string(c.layer) + "." + t.module.substr(from.size());
    }
    p.bytes += c.bytes;
    p.params += c.params();
    p.tensors.push_back(std::move(c));
  }
  p.config = full_cfg;
  p.config["num_hidden_layers"] = spec.layers;
  p.config["attn_type_list"] = std::vector<int>(size_t(spec.layers), 1);
  p.config["quantization"] = mlx_quantization(p.tensors, policy);
  p.config["quantization_config"] = p.config["quantization"];
  return p;
}

void write_synthetic_checkpoint(const SyntheticPlan& plan, const std::string& dir,
                                const std::function<void(uint64_t, uint64_t)>& progress) {
  std::error_code ec;
  if (fs::exists(dir, ec)) fail("{}: exists; not writing a synthetic checkpoint over it", dir);
  PartialOutput out(dir);
  const fs::path tmp = out.path();

  CheckpointWriter w(tmp.string(), {{"format", "mlx"}});
  for (const auto& t : plan.tensors)
    for (const auto& st : stored_tensors(t, plan.dtype)) w.declare(st.name, st.dtype, st.shape);
  Filler fill(kSeed);
  uint64_t done = 0;
  for (const auto& t : plan.tensors) {
    const auto st = stored_tensors(t, plan.dtype);
    auto to = [&](size_t i) {  // appends to the i-th stored tensor of t
      return [&, i](const void* data, size_t n) {
        w.write(st[i].name, data, n);
        done += n;
        if (progress) progress(done, plan.bytes);
      };
    };
    if (!t.decision.quantize) {
      const bool norm = t.role == Role::norm, zero = t.module.ends_with("e_score_correction_bias");
      fill.floats(uint64_t(t.params()), t.decision.keep, norm ? 1.0f : 0.0f, norm || zero ? 0.0f : 0.02f,
                  to(0));
      continue;
    }
    const double levels = double((1 << t.decision.bits) - 1);
    const float scale = float(0.02 / levels);
    fill.words(uint64_t(shape_numel(st[0].shape)), to(0));
    fill.floats(uint64_t(shape_numel(st[1].shape)), plan.dtype, scale, 0, to(1));
    fill.floats(uint64_t(shape_numel(st[2].shape)), plan.dtype, float(-double(scale) * levels / 2), 0, to(2));
  }
  w.finish(uint64_t(plan.params));
  write_file_atomic((tmp / "config.json").string(), plan.config.dump(4) + "\n", "config.json");
  write_file_atomic((tmp / kSyntheticMarker).string(), plan.marker().dump(2) + "\n", "synthetic marker");
  out.publish();
}

bool synthetic_checkpoint_matches(const SyntheticPlan& plan, const std::string& dir) {
  const fs::path m = fs::path(dir) / kSyntheticMarker;
  std::error_code ec;
  if (!fs::is_regular_file(m, ec) || !fs::is_regular_file(fs::path(dir) / "config.json", ec)) return false;
  try {
    return read_json_file(m.string()) == plan.marker();
  } catch (const Error&) {
    return false;
  }
}

bool is_synthetic_checkpoint(const std::string& dir) {
  std::error_code ec;
  return fs::is_regular_file(fs::path(dir) / kSyntheticMarker, ec);
}

}  // namespace tqlm
