// A typed, shaped, read-only view of tensor bytes (usually inside a mapped safetensors file).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace tqlm {

using Shape = std::vector<int64_t>;

inline int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}
std::string shape_str(const Shape& s);  // "[256, 1536, 3072]"

struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  const uint8_t* data = nullptr;  // may be unaligned: safetensors does not pad tensors
  size_t nbytes = 0;

  int64_t numel() const { return shape_numel(shape); }
  int64_t dim(int i) const { return shape[i < 0 ? shape.size() + i : size_t(i)]; }
};

}  // namespace tqlm
