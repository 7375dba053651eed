#include "cli/commands.h"
namespace tqlm::cli {
void add_kv_plan(CLI::App&) {}  // placeholder until cmd_kv_plan lands (helper)
}
