#include <cctype>
#include <cstdio>

#include "cli/commands.h"
#include "cli/options.h"
#include "cli/progress.h"
#include "core/error.h"
#include "core/json.h"
#include "core/mapped_file.h"
#include "eval/perplexity.h"
#include "tokenizer/tokenizer.h"

namespace tqlm::cli {

void add_perplexity(CLI::App& app) {
  struct Opts {
    ModelOptions m;
    std::string data, token_file;
    PerplexityOptions p;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand(
      "perplexity",
      "Perplexity over fixed windows of a text file (mlx_lm convention). The file is tokenized once without "
      "special tokens; window i is tokens [i*ctx, (i+1)*ctx); the first --samples windows are used, each "
      "from an "
      "empty cache, scoring its ctx-1 next-token predictions. PPL = exp(mean NLL), standard error "
      "SE = PPL * sd(NLL) / sqrt(N) over the N predictions. --save-logits / --kl-base compare with a "
      "reference "
      "run: mean KL(ref || this) over the reference's top-64 tokens plus one bucket for the rest (a lower "
      "bound "
      "on the full KL), top-1 agreement, and the perplexity ratio.");
  add_model_options(cmd, o->m, false);
  auto* data = cmd->add_option("--data,-f", o->data, "UTF-8 text file")->check(regular_file_check("--data"));
  auto* toks =
      cmd->add_option("--tokens", o->token_file,
                      "Token ids instead of text: a file of whitespace-separated integers (pre-tokenized "
                      "data, or a model without a tokenizer)")
          ->check(regular_file_check("--tokens"))
          ->excludes(data);
  data->excludes(toks);
  cmd->add_option("--ctx", o->p.ctx, "Window length in tokens")->capture_default_str();
  cmd->add_option("--samples", o->p.samples, "Number of windows (0 = all)")->capture_default_str();
  cmd->add_option("--save-logits", o->p.save_logits, "Save this run as a reference for --kl-base");
  cmd->add_option("--kl-base", o->p.kl_base, "Compare against a reference saved with --save-logits");
  cmd->add_option("--parallel", o->p.parallel,
                  "Windows in flight at once (batched by the scheduler; results do not depend on it)")
      ->capture_default_str();
  cmd->add_option("--chunk", o->p.chunk, "Tokens per forward step")->capture_default_str();
  cmd->add_flag("--json", o->json, "Print the result as JSON");
  cmd->callback([o] {
    if (o->data.empty() && o->token_file.empty())
      fail("perplexity: --data (text) or --tokens (ids) is required");
    if (!o->p.kl_base.empty()) require_regular_file(o->p.kl_base, "--kl-base");
    Model model(o->m.model, o->m.threads);
    check_loaded_config(model.config(), o->p.ctx);
    std::vector<int32_t> tokens;
    if (!o->token_file.empty()) {
      tokens =
          parse_token_ids(read_text_file(o->token_file, "--tokens"), o->token_file, model.config().vocab);
      o->data = o->token_file;
    } else {
      Tokenizer tok = Tokenizer::from_file(o->m.model);
      const std::string text = read_text_file(o->data, "--data");
      try {
        tokens = tok.encode(text, false);
      } catch (const Error& e) {
        fail("{}: {}", o->data, e.what());
      }
    }
    if (o->p.parallel < 1 || o->p.chunk < 1) fail("perplexity: --parallel and --chunk must be >= 1");
    o->p.kv = o->m.kv_spec();
    auto r = run_perplexity(model, tokens, o->p, [](int64_t d, int64_t n, double s) {
      progress_line("perplexity windows", double(d), double(n), s, "win");
    });
    const double tps = double(r.windows * o->p.ctx) / r.seconds;
    const KVLayout kv = kv_layout(o->p.kv, model.config().kv_shape());
    if (o->json) {
      nlohmann::json j = {{"model", o->m.model},
                          {"data", o->data},
                          {"ctx", o->p.ctx},
                          {"windows", r.windows},
                          {"predictions", r.predictions},
                          {"kv", o->m.kv},
                          {"kv_boundary", kv.boundary},
                          {"kv_bytes_per_token", kv.bytes_per_token()},
                          {"ppl", r.ppl},
                          {"ppl_se", r.ppl_se},
                          {"mean_nll", r.mean_nll},
                          {"seconds", r.seconds},
                          {"tokens_per_second", tps}};
      if (r.compared)
        j.update({{"kl_mean", r.kl_mean},
                  {"kl_se", r.kl_se},
                  {"kl_max", r.kl_max},
                  {"top1_agreement", r.top1_agree},
                  {"base_ppl", r.base_ppl},
                  {"ppl_ratio", r.ppl_ratio},
                  {"kl_rest_mass", r.rest_mass}});
      std::printf("%s\n", j.dump(2).c_str());
      return;
    }
    std::printf(
        "model %s  data %s  ctx %lld  windows %lld  predictions %lld  kv %s (boundary %d, %lld "
        "bytes/token)\n",
        o->m.model.c_str(), o->data.c_str(), (long long)o->p.ctx, (long long)r.windows,
        (long long)r.predictions, o->m.kv.c_str(), kv.boundary, (long long)kv.bytes_per_token());
    std::printf("perplexity %.4f +/- %.4f  (mean NLL %.5f)  %.1f s, %.1f tokens/s\n", r.ppl, r.ppl_se,
                r.mean_nll, r.seconds, tps);
    if (r.compared)
      std::printf(
          "vs reference: KL %.6f +/- %.6f (max %.4f, mass outside ref top-64 %.4f)  top-1 agreement %.2f%%  "
          "PPL ratio %.5f (reference PPL %.4f)\n",
          r.kl_mean, r.kl_se, r.kl_max, r.rest_mass, 100 * r.top1_agree, r.ppl_ratio, r.base_ppl);
  });
}

}  // namespace tqlm::cli
