// SplitMix64: a well-mixed 64-bit value from any input, the same on every platform (seeded draws in the
// evaluation tools, so that runs compare).
#pragma once

#include <cstdint>

namespace tqlm {

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// The generator form: the next value of the stream whose state is `s`.
inline uint64_t splitmix64_next(uint64_t& s) {
  const uint64_t r = splitmix64(s);
  s += 0x9e3779b97f4a7c15ull;
  return r;
}

}  // namespace tqlm
