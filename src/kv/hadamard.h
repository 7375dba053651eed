// Randomized Walsh-Hadamard rotation for TurboQuant: y = H D x / sqrt(n) with D = diag(signs), n a power
// of two. Orthogonal, so norms are kept and the inverse is x = D H y / sqrt(n). Sign vectors are fixed by a
// seed (splitmix64), recorded with the cache so a rotation can be reproduced anywhere.
#pragma once

#include <cstdint>
#include <vector>

namespace tqlm {

std::vector<float> hadamard_signs(int n, uint64_t seed);  // [n] of +1 / -1

// In place, n = x.size() a power of two. The f32 butterflies are the reference; SIMD paths come with the
// compressed attention kernels.
void hadamard_rotate_f32(float* x, int n, const float* signs);
void hadamard_unrotate_f32(float* x, int n, const float* signs);

}  // namespace tqlm
