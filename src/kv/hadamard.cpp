#include "kv/hadamard.h"

#include <cmath>

#include "core/error.h"

namespace tqlm {

namespace {
uint64_t splitmix64(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void check_pow2(int n) {
  if (n <= 0 || (n & (n - 1))) fail("Hadamard rotation: length {} is not a power of two", n);
}

// Unnormalised fast Walsh-Hadamard transform (Sylvester order), then scale by 1/sqrt(n).
void fwht(float* x, int n) {
  for (int h = 1; h < n; h <<= 1)
    for (int i = 0; i < n; i += 2 * h)
      for (int j = i; j < i + h; ++j) {
        const float a = x[j], b = x[j + h];
        x[j] = a + b;
        x[j + h] = a - b;
      }
  const float s = 1.0f / std::sqrt(float(n));
  for (int i = 0; i < n; ++i) x[i] *= s;
}
}  // namespace

std::vector<float> hadamard_signs(int n, uint64_t seed) {
  check_pow2(n);
  std::vector<float> s(static_cast<size_t>(n));
  uint64_t st = seed;
  for (int i = 0; i < n; ++i) s[size_t(i)] = (splitmix64(st) >> 63) ? -1.0f : 1.0f;
  return s;
}

void hadamard_rotate_f32(float* x, int n, const float* signs) {
  check_pow2(n);
  for (int i = 0; i < n; ++i) x[i] *= signs[i];
  fwht(x, n);
}

void hadamard_unrotate_f32(float* x, int n, const float* signs) {
  check_pow2(n);
  fwht(x, n);  // H is symmetric and H H / n = I
  for (int i = 0; i < n; ++i) x[i] *= signs[i];
}

}  // namespace tqlm
