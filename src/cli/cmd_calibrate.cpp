#include <cctype>
#include <chrono>
#include <cstdio>

#include "cli/calib_run.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "cli/progress.h"
#include "core/error.h"
#include "core/json.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace tqlm::cli {

void add_calib_text_options(CLI::App* cmd, CalibTextOptions& o, const std::string& p) {
  cmd->add_option("--" + p + "ctx", o.run.ctx, "Calibration window length in tokens")->capture_default_str();
  cmd->add_option("--" + p + "windows", o.run.windows, "Calibration windows (0: every full window)")
      ->capture_default_str();
  cmd->add_option("--" + p + "start", o.start,
                  "Use the calibration text's tokens from this fraction on (0.5: the second half, disjoint "
                  "from the first windows perplexity scores)")
      ->check(CLI::Range(0.0, 0.99))
      ->capture_default_str();
  cmd->add_flag("--" + p + "ids", o.ids,
                "The calibration file holds token ids (whitespace-separated integers), not text");
}

CalibStats calibrate_text(const std::string& model_path, const CalibTextOptions& o) {
  Model model(model_path, o.threads);
  const std::string text = read_text_file(o.data, "calibration text");
  std::vector<int32_t> tokens;
  if (o.ids) {
    tokens = parse_token_ids(text, o.data, model.config().vocab);
  } else {
    Tokenizer tok = Tokenizer::from_file(model_path);
    try {
      tokens = tok.encode(text, false);
    } catch (const Error& e) {
      fail("{}: {}", o.data, e.what());
    }
  }
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] < 0 || tokens[i] >= model.config().vocab)
      fail("{}: token id {} (the {}th) is outside the model's vocabulary [0, {})", o.data, tokens[i], i + 1,
           model.config().vocab);
  const size_t first = size_t(double(tokens.size()) * o.start);
  tokens.erase(tokens.begin(), tokens.begin() + std::ptrdiff_t(first));
  if (tokens.size() < 2)
    fail("{}: the calibration text has {} token(s) from --start on; it needs at least 2", o.data,
         tokens.size());
  const auto t0 = std::chrono::steady_clock::now();
  CalibStats s = calibrate(model, tokens, o.run, [&](int64_t d, int64_t n) {
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    progress_line("calibrate windows", double(d), double(n), sec, "win");
  });
  s.meta["data"] = o.data;
  s.meta["start_fraction"] = fmt::format("{}", o.start);
  s.meta["first_token"] = std::to_string(first);
  return s;
}

void add_calibrate(CLI::App& app) {
  struct Opts {
    std::string model, out;
    CalibTextOptions c;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand(
      "calibrate",
      "Run the engine over text and record, for every linear layer's input, the per-channel sum of squares "
      "and the token count (an importance matrix; MoE experts per expert over the tokens routed to them, "
      "scaled by their routing weights). `tqlm convert --stats FILE` uses it for error-minimising group "
      "parameters and for --policy auto. Keep the text disjoint from evaluation text (e.g. --start 0.5 of "
      "wiki.test.raw, whose first windows perplexity scores). Format: docs/formats.md.");
  cmd->add_option("model,-m,--model", o->model, "Model directory (the checkpoint that will be converted)")
      ->required();
  cmd->add_option("--data,-f", o->c.data, "UTF-8 calibration text")
      ->required()
      ->check(regular_file_check("--data"));
  cmd->add_option("-o,--out", o->out, "Statistics file to write (safetensors)")->required();
  cmd->add_option("-t,--threads", o->c.threads, "Worker threads (default: physical cores)");
  add_calib_text_options(cmd, o->c, "");
  cmd->callback([o] {
    CalibStats s = calibrate_text(o->model, o->c);
    s.save(o->out);
    std::printf("wrote %s: %zu linear inputs over %lld tokens (%s windows of %s) from %s\n", o->out.c_str(),
                s.inputs.size(), static_cast<long long>(s.tokens), s.meta["windows"].c_str(),
                s.meta["ctx"].c_str(), o->c.data.c_str());
  });
}

}  // namespace tqlm::cli
