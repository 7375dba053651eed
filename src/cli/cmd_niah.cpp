#include "cli/commands.h"
namespace tqlm::cli {
void add_niah(CLI::App&) {}  // placeholder until cmd_niah lands (helper)
}
