// What `tqlm bench` prints for its --contexts points (the table and the JSON array), shared by the bench
// of a model directory (cmd_bench.cpp) and of synthetic checkpoints (cmd_bench_synthetic.cpp).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/json.h"
#include "eval/bench.h"

namespace tqlm::cli {

// The points as JSON objects, each with the read bandwidth measured beside it (0: not measured).
nlohmann::json bench_points_json(const std::vector<BenchPoint>& pts);
// The table (one row per context) and the note on bandwidth and RSS growth, on stdout.
void print_bench_points(const std::vector<BenchPoint>& pts);
// Progress of a bench run: one line rewritten in place on a TTY, nothing in pipes. Call
// end_bench_progress() after the run.
std::function<void(const std::string&)> bench_progress();
void end_bench_progress();

}  // namespace tqlm::cli
