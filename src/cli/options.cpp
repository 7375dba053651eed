#include "cli/options.h"

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

}  // namespace tqlm::cli
