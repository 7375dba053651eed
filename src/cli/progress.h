// Progress on a terminal (stderr is a TTY): one line rewritten in place; silent in pipes.
#pragma once

#include <string>

namespace tqlm::cli {

bool stderr_is_tty();
// "label  done/total  rate unit/s  ETA 1m23s" with \r; newline when done == total.
void progress_line(const std::string& label, double done, double total, double seconds, const char* unit);

}  // namespace tqlm::cli
