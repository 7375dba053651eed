// Random quantized test matrices for the integer-kernel tests: E stacked [out, in] weights quantized by
// affine_quantize, with an optional f32 Linear bias.
#pragma once

#include <cstring>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "kernels/linear_weight.h"
#include "quant/affine.h"

namespace tqlm::test {

struct QMatrix {
  std::vector<uint32_t> wq;
  std::vector<uint8_t> scales, biases;
  std::vector<float> bias;
  Linear l;
};

inline void make_q(QMatrix& m, int64_t E, int64_t out, int64_t in, int bits, int gs, DType dt, bool with_bias,
                   std::mt19937& rng) {
  std::normal_distribution<float> nd;
  std::vector<uint8_t> src(size_t(E * out * in) * dtype_size(dt));
  for (size_t i = 0; i < size_t(E * out * in); ++i) {
    const float v = nd(rng) * 0.05f;
    if (dt == DType::F32) {
      std::memcpy(&src[i * 4], &v, 4);
    } else {
      const uint16_t h = dt == DType::BF16 ? f32_to_bf16(v) : f32_to_f16(v);
      std::memcpy(&src[i * 2], &h, 2);
    }
  }
  m.wq.resize(size_t(E * out * in * bits / 32));
  m.scales.resize(size_t(E * out * in / gs) * dtype_size(dt));
  m.biases.resize(m.scales.size());
  affine_quantize(src.data(), dt, E * out, in, bits, gs, m.wq.data(), m.scales.data(), m.biases.data());
  m.l = Linear{};
  m.l.name = "test";
  m.l.out = out;
  m.l.in = in;
  m.l.n_experts = E;
  m.l.bits = bits;
  m.l.group_size = gs;
  m.l.wq = m.wq.data();
  m.l.scales = m.scales.data();
  m.l.biases = m.biases.data();
  m.l.sdtype = dt;
  if (with_bias) {
    m.bias.resize(size_t(E * out));
    for (auto& v : m.bias) v = nd(rng);
    m.l.bias = m.bias.data();
    m.l.bias_dtype = DType::F32;
  }
}

}  // namespace tqlm::test
