#include "cli/options.h"

#include <cctype>
#include <cmath>
#include <filesystem>
#include <thread>

#include "core/error.h"
#include "core/mapped_file.h"
#include "core/thread_pool.h"
#include "kernels/qlinear.h"
#include "model/layer_split.h"
#include "model/pipeline.h"

namespace tqlm::cli {

int max_threads() {
  const int hw = int(std::max(1u, std::thread::hardware_concurrency()));
  return std::min(kMaxThreads, kMaxThreadsPerCpu * hw);
}

void print_config_warnings(const ModelConfig& cfg) {
  for (const auto& w : cfg.warnings) std::fprintf(stderr, "tqlm: warning: %s\n", w.c_str());
}

int64_t check_loaded_config(const ModelConfig& cfg, int64_t ctx_flag, const char* flag) {
  print_config_warnings(cfg);
  return context_limit(cfg, ctx_flag, flag);
}

namespace {
// A validator naming the flag: `ok(x)` or "FLAG X: must be WHAT".
template <typename T, typename Ok>
CLI::Validator flag_check(const char* flag, const char* what, Ok ok) {
  return CLI::Validator(
      [flag, what, ok](std::string& s) -> std::string {
        T x{};
        if (!CLI::detail::lexical_cast(s, x) || !ok(x))
          return fmt::format("{} {}: must be {}", flag, s, what);
        return "";
      },
      what);
}
}  // namespace

CLI::Validator regular_file_check(const char* flag) {
  return CLI::Validator(
      [flag](std::string& path) -> std::string {
        try {
          require_regular_file(path, flag);
        } catch (const Error& e) {
          return e.what();
        }
        return "";
      },
      "FILE");
}

KVSpec ModelOptions::kv_spec() const {
  std::string calib = kv_calib;
  if (calib.empty() && std::filesystem::is_regular_file(model + "/kv-calib.json"))
    calib = model + "/kv-calib.json";
  return {kv, kv_boundary, calib};
}

void add_model_options(CLI::App* cmd, ModelOptions& o, bool with_ctx) {
  cmd->add_option("model,-m,--model", o.model, "Model directory (MLX or HF checkpoint with config.json)")
      ->required();
  cmd->add_option("-t,--threads", o.threads, "Worker threads (default: physical cores)")
      ->check(flag_check<int64_t>("--threads", "in [1, min(kMaxThreads, 8 x CPUs)] (0: physical cores)",
                                  [](int64_t n) { return n >= 0 && n <= max_threads(); }));
  cmd->add_option("--kv", o.kv, "KV cache mode: " + kv_modes_help());
  cmd->add_option_function<std::string>(
         "--linear", [](const std::string& s) { set_linear_path(parse_linear_path(s)); },
         "Linear layers of quantized weights: int8 (int8 activations, integer dot products) or f32 (weights "
         "expanded to f32, the reference); default TQLM_LINEAR or int8")
      ->check(CLI::IsMember({"int8", "f32"}));
  cmd->add_option("--kv-boundary", o.kv_boundary,
                  "Compressed KV modes: the first and last N layers stay bf16")
      ->capture_default_str();
  cmd->add_option_function<std::string>(
      "--layer-split", [](const std::string& s) { pipeline_options().layer_split = parse_layer_split(s); },
      "Under mpirun: layers per rank, e.g. 30,32 (default: in proportion to each rank's memory)");
  cmd->add_option_function<std::string>(
      "--mem-limit",
      [](const std::string& s) { pipeline_options().mem_limit = parse_size_list(s, "--mem-limit"); },
      "Under mpirun: memory each rank may use, e.g. 64GB,32GB or one value for all (default: the host's "
      "available memory shared by its ranks)");
  cmd->add_option("--kv-calib", o.kv_calib,
                  "KV calibration file (tqlm kv-calibrate) for centred (...c) and auto:R modes (default: "
                  "MODEL/kv-calib.json when it exists)");
  if (with_ctx)
    cmd->add_option("--ctx", o.ctx, "Context limit in tokens (default: the model's max_position_embeddings)")
        ->check(flag_check<int64_t>("--ctx", "a positive number of tokens",
                                    [](int64_t n) { return n >= 1 && n <= kMaxContext; }));
}

void add_sampling_options(CLI::App* cmd, SamplingOptions& o) {
  cmd->add_option("--max-tokens,-n", o.max_tokens, "Maximum tokens to generate")
      ->capture_default_str()
      ->check(flag_check<int64_t>("--max-tokens", ">= 0", [](int64_t n) { return n >= 0; }));
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

namespace {
// Every sampling value in range, whether it came from a flag or from generation_config.json.
void check_sampling(const SamplingParams& p, const SamplingOptions& o) {
  auto from = [](bool flag, const char* name, const char* field) {
    return flag ? std::string(name) : std::string("generation_config.json: ") + field;
  };
  if (!(std::isfinite(p.temperature) && p.temperature >= 0 && p.temperature <= 100))
    fail("{} {}: must be in [0, 100] (0 = greedy)", from(bool(o.temp), "--temp", "temperature"),
         p.temperature);
  if (!(p.top_p > 0 && p.top_p <= 1))
    fail("{} {}: must be in (0, 1] (1 = off)", from(bool(o.top_p), "--top-p", "top_p"), p.top_p);
  if (p.top_k < 0) fail("{} {}: must be >= 0 (0 = off)", from(bool(o.top_k), "--top-k", "top_k"), p.top_k);
  if (!(p.min_p >= 0 && p.min_p <= 1))
    fail("{} {}: must be in [0, 1] (0 = off)", from(bool(o.min_p), "--min-p", "min_p"), p.min_p);
  if (!(std::isfinite(p.repetition_penalty) && p.repetition_penalty > 0 && p.repetition_penalty <= 100))
    fail("{} {}: must be in (0, 100] (1 = off)",
         from(bool(o.repeat_penalty), "--repeat-penalty", "repetition_penalty"), p.repetition_penalty);
}
}  // namespace

SamplingParams SamplingOptions::resolve(const nlohmann::json* gen) const {
  SamplingParams p;
  if (gen) p.apply_generation_config(*gen);
  if (temp) p.temperature = *temp;
  if (top_p) p.top_p = *top_p;
  if (top_k) p.top_k = *top_k;
  if (min_p) p.min_p = *min_p;
  if (repeat_penalty) p.repetition_penalty = *repeat_penalty;
  p.seed = seed;
  check_sampling(p, *this);
  return p;
}

GenerateOptions SamplingOptions::generate_options(int64_t ctx) const {
  GenerateOptions g;
  g.max_tokens = max_tokens;
  g.stop = stop;
  g.ctx = ctx;
  return g;
}

bool split_number_unit(std::string_view text, std::string& number, std::string& unit) {
  size_t i = 0;
  auto spaces = [&] {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  };
  auto run = [&](auto is) {
    const size_t b = i;
    while (i < text.size() && is(static_cast<unsigned char>(text[i]))) ++i;
    return text.substr(b, i - b);
  };
  auto digit = [](unsigned char c) { return std::isdigit(c) != 0; };
  spaces();
  const size_t b = i;
  const bool int_part = !run(digit).empty();
  bool frac_part = false;
  if (i < text.size() && text[i] == '.') {
    ++i;
    frac_part = !run(digit).empty();
  }
  if (!int_part && !frac_part) return false;
  number = std::string(text.substr(b, i - b));
  spaces();
  unit = std::string(run([](unsigned char c) { return std::isalpha(c) != 0; }));
  spaces();
  return i == text.size();
}

// "36GB" (10^9), "36GiB" (2^30), "36G" (= GB), "512MB", "1.5GB", "1000000" (bytes).
std::vector<int32_t> parse_token_ids(const std::string& text, const std::string& label, int64_t vocab) {
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i < text.size()) {
    if (std::isspace(static_cast<unsigned char>(text[i]))) {
      ++i;
      continue;
    }
    const size_t start = i;
    int64_t v = 0;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])) && i - start < 10)
      v = v * 10 + (text[i++] - '0');
    if (i == start || (i < text.size() && !std::isspace(static_cast<unsigned char>(text[i])))) {
      size_t end = start;
      while (end < text.size() && end - start < 20 && !std::isspace(static_cast<unsigned char>(text[end])))
        ++end;
      fail("{}: '{}' at byte {} is not a token id (a non-negative integer)", label,
           text.substr(start, end - start), start);
    }
    if (v >= vocab) fail("{}: token id {} is outside the model's vocabulary [0, {})", label, v, vocab);
    ids.push_back(int32_t(v));
  }
  return ids;
}

std::vector<uint64_t> parse_size_list(const std::string& text, const char* flag) {
  std::vector<uint64_t> r;
  size_t at = 0;
  while (at <= text.size()) {
    const size_t comma = std::min(text.find(',', at), text.size());
    const int64_t n = parse_size(text.substr(at, comma - at), flag);
    if (n <= 0) fail("{} '{}': every size must be positive", flag, text.substr(0, 64));
    r.push_back(uint64_t(n));
    if (r.size() > 4096) fail("{}: more than 4096 values", flag);
    at = comma + 1;
  }
  return r;
}

int64_t parse_size(const std::string& text, const char* flag) {
  std::string num, u;
  // at most 64 characters (a 1000-digit size was a bare "stod"; std::regex, used before, recursed per
  // character and a 100 KB flag was a segfault)
  if (text.size() > 64 || !split_number_unit(text, num, u))
    fail("{} '{}': expected a size such as 36GB, 36GiB, 512MB or a number of bytes (at most 64 characters)",
         flag, text.substr(0, 64));
  const std::string unit_text = u;
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
    fail("{} '{}': unknown unit '{}' (use B, KB, MB, GB, TB or KiB, MiB, GiB, TiB)", flag, text, unit_text);
  const double bytes = std::stod(num) * mult;
  if (!(bytes >= 1) || bytes > 9e18) fail("{} '{}': must be at least 1 byte and finite", flag, text);
  return int64_t(std::llround(bytes));
}

}  // namespace tqlm::cli
