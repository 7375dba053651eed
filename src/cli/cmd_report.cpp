// `tqlm report`: flags only; the steps are src/eval/report.h.
#include <cstdio>

#include "cli/commands.h"
#include "cli/options.h"
#include "eval/report.h"

namespace tqlm::cli {

void add_report(CLI::App& app) {
  auto o = std::make_shared<ReportOptions>();
  auto* cmd = app.add_subcommand("report",
                                 "The model card's tables for one model in one command: inspect (bits per "
                                 "weight by role), perplexity on "
                                 "WikiText-2 with KL against --baseline (else against the model with a bf16 "
                                 "cache), MMLU (loglik, 5-shot), "
                                 "the needle-in-a-haystack grid and prefill/decode speed at several depths "
                                 "for every --kv mode, and the KV "
                                 "plan. Writes report.md, report.json and SVG plots (perplexity against bits "
                                 "per weight, KV bytes against "
                                 "context, decode speed against depth, one NIAH heatmap per mode; PNG copies "
                                 "where rsvg-convert exists) to "
                                 "--out. --quick (minutes on the default model): 4 windows of 512 tokens, 3 "
                                 "MMLU subjects x 20 questions, "
                                 "NIAH at 512/1024 tokens x 3 depths, speed at 128/1024; the full report: 10 "
                                 "windows of 2048, every MMLU "
                                 "subject x 20, NIAH 1K-8K x 5 depths, speed at 128/2K/8K.");
  cmd->add_option("model", o->model, "Checkpoint directory")->required()->check(CLI::ExistingDirectory);
  cmd->add_option("--baseline", o->baseline, "The uncompressed checkpoint (bf16) to measure KL against")
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--kv", o->kv_modes, "KV cache modes, comma-separated")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--also", o->also, "More checkpoints (other policies) for the perplexity-vs-bits plot")
      ->delimiter(',')
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--out,-o", o->out_dir, "Output directory")->capture_default_str();
  cmd->add_flag("--quick", o->quick, "Minutes instead of an hour: smaller windows, subsets and grids");
  cmd->add_option("-t,--threads", o->threads, "Worker threads (default: physical cores)");
  cmd->add_option("--wiki", o->wiki,
                  "WikiText-2 test file (default: ../shared/data/wikitext-2/wiki.test.raw)")
      ->check(regular_file_check("--wiki"));
  cmd->add_option("--mmlu", o->mmlu_dir, "MMLU directory (default: ../shared/data/mmlu)")
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--kv-calib", o->kv_calib,
                  "KV calibration file (tqlm kv-calibrate) for centred (...c), sink (...s) and auto:R modes "
                  "(default: MODEL/kv-calib.json when it exists)")
      ->check(regular_file_check("--kv-calib"));
  cmd->add_option("--haystack", o->haystack, "NIAH haystack text (default: the WikiText file)")
      ->check(regular_file_check("--haystack"));
  cmd->callback([o] { run_report(*o); });
}

}  // namespace tqlm::cli
