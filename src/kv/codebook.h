// Lloyd-Max scalar codebooks for TurboQuant: the optimal 2^bits levels for one coordinate of a uniformly
// random unit vector in R^d, whose density is f(x) ∝ (1 - x^2)^((d-3)/2) on [-1, 1]
// ((x+1)/2 ~ Beta((d-1)/2, (d-1)/2)). Computed deterministically: the density is tabulated on a fine grid,
// prefix sums of f and x*f give exact cell masses and means (piecewise-linear interpolation inside grid
// cells), and Lloyd iterations (boundaries = midpoints, centroids = cell means) run to a fixed point.
// Any d >= 3 works the same way; the engine uses the model's head dim (64, 128, 256, ...).
#pragma once

#include <cstdint>
#include <vector>

namespace tqlm {

struct Codebook {
  int dim = 0, bits = 0;
  std::vector<float> centroids;   // [2^bits], ascending, symmetric about 0
  std::vector<float> boundaries;  // [2^bits - 1], midpoints between centroids
  double mse = 0;  // E[(x - c(x))^2] per coordinate under f (x d: per-vector MSE of a unit vector)
  // bits <= 4: the centroids on a 7-bit grid for integer scores, c_i ~= (u7[i] - 64) * u7_step with
  // u7_step = max |c| / 63, so u7[i] in [1, 127] [2^bits]; empty for more bits.
  std::vector<uint8_t> u7;
  float u7_step = 0.0f;

  // Index of the nearest centroid (binary search over the boundaries).
  int quantize(float x) const;
};

// Cached per (dim, bits); bits in 1..8.
const Codebook& lloyd_max_codebook(int dim, int bits);

}  // namespace tqlm
