// `tqlm kv-calibrate`: writes a model's KV calibration file (src/eval/kv_calibrate.h, kv/kv_calib.h) from a
// text, starting at a fraction of its bytes so that it stays disjoint from perplexity windows at its start.
#include <cstdio>

#include "cli/commands.h"
#include "cli/options.h"
#include "cli/progress.h"
#include "core/error.h"
#include "core/json.h"
#include "eval/kv_calibrate.h"
#include "tokenizer/tokenizer.h"

namespace tqlm::cli {

void add_kv_calibrate(CLI::App& app) {
  struct Opts {
    ModelOptions m;
    std::string data, out, bits = "2,3,4,8";
    double offset = 0.5;
    KVCalibrateOptions c;
    bool no_sensitivity = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand(
      "kv-calibrate",
      "KV calibration for centred (--kv turbo4v2c) and per-layer (--kv auto:R) cache modes: mean key and "
      "value "
      "per layer and kv head, and each layer's KL when its keys or values alone are quantized. Reads --data "
      "from --offset (a fraction of its bytes, then the next line) and writes --out (default "
      "MODEL/kv-calib.json).");
  add_model_options(cmd, o->m, false);
  cmd->add_option("--data,-f", o->data, "UTF-8 text file")->required()->check(regular_file_check("--data"));
  cmd->add_option("--offset", o->offset, "Where the calibration text starts, as a fraction of the file")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 0.99));
  cmd->add_option("--tokens", o->c.tokens, "Tokens for the means")->capture_default_str();
  cmd->add_option("--window", o->c.window, "Window for the means (each from an empty cache)")
      ->capture_default_str();
  cmd->add_option("--kl-tokens", o->c.kl_tokens, "Tokens of the sensitivity window")->capture_default_str();
  cmd->add_option("--bits", o->bits, "TurboQuant bits measured per layer side")->capture_default_str();
  cmd->add_flag("--no-sensitivity", o->no_sensitivity, "Means only");
  cmd->add_flag("!--no-sink", o->c.sink, "Sensitivity without the bf16 sink copy of the first token");
  cmd->add_option("--out,-o", o->out, "Output file (default MODEL/kv-calib.json)");
  cmd->callback([o] {
    Model model(o->m.model, o->m.threads);
    Tokenizer tok = Tokenizer::from_file(o->m.model);
    const std::string text = read_text_file(o->data, "--data");
    size_t at = size_t(double(text.size()) * o->offset);
    if (at > 0)
      at = std::min(text.size(),
                    text.find('\n', at) == std::string::npos ? text.size() : text.find('\n', at) + 1);
    const std::vector<int32_t> tokens = tok.encode(text.substr(at), false);
    o->c.sensitivity = !o->no_sensitivity;
    o->c.bits.clear();
    for (size_t i = 0; i < o->bits.size(); ++i)
      if (o->bits[i] >= '0' && o->bits[i] <= '9') o->c.bits.push_back(o->bits[i] - '0');
    for (int b : o->c.bits)
      if (b < 2 || b > 8 || b == 7) fail("--bits {}: each must be 2, 3, 4, 5, 6 or 8", o->bits);
    o->c.source = fmt::format("{} from byte {} ({} of {}), {} tokens in windows of {}", o->data, at,
                              o->offset, text.size(), o->c.tokens, o->c.window);
    const KVCalib c = kv_calibrate(model, tokens, o->c, [](const std::string& step, int64_t d, int64_t n) {
      std::fprintf(stderr, "\rkv-calibrate %s %lld/%lld   ", step.c_str(), (long long)d, (long long)n);
    });
    std::fprintf(stderr, "\n");
    const std::string out = o->out.empty() ? o->m.model + "/kv-calib.json" : o->out;
    save_kv_calib(c, out);
    std::printf("%s: means of %lld layers x %lld kv heads x %lld dims%s\n", out.c_str(), (long long)c.layers,
                (long long)c.kv_heads, (long long)c.head_dim,
                c.k_kl.empty() ? "" : fmt::format(", sensitivity on {} tokens", c.kl_tokens).c_str());
  });
}

}  // namespace tqlm::cli
