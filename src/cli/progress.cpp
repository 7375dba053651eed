#include "cli/progress.h"

#include <unistd.h>

#include <cstdio>

namespace tqlm::cli {

bool stderr_is_tty() {
  return ::isatty(STDERR_FILENO) == 1;
}

void progress_line(const std::string& label, double done, double total, double seconds, const char* unit) {
  if (!stderr_is_tty()) return;
  const double rate = seconds > 0 ? done / seconds : 0;
  const double eta = rate > 0 ? (total - done) / rate : 0;
  std::fprintf(stderr, "\r%s  %.0f/%.0f  %.1f %s/s  ETA %dm%02ds   ", label.c_str(), done, total, rate, unit,
               int(eta) / 60, int(eta) % 60);
  if (done >= total) std::fputc('\n', stderr);
  std::fflush(stderr);
}

}  // namespace tqlm::cli
