// Option groups shared by the subcommands that load a model and generate (generate, chat, serve).
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kv/kv_spec.h"
#include "model/config.h"
#include "runtime/generator.h"
#include "runtime/sampler.h"

namespace tqlm::cli {

struct ModelOptions {
  std::string model;
  int threads = 0;
  std::string kv = "bf16";
  int kv_boundary = 2;
  int64_t ctx = 0;
  std::string kv_calib;  // --kv-calib; default MODEL/kv-calib.json when that exists
  KVSpec kv_spec() const;
};

struct SamplingOptions {
  std::optional<float> temp, top_p, min_p, repeat_penalty;
  std::optional<int> top_k;
  uint64_t seed = 0;
  int max_tokens = 256;
  std::vector<std::string> stop;
  // Model defaults (generation_config.json) overridden by whatever flags were given.
  SamplingParams resolve(const nlohmann::json* generation_config) const;
  GenerateOptions generate_options(int64_t ctx) const;
};

void add_model_options(CLI::App* cmd, ModelOptions& o, bool with_ctx = true);
void add_sampling_options(CLI::App* cmd, SamplingOptions& o);

// A file flag: the path must be a regular file (a FIFO or device is refused by name, never opened).
CLI::Validator regular_file_check(const char* flag);

// -t/--threads: 0 (physical cores) or 1..max_threads(); more is refused when the flags are parsed.
int max_threads();

// After a model is loaded: prints the config's warnings ("tqlm: warning: ...") and returns the context
// limit of the run (`ctx_flag` or the model's; over a stated max_position_embeddings: an error with both).
int64_t check_loaded_config(const ModelConfig& cfg, int64_t ctx_flag, const char* flag = "--ctx");
void print_config_warnings(const ModelConfig& cfg);

// A byte size: "36GB" (10^9), "36GiB" (2^30), "36G" (= GB), "512MB", "1.5GB", "1000000" (bytes); errors name
// the flag.
int64_t parse_size(const std::string& text, const char* flag);
// Whitespace-separated token ids (pre-tokenized data), each in [0, vocab); errors name `label` and the byte.
std::vector<int32_t> parse_token_ids(const std::string& text, const std::string& label, int64_t vocab);
// "64GB,32GB" -> sizes in bytes (each as parse_size, positive).
std::vector<uint64_t> parse_size_list(const std::string& text, const char* flag);
// "N UNIT" split by hand (no std::regex): optional spaces, a decimal number (digits with an optional
// fraction, or .digits), optional spaces, letters (maybe none), optional spaces. False for any other text.
bool split_number_unit(std::string_view text, std::string& number, std::string& unit);

}  // namespace tqlm::cli
