#include <cstdio>

#include "cli/commands.h"
#include "io/checkpoint.h"
#include "quant/inspect.h"

namespace tqlm::cli {

void add_inspect(CLI::App& app) {
  struct Opts {
    std::string model;
    bool json = false;
  };
  auto opts = std::make_shared<Opts>();
  auto* cmd =
      app.add_subcommand("inspect",
                         "Per-role table of a checkpoint: tensors, parameters, bits, group size, bytes, "
                         "bits per weight, and totals");
  cmd->add_option("model", opts->model,
                  "Checkpoint directory (config.json + safetensors) or a .safetensors file")
      ->required();
  cmd->add_flag("--json", opts->json, "Print the report as JSON");
  cmd->callback([opts] {
    Checkpoint ck(opts->model);
    InspectReport r = inspect_checkpoint(ck);
    if (opts->json)
      std::printf("%s\n", inspect_to_json(r).dump(2).c_str());
    else
      std::fputs(format_inspect_table(r).c_str(), stdout);
  });
}

}  // namespace tqlm::cli
