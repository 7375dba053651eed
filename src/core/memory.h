// What the operating system says about this process's and the machine's memory (Linux /proc).
#pragma once

#include <cstdint>

namespace tqlm {

// Resident set size of this process in bytes (VmRSS), 0 where unknown.
int64_t resident_bytes();
// Memory the system could give without swapping (MemAvailable) in bytes, 0 where unknown.
uint64_t available_memory_bytes();

}  // namespace tqlm
