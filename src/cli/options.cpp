#include "cli/options.h"

#include <cctype>
#include <cmath>
#include <regex>

#include "core/error.h"

namespace tqlm::cli {

void add_model_options(CLI::App* cmd, ModelOptions& o, bool with_ctx) {
  cmd->add_option("model,-m,--model", o.model, "Model directory (MLX or HF checkpoint with config.json)")
      ->required();
  cmd->add_option("-t,--threads", o.threads, "Worker threads (default: physical cores)");
  cmd->add_option("--kv", o.kv, "KV cache mode: " + kv_modes_help());
  cmd->add_option("--kv-boundary", o.kv_boundary,
                  "Compressed KV modes: the first and last N layers stay bf16")
      ->capture_default_str();
  if (with_ctx)
    cmd->add_option("--ctx", o.ctx, "Context limit in tokens (default: the model's max_position_embeddings)");
}

void add_sampling_options(CLI::App* cmd, SamplingOptions& o) {
  cmd->add_option("--max-tokens,-n", o.max_tokens, "Maximum tokens to generate")->capture_default_str();
  cmd->add_option("--temp", o.temp,
                  "Sampling temperature, 0 = greedy (default: generation_config.json, else 1.0)");
  cmd->add_option("--top-p", o.top_p,
                  "Nucleus sampling mass (default: generation_config.json, else 1.0 = off)");
  cmd->add_option("--top-k", o.top_k,
                  "Keep the k most likely tokens (default: generation_config.json, else 0 = off)");
  cmd->add_option("--min-p", o.min_p, "Drop tokens below min-p x the top probability (default 0 = off)");
  cmd->add_option("--repeat-penalty", o.repeat_penalty,
                  "Repetition penalty over the last 64 tokens (default 1 = off)");
  cmd->add_option("--seed", o.seed, "Random seed (same seed, same output)")->capture_default_str();
  cmd->add_option("--stop", o.stop, "Stop string (repeat the flag for several); not included in the output")
      ->allow_extra_args(false);
}

SamplingParams SamplingOptions::resolve(const nlohmann::json* gen) const {
  SamplingParams p;
  if (gen) p.apply_generation_config(*gen);
  if (temp) p.temperature = *temp;
  if (top_p) p.top_p = *top_p;
  if (top_k) p.top_k = *top_k;
  if (min_p) p.min_p = *min_p;
  if (repeat_penalty) p.repetition_penalty = *repeat_penalty;
  p.seed = seed;
  return p;
}

GenerateOptions SamplingOptions::generate_options(int64_t ctx) const {
  GenerateOptions g;
  g.max_tokens = max_tokens;
  g.stop = stop;
  g.ctx = ctx;
  return g;
}

// "36GB" (10^9), "36GiB" (2^30), "36G" (= GB), "512MB", "1.5GB", "1000000" (bytes).
int64_t parse_size(const std::string& text, const char* flag) {
  static const std::regex re(R"(\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([A-Za-z]*)\s*)");
  std::smatch m;
  if (!std::regex_match(text, m, re))
    fail("{} '{}': expected a size such as 36GB, 36GiB, 512MB or a number of bytes", flag, text);
  std::string u = m[2].str();
  for (char& c : u) c = char(std::tolower(static_cast<unsigned char>(c)));
  double mult = 0;
  if (u.empty() || u == "b")
    mult = 1;
  else if (u == "k" || u == "kb")
    mult = 1e3;
  else if (u == "m" || u == "mb")
    mult = 1e6;
  else if (u == "g" || u == "gb")
    mult = 1e9;
  else if (u == "t" || u == "tb")
    mult = 1e12;
  else if (u == "kib")
    mult = 1024.0;
  else if (u == "mib")
    mult = 1024.0 * 1024.0;
  else if (u == "gib")
    mult = 1024.0 * 1024.0 * 1024.0;
  else if (u == "tib")
    mult = 1024.0 * 1024.0 * 1024.0 * 1024.0;
  else
    fail("{} '{}': unknown unit '{}' (use B, KB, MB, GB, TB or KiB, MiB, GiB, TiB)", flag, text, m[2].str());
  const double bytes = std::stod(m[1].str()) * mult;
  if (!(bytes >= 1) || bytes > 9e18) fail("{} '{}': must be at least 1 byte and finite", flag, text);
  return int64_t(std::llround(bytes));
}

}  // namespace tqlm::cli
