// Weights are read in place from the mapped checkpoint, and files written by mx.save_safetensors put tensors
// at any byte offset (the default model's data starts at byte 6 mod 8). Every linear path (each int8 family,
// each f32 family, the row expander used by embeddings) must give the same bits for a weight at an odd or
// 2-mod-4 address as for an aligned one, and (under UBSan, make asan) never dereference a misaligned pointer.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/linear.h"
#include "kernels/linear_kernels.h"
#include "kernels/qlinear.h"
#include "kernels/qlinear_kernels.h"
#include "quant/affine.h"

using namespace tqlm;

namespace {

// A copy of `src` whose first byte sits at `offset` mod 64 (plus slack: kernels read up to 64 bytes past a
// block inside the matrix, never past its end).
struct Shifted {
  std::vector<uint8_t> store;
  const void* p = nullptr;
  Shifted(const void* src, size_t n, size_t offset) : store(n + 128) {
    uint8_t* base = store.data();
    uint8_t* at = base + ((64 - reinterpret_cast<uintptr_t>(base) % 64) % 64) + offset;
    const auto* from = static_cast<const uint8_t*>(src);
    std::copy(from, from + n, at);
    p = at;
  }
};

// The matrix and its copy at `offset`: y of every family through both, bit for bit.
void check_quantized(int bits, int gs, DType dt, size_t offset, std::mt19937& rng) {
  const int64_t out = 21, in = 256;
  std::normal_distribution<float> nd;
  std::vector<float> src(size_t(out * in));
  for (auto& v : src) v = nd(rng) * 0.05f;
  std::vector<uint32_t> wq(size_t(out * in * bits / 32));
  std::vector<uint8_t> sc(size_t(out * in / gs) * dtype_size(dt)), bi(sc.size());
  std::vector<float> s32(size_t(out * in / gs)), b32(s32.size());
  affine_quantize(src.data(), DType::F32, out, in, bits, gs, wq.data(), s32.data(), b32.data());
  for (size_t g = 0; g < s32.size(); ++g) {  // the scales in dt
    if (dt == DType::F32) {
      std::memcpy(&sc[4 * g], &s32[g], 4), std::memcpy(&bi[4 * g], &b32[g], 4);
    } else {
      const uint16_t hs = dt == DType::BF16 ? f32_to_bf16(s32[g]) : f32_to_f16(s32[g]);
      const uint16_t hb = dt == DType::BF16 ? f32_to_bf16(b32[g]) : f32_to_f16(b32[g]);
      std::memcpy(&sc[2 * g], &hs, 2), std::memcpy(&bi[2 * g], &hb, 2);
    }
  }
  std::vector<float> lbias(static_cast<size_t>(out));
  for (auto& v : lbias) v = nd(rng);
  Linear a;
  a.name = "aligned";
  a.out = out, a.in = in, a.bits = bits, a.group_size = gs, a.sdtype = dt;
  a.wq = wq.data(), a.scales = sc.data(), a.biases = bi.data(), a.bias = lbias.data();
  a.bias_dtype = DType::F32;
  const Shifted w2(wq.data(), wq.size() * 4, offset), s2(sc.data(), sc.size(), offset),
      b2(bi.data(), bi.size(), offset + 1), l2(lbias.data(), lbias.size() * 4, offset);
  Linear u = a;
  u.name = "unaligned";
  u.wq = static_cast<const uint32_t*>(w2.p), u.scales = s2.p, u.biases = b2.p, u.bias = l2.p;

  std::vector<float> x(size_t(5 * in));
  for (auto& v : x) v = nd(rng);
  const std::string what = "bits=" + std::to_string(bits) + " gs=" + std::to_string(gs) +
                           " dtype=" + std::string(dtype_name(dt)) + " offset=" + std::to_string(offset);
  for (int64_t T : {1, 5}) {
    QActs xa;
    quantize_acts_q8(x.data(), T, in, xa);
    for (const char* isa : {"scalar", "avx2", "avxvnni", "avx512vnni", "avx512vbmi"}) {
      const QLinearKernels* k = qlinear_kernels_for(isa);
      if (!k) continue;
      std::vector<float> ya(size_t(T * out)), yu(ya.size()), scratch(size_t(qlinear_scratch_floats(a)));
      k->rows(a, xa, ya.data(), 0, out, scratch.data());
      k->rows(u, xa, yu.data(), 0, out, scratch.data());
      ASSERT_EQ(ya, yu) << "int8 " << isa << " T=" << T << " " << what;
    }
    for (const char* isa : {"sse2", "avx2", "avx512"}) {
      const LinearKernels* k = linear_kernels_for(isa);
      if (!k) continue;
      std::vector<float> ya(size_t(T * out)), yu(ya.size()), scratch(size_t(7 * in + 64));
      k->rows(a, x.data(), T, ya.data(), 0, out, scratch.data());
      k->rows(u, x.data(), T, yu.data(), 0, out, scratch.data());
      ASSERT_EQ(ya, yu) << "f32 " << isa << " T=" << T << " " << what;
    }
  }
  std::vector<float> ra(static_cast<size_t>(in)), ru(static_cast<size_t>(in));
  for (int64_t r : {int64_t(0), out - 1}) {
    linear_row_f32(a, r, ra.data());
    linear_row_f32(u, r, ru.data());
    ASSERT_EQ(ra, ru) << "row " << r << " " << what;
  }
}

}  // namespace

TEST(UnalignedWeights, QuantizedEveryPathSameBits) {
  std::mt19937 rng(11);
  for (int bits : {2, 3, 4, 5, 6, 8})
    for (int gs : {32, 64, 128})
      for (DType dt : {DType::BF16, DType::F16, DType::F32})
        for (size_t offset : {size_t(1), size_t(2), size_t(6)}) check_quantized(bits, gs, dt, offset, rng);
}

TEST(UnalignedWeights, FloatWeightsEveryPathSameBits) {
  std::mt19937 rng(12);
  std::normal_distribution<float> nd;
  const int64_t out = 19, in = 96;
  for (DType dt : {DType::BF16, DType::F16, DType::F32})
    for (size_t offset : {size_t(1), size_t(2), size_t(6)}) {
      std::vector<uint8_t> w(size_t(out * in) * dtype_size(dt));
      for (size_t i = 0; i < size_t(out * in); ++i) {
        const float v = nd(rng);
        if (dt == DType::F32) {
          std::memcpy(&w[4 * i], &v, 4);
        } else {
          const uint16_t h = dt == DType::BF16 ? f32_to_bf16(v) : f32_to_f16(v);
          std::memcpy(&w[2 * i], &h, 2);
        }
      }
      Linear a;
      a.name = "aligned";
      a.out = out, a.in = in, a.w = w.data(), a.wdtype = dt;
      const Shifted w2(w.data(), w.size(), offset);
      Linear u = a;
      u.w = w2.p;
      std::vector<float> x(size_t(3 * in));
      for (auto& v : x) v = nd(rng);
      for (const char* isa : {"sse2", "avx2", "avx512"}) {
        const LinearKernels* k = linear_kernels_for(isa);
        if (!k) continue;
        std::vector<float> ya(size_t(3 * out)), yu(ya.size()), scratch(size_t(7 * in + 64));
        k->rows(a, x.data(), 3, ya.data(), 0, out, scratch.data());
        k->rows(u, x.data(), 3, yu.data(), 0, out, scratch.data());
        ASSERT_EQ(ya, yu) << isa << " dtype=" << dtype_name(dt) << " offset=" << offset;
      }
      std::vector<float> ra(static_cast<size_t>(in)), ru(static_cast<size_t>(in));
      linear_row_f32(a, out - 1, ra.data());
      linear_row_f32(u, out - 1, ru.data());
      ASSERT_EQ(ra, ru) << "row, dtype=" << dtype_name(dt) << " offset=" << offset;
    }
}
