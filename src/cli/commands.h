// Subcommand registration: each cmd_*.cpp adds one CLI11 subcommand that parses arguments and calls
// into the library. No logic lives here.
#pragma once

#include <CLI/CLI.hpp>

namespace tqlm::cli {

void add_inspect(CLI::App& app);
void add_tokenize(CLI::App& app);
void add_chat_template(CLI::App& app);
void add_perplexity(CLI::App& app);
void add_generate(CLI::App& app);
void add_chat(CLI::App& app);
void add_convert(CLI::App& app);
void add_calibrate(CLI::App& app);  // cmd_calibrate.cpp
void add_kv_plan(CLI::App& app);    // cmd_kv_plan.cpp
void add_niah(CLI::App& app);       // cmd_niah.cpp
void add_bench(CLI::App& app);
void add_serve(CLI::App& app);   // cmd_serve.cpp
void add_plan_split(CLI::App& app);  // cmd_plan_split.cpp
void add_mmlu(CLI::App& app);    // cmd_mmlu.cpp
void add_report(CLI::App& app);  // cmd_report.cpp
void add_kv_calibrate(CLI::App& app);

}  // namespace tqlm::cli
