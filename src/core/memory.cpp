#include "core/memory.h"

#include <fstream>
#include <string>

namespace tqlm {

namespace {
// The number of kB after `key` in a /proc file ("VmRSS:    1234 kB"), or -1.
int64_t proc_kb(const char* file, const std::string& key) {
  std::ifstream f(file);
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(key, 0) == 0) return std::stoll(line.substr(key.size()));
  return -1;
}
}  // namespace

int64_t resident_bytes() {
  const int64_t kb = proc_kb("/proc/self/status", "VmRSS:");
  return kb < 0 ? 0 : kb * 1024;
}

uint64_t available_memory_bytes() {
  const int64_t kb = proc_kb("/proc/meminfo", "MemAvailable:");
  return kb < 0 ? 0 : uint64_t(kb) * 1024;
}

}  // namespace tqlm
