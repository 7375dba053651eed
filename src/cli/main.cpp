// tqlm: one binary, subcommands. Errors print one line naming the file or field and exit non-zero.
#include <cstdio>

#include "cli/commands.h"
#include "core/error.h"

#ifndef TQLM_VERSION
#define TQLM_VERSION "0.0.0"
#endif

int main(int argc, char** argv) {
  CLI::App app{"tqlm: mixed-precision MLX checkpoints, TurboQuant KV cache, fast CPU inference"};
  app.set_version_flag("--version", TQLM_VERSION);
  app.require_subcommand(1);
  tqlm::cli::add_inspect(app);
  tqlm::cli::add_tokenize(app);
  tqlm::cli::add_chat_template(app);
  tqlm::cli::add_perplexity(app);
  tqlm::cli::add_generate(app);
  tqlm::cli::add_chat(app);
  tqlm::cli::add_convert(app);
  tqlm::cli::add_kv_plan(app);
  tqlm::cli::add_kv_calibrate(app);
  tqlm::cli::add_niah(app);
  tqlm::cli::add_mmlu(app);
  tqlm::cli::add_report(app);
  tqlm::cli::add_bench(app);
  tqlm::cli::add_serve(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const tqlm::Error& e) {
    std::fprintf(stderr, "tqlm: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tqlm: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
