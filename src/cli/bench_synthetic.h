// `tqlm bench --synthetic minimax-m2`: the options and the run (cmd_bench_synthetic.cpp); cmd_bench.cpp
// registers them on the bench subcommand.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "cli/options.h"
#include "eval/bench.h"

namespace tqlm::cli {

struct SyntheticBenchOptions {
  std::string model;              // --synthetic NAME ("" = bench a model directory instead)
  std::vector<int> layers = {4};  // one or two middle-layer counts
  std::string policy = "config-i";
  double bandwidth = 400;  // GB/s of a machine to predict for
  std::string dir;         // default: $XDG_CACHE_HOME/tqlm/synthetic or ~/.cache/tqlm/synthetic
  bool keep = false;
  int64_t experts = 0, vocab = 0;  // scaled-down checkpoints for tests (0: the model's)
};

void add_synthetic_options(CLI::App* cmd, SyntheticBenchOptions& o);

// Writes (or reuses) the checkpoint of each layer count, benchmarks it in this process with `b` (contexts,
// decode, chunk; the KV mode of `m`), prints the tables and the full model's predicted speed (JSON with
// `json`); bandwidth: measure this machine's read bandwidth.
void run_synthetic_bench(const SyntheticBenchOptions& o, const ModelOptions& m, BenchOptions b,
                         bool bandwidth, bool json);

}  // namespace tqlm::cli
