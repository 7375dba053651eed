// Lloyd-Max scalar codebooks for TurboQuant: the optimal 2^bits levels for one coordinate of a uniformly
// random unit vector in R^d, whose density is f(x) ∝ (1 - x^2)^((d-3)/2) on [-1, 1]
// ((x+1)/2 ~ Beta((d-1)/2, (d-1)/2)). Computed deterministically: the density is tabulated on a fine grid,
// prefix sums of f and x*f give exact cell masses and means (piecewise-linear interpolation inside grid
// cells), and Lloyd iterations (boundaries = midpoints, centroids = cell means) run to a fixed point.
// Any d >= 3 works the same way; the engine uses the model's head dim (64, 128, 256, ...).
#pragma once

#include <vector>

namespace tqlm {

struct Codebook {
  int dim = 0, bits = 0;
  std::vector<float> centroids;   // [2^bits], ascending, symmetric about 0
  std::vector<float> boundaries;  // [2^bits - 1], midpoints between centroids
  double mse = 0;  // E[(x - c(x))^2] per coordinate under f (x d: per-vector MSE of a unit vector)

  // Index of the nearest centroid (binary search over the boundaries).
  int quantize(float x) const;
};

// Cached per (dim, bits); bits in 1..8.
const Codebook& lloyd_max_codebook(int dim, int bits);

}  // namespace tqlm
