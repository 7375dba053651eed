// The integer linear kernels (qlinear_kernels.h): every family this CPU has, plus the forced lower ones
// (avx2 without VNNI, scalar), bit for bit against the scalar reference for every bit width, group size,
// scale dtype, odd row counts and T = 1..9; the reference against a double-precision product of the
// dequantized weights with the original x, within the bound int8 rounding of the activations allows, and
// with the rounded x up to f32 rounding.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "kernels/qlinear.h"
#include "kernels/qlinear_kernels.h"
#include "qmatrix.h"
#include "quant/affine.h"

using namespace tqlm;
using tqlm::test::make_q;
using tqlm::test::QMatrix;

namespace {

std::vector<float> run(const QLinearKernels& k, const Linear& l, const QActs& xa, int64_t r0 = 0) {
  std::vector<float> y(size_t(xa.T * l.out), NAN), scratch(size_t(qlinear_scratch_floats(l)));
  // odd splits of the rows, as threads would take them (tiles of 8)
  for (int64_t r = r0; r < l.out; r += 16)
    k.rows(l, xa, y.data(), r, std::min(l.out, r + 16), scratch.data());
  return y;
}

std::vector<const char*> families() {
  std::vector<const char*> f;
  for (const char* isa : {"scalar", "avx2", "avxvnni", "avx512vnni", "avx512vbmi"})
    if (qlinear_kernels_for(isa)) f.push_back(isa);
  return f;
}

}  // namespace

TEST(QLinearKernels, EveryFamilyBitIdenticalToReference) {
  std::mt19937 rng(5);
  std::normal_distribution<float> nd;
  const std::vector<const char*> fams = families();
  EXPECT_GE(fams.size(), 1u);
  for (const char* f : fams) std::printf("int8 family: %s\n", f);
  const QLinearKernels& ref = *qlinear_kernels_for("scalar");
  for (int bits : {2, 3, 4, 5, 6, 8})
    for (int gs : {32, 64, 128})
      for (DType dt : {DType::BF16, DType::F16, DType::F32})
        for (int64_t out : {1, 13, 37}) {
          const int64_t in = 3 * 128;
          QMatrix m;
          make_q(m, 1, out, in, bits, gs, dt, out == 13, rng);
          std::vector<float> x(size_t(9 * in));
          for (auto& v : x) v = nd(rng) * (1.0f + float(rng() % 4));
          x[5] = 0.0f;
          QActs all;
          quantize_acts_q8(x.data(), 9, in, all);
          const std::vector<float> y_ref = run(ref, m.l, all);
          for (int64_t T = 1; T <= 9; ++T) {
            QActs xa;
            quantize_acts_q8(x.data(), T, in, xa);  // the first T rows: same values as in `all`
            for (const char* f : fams) {
              const std::vector<float> y = run(*qlinear_kernels_for(f), m.l, xa);
              for (int64_t i = 0; i < T * out; ++i)
                ASSERT_EQ(y[size_t(i)], y_ref[size_t(i)])
                    << f << " bits=" << bits << " gs=" << gs << " dtype=" << dtype_name(dt) << " out=" << out
                    << " T=" << T << " i=" << i;
            }
          }
        }
}

// Against double precision: with w = scale * q + bias (f32 scale/bias) and x quantized per 16-block with
// step d, |y - y_exact| <= sum_j |scale_g * q_j| * d_j / 2 (activation rounding) + 1e-5 * (1 + sum_j |w_j
// x_j|) (f32 arithmetic). The bias term uses the exact x, so it adds no int8 error.
TEST(QLinearKernels, ReferenceWithinInt8BoundOfDoubleProduct) {
  std::mt19937 rng(9);
  std::normal_distribution<float> nd;
  for (int bits : {2, 3, 4, 5, 6, 8})
    for (int gs : {32, 64, 128}) {
      const int64_t out = 21, in = 512, T = 3;
      QMatrix m;
      make_q(m, 1, out, in, bits, gs, DType::F32, false, rng);
      std::vector<float> x(size_t(T * in));
      for (auto& v : x) v = nd(rng);
      QActs xa;
      quantize_acts_q8(x.data(), T, in, xa);
      const std::vector<float> y = run(*qlinear_kernels_for("scalar"), m.l, xa);
      std::vector<uint8_t> codes(static_cast<size_t>(in));
      const float* sc = reinterpret_cast<const float*>(m.scales.data());
      const float* bi = reinterpret_cast<const float*>(m.biases.data());
      double max_rel = 0;
      for (int64_t r = 0; r < out; ++r) {
        affine_unpack_row(m.wq.data() + r * in * bits / 32, in, bits, codes.data());
        for (int64_t t = 0; t < T; ++t) {
          double exact = 0, bound = 0, mag = 0, same_inputs = 0;
          for (int64_t j = 0; j < in; ++j) {
            const int64_t g = r * (in / gs) + j / gs;
            const double wj = double(sc[g]) * codes[size_t(j)] + double(bi[g]);
            const double xq =
                double(xa.q[size_t(t * in + j)]) * xa.d[size_t(t * (in / kQ8Block) + j / kQ8Block)];
            same_inputs += wj * xq;
            exact += wj * x[size_t(t * in + j)];
            mag += std::abs(wj * x[size_t(t * in + j)]);
            bound += std::abs(wj) * xa.d[size_t(t * (in / kQ8Block) + j / kQ8Block)] / 2;
          }
          // what the kernel computes, in double: equal up to f32 rounding
          ASSERT_NEAR(y[size_t(t * out + r)], same_inputs, 2e-6 * (1 + mag))
              << "bits=" << bits << " gs=" << gs;
          const double err = std::abs(double(y[size_t(t * out + r)]) - exact);
          ASSERT_LE(err, bound + 1e-5 * (1 + mag))
              << "bits=" << bits << " gs=" << gs << " r=" << r << " t=" << t;
          max_rel = std::max(max_rel, err / (1e-9 + mag));
        }
      }
      EXPECT_LT(max_rel, 0.05) << "bits=" << bits << " gs=" << gs;
    }
}

TEST(QLinearKernels, QuantizeActs) {
  std::vector<float> x(64);
  for (int i = 0; i < 64; ++i) x[size_t(i)] = i < 32 ? float(i) - 16.0f : 0.0f;
  QActs a;
  quantize_acts_q8(x.data(), 1, 64, a);
  ASSERT_EQ(a.blocks(), 4);  // blocks of 16: -16..-1, 0..15, zeros, zeros
  EXPECT_FLOAT_EQ(a.d[0], 16.0f / 127.0f);
  EXPECT_EQ(a.q[0], -127);
  EXPECT_EQ(a.q[15], int8_t(std::nearbyint(-127.0f / 16.0f)));
  EXPECT_FLOAT_EQ(a.d[1], 15.0f / 127.0f);
  EXPECT_EQ(a.q[16], 0);
  EXPECT_EQ(a.q[31], 127);
  EXPECT_EQ(a.q[30], int8_t(std::nearbyint(14.0f * 127.0f / 15.0f)));
  for (int b = 0; b < 2; ++b) {
    int qsum = 0;
    for (int i = 16 * b; i < 16 * b + 16; ++i) qsum += a.q[size_t(i)];
    EXPECT_EQ(a.s[size_t(b)], float(qsum) * a.d[size_t(b)]);
  }
  EXPECT_EQ(a.d[2], 0.0f);
  EXPECT_EQ(a.d[3], 0.0f);
  for (int i = 32; i < 64; ++i) EXPECT_EQ(a.q[size_t(i)], 0);
}

TEST(QLinearKernels, EveryFamilyQuantizesLikeTheReference) {
  std::mt19937 rng(17);
  std::normal_distribution<float> nd;
  const int64_t T = 5, in = 8 * 32;
  std::vector<float> x(size_t(T * in));
  for (size_t i = 0; i < x.size(); ++i) x[i] = nd(rng) * float(1 + i % 7) * (i % 97 == 0 ? 100.0f : 1.0f);
  for (int j = 0; j < 32; ++j) x[size_t(32 + j)] = 0.0f;                   // two all-zero blocks
  for (int j = 0; j < 32; ++j) x[size_t(64 + j)] = float(j % 16 - 8) / 2;  // ties at x * 127 / 4 (x = +-2)
  x[100] = NAN;                                                            // garbage in, same garbage out
  x[140] = -INFINITY;
  QActs ref;
  ref.T = T;
  ref.in = in;
  ref.q.resize(size_t(T * in));
  ref.d.resize(size_t(T * in / kQ8Block));
  ref.s.resize(ref.d.size());
  QActs got = ref;
  quantize_rows_q8_ref(x.data(), 0, T, ref);
  for (const char* f : families()) {
    std::fill(got.q.begin(), got.q.end(), int8_t(99));
    qlinear_kernels_for(f)->quantize(x.data(), 0, T, got);
    EXPECT_EQ(got.q, ref.q) << f;
    for (size_t i = 0; i < ref.d.size(); ++i) {
      EXPECT_EQ(std::memcmp(&got.d[i], &ref.d[i], 4), 0) << f << " d " << i;
      EXPECT_EQ(std::memcmp(&got.s[i], &ref.s[i], 4), 0) << f << " s " << i;
    }
  }
}

TEST(QLinearKernels, PathSettingAndThreadedEntryPoint) {
  EXPECT_EQ(parse_linear_path("f32"), LinearPath::f32);
  EXPECT_EQ(parse_linear_path("int8"), LinearPath::int8);
  EXPECT_ANY_THROW(parse_linear_path("int4"));
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  QMatrix m;
  make_q(m, 1, 300, 256, 4, 64, DType::BF16, true, rng);
  std::vector<float> x(size_t(5 * 256));
  for (auto& v : x) v = nd(rng);
  QActs xa;
  quantize_acts_q8(x.data(), 5, 256, xa);
  const std::vector<float> ref = run(*qlinear_kernels_for("scalar"), m.l, xa);
  ThreadPool pool(3);
  std::vector<float> y(ref.size(), NAN);
  linear_q8(m.l, xa, y.data(), pool);
  EXPECT_EQ(y, ref);
  const LinearPath saved = linear_path();
  set_linear_path(LinearPath::int8);
  QActs store;
  LinearInput in{x.data(), 5, 256, &store};
  std::fill(y.begin(), y.end(), NAN);
  linear(m.l, in, y.data(), pool);
  EXPECT_TRUE(in.quantized);
  EXPECT_EQ(y, ref);
  set_linear_path(saved);
}
