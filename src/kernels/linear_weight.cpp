#include "kernels/linear_weight.h"

namespace tqlm {

Linear Linear::expert(int64_t e) const {
  if (parts) return (*parts)[size_t(e)];
  Linear l = *this;
  l.n_experts = 1;
  if (quantized()) {
    const int64_t groups = out * (in / group_size);
    l.wq = wq + e * out * (in * bits / 32);
    l.scales = static_cast<const uint8_t*>(scales) + size_t(e * groups) * dtype_size(sdtype);
    l.biases = static_cast<const uint8_t*>(biases) + size_t(e * groups) * dtype_size(sdtype);
    if (packed) l.packed = packed + size_t(e * ((out + 15) / 16) * packed_tile_bytes);
  } else {
    l.w = static_cast<const uint8_t*>(w) + size_t(e * out * in) * dtype_size(wdtype);
  }
  if (bias) l.bias = static_cast<const uint8_t*>(bias) + size_t(e * out) * dtype_size(bias_dtype);
  return l;
}

uint64_t Linear::bytes() const {
  if (parts) return (*parts)[0].bytes();
  if (quantized()) return uint64_t(out) * (in * bits / 8 + 2 * (in / group_size) * dtype_size(sdtype));
  return uint64_t(out * in) * dtype_size(wdtype);
}

}  // namespace tqlm
