// Every instruction-set family of the linear kernels against the scalar reference (linear_rows_f32),
// for every bit width, group size, scale dtype, float weight dtype, bias, and token count.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/linear.h"
#include "kernels/linear_kernels.h"
#include "quant/affine.h"

using namespace tqlm;

namespace {

struct Buffers {
  std::vector<uint32_t> wq;
  std::vector<uint8_t> scales, biases, wf, bias;
};

Linear make_linear(Buffers& b, int64_t out, int64_t in, int bits, int gs, DType dt, bool with_bias,
                   std::mt19937& rng) {
  std::normal_distribution<float> nd;
  std::vector<float> w(size_t(out * in));
  for (auto& v : w) v = nd(rng);
  Linear l;
  l.name = "test";
  l.out = out;
  l.in = in;
  if (bits) {
    b.wq.resize(size_t(out * in * bits / 32));
    b.scales.resize(size_t(out * in / gs) * dtype_size(dt));
    b.biases.resize(b.scales.size());
    std::vector<uint8_t> src(w.size() * dtype_size(dt));
    for (size_t i = 0; i < w.size(); ++i) {
      if (dt == DType::F32)
        std::memcpy(&src[i * 4], &w[i], 4);
      else {
        uint16_t h = dt == DType::BF16 ? f32_to_bf16(w[i]) : f32_to_f16(w[i]);
        std::memcpy(&src[i * 2], &h, 2);
      }
    }
    affine_quantize(src.data(), dt, out, in, bits, gs, b.wq.data(), b.scales.data(), b.biases.data());
    l.bits = bits;
    l.group_size = gs;
    l.wq = b.wq.data();
    l.scales = b.scales.data();
    l.biases = b.biases.data();
    l.sdtype = dt;
  } else {
    b.wf.resize(w.size() * dtype_size(dt));
    for (size_t i = 0; i < w.size(); ++i) {
      if (dt == DType::F32)
        std::memcpy(&b.wf[i * 4], &w[i], 4);
      else {
        uint16_t h = dt == DType::BF16 ? f32_to_bf16(w[i]) : f32_to_f16(w[i]);
        std::memcpy(&b.wf[i * 2], &h, 2);
      }
    }
    l.w = b.wf.data();
    l.wdtype = dt;
  }
  if (with_bias) {
    b.bias.resize(size_t(out) * 4);
    for (int64_t i = 0; i < out; ++i) {
      float v = nd(rng);
      std::memcpy(&b.bias[size_t(i) * 4], &v, 4);
    }
    l.bias = b.bias.data();
    l.bias_dtype = DType::F32;
  }
  return l;
}

}  // namespace

TEST(LinearKernels, EveryFamilyMatchesReference) {
  std::mt19937 rng(11);
  std::normal_distribution<float> nd;
  const int64_t out = 37, in = 256;
  int families = 0;
  for (const char* isa : {"scalar", "avx2", "avx512"}) {
    const LinearKernels* k = linear_kernels_for(isa);
    if (!k) continue;
    ++families;
    for (int bits : {0, 2, 3, 4, 5, 6, 8})
      for (int gs : {32, 64, 128})
        for (DType dt : {DType::BF16, DType::F16, DType::F32})
          for (int64_t T : {1, 3, 4, 9}) {
            if (bits == 0 && gs != 32) continue;
            Buffers b;
            Linear l = make_linear(b, out, in, bits, gs, dt, T == 3, rng);
            std::vector<float> x(size_t(T * in)), ref(size_t(T * out)), got(size_t(T * out), NAN);
            for (auto& v : x) v = nd(rng);
            std::vector<float> row(static_cast<size_t>(in)), scratch(static_cast<size_t>(7 * in + 64));
            linear_rows_f32(l, x.data(), T, ref.data(), 0, out, row.data());
            k->rows(l, x.data(), T, got.data(), 0, out, scratch.data());
            for (size_t i = 0; i < ref.size(); ++i)
              ASSERT_NEAR(got[i], ref[i], 1e-4f * (1.0f + std::abs(ref[i])))
                  << isa << " bits=" << bits << " gs=" << gs << " dtype=" << dtype_name(dt) << " T=" << T
                  << " i=" << i;
          }
  }
  EXPECT_GE(families, 1);
}
