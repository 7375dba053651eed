// tqlm: one binary, subcommands. Errors print one line naming the file or field and exit non-zero.
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "cli/progress.h"
#include "core/error.h"
#include "dist/comm.h"
#include "model/pipeline.h"
#include "model/weights.h"

#ifndef TQLM_VERSION
#define TQLM_VERSION "0.0.0"
#endif

namespace {

// Packing a large model's weights at load takes a while: a progress line once it has run for a second.
void show_pack_progress() {
  tqlm::set_pack_progress([shown = false](double done, double total, double seconds) mutable {
    if (!shown && seconds < 1.0) return;
    shown = true;
    tqlm::cli::progress_line("packing weights (MB)", done / 1e6, total / 1e6, seconds, "MB");
  });
}

int run_cli(int argc, char** argv) {
  show_pack_progress();
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
  tqlm::cli::add_calibrate(app);
  tqlm::cli::add_kv_plan(app);
  tqlm::cli::add_kv_calibrate(app);
  tqlm::cli::add_niah(app);
  tqlm::cli::add_mmlu(app);
  tqlm::cli::add_report(app);
  tqlm::cli::add_bench(app);
  tqlm::cli::add_serve(app);
  tqlm::cli::add_plan_split(app);
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

}  // namespace

// Under mpirun every rank runs this binary: rank 0 runs the command, the others serve as pipeline stages
// (model/pipeline.h) until rank 0 is done.
int main(int argc, char** argv) {
  std::unique_ptr<tqlm::WorldSession> session;
  try {
    session = std::make_unique<tqlm::WorldSession>(&argc, &argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tqlm: error: %s\n", e.what());
    return 1;
  }
  tqlm::Comm& comm = tqlm::world();
  if (comm.rank() > 0) return tqlm::run_pipeline_worker(comm);
  const int rc = run_cli(argc, argv);
  try {
    tqlm::stop_pipeline_workers(comm);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tqlm: error: %s\n", e.what());
    return 1;
  }
  return rc;
}
