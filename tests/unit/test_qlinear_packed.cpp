// The packed 16-row tile layout (qlinear_pack.h): packing reads back as the MLX codes and scales, every
// family with a packed kernel matches the scalar reference on the MLX layout bit for bit (bit widths 2, 4,
// 8, every group size and scale dtype, odd row counts, T = 1..9, odd row splits), stacked experts slice
// their packed copy, and the threaded entry points give the same results with and without packing.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "kernels/qlinear.h"
#include "kernels/qlinear_kernels.h"
#include "kernels/qlinear_pack.h"
#include "qmatrix.h"
#include "quant/affine.h"

using namespace tqlm;
using tqlm::test::make_q;
using tqlm::test::QMatrix;

namespace {

std::vector<float> run_ref(const Linear& l, const QActs& xa) {
  std::vector<float> y(size_t(xa.T * l.out), NAN), scratch(size_t(qlinear_scratch_floats(l)));
  qlinear_kernels_for("scalar")->rows(l, xa, y.data(), 0, l.out, scratch.data());
  return y;
}

std::vector<float> run_packed(const QLinearKernels& k, const Linear& l, const QActs& xa) {
  std::vector<float> y(size_t(xa.T * l.out), NAN);
  for (int64_t r = 0; r < l.out; r += 32) k.packed_rows(l, xa, y.data(), r, std::min(l.out, r + 32));
  return y;
}

std::vector<const QLinearKernels*> packed_families() {
  std::vector<const QLinearKernels*> f;
  for (const char* isa : {"scalar", "avx2", "avxvnni", "avx512vnni", "avx512vbmi"})
    if (const QLinearKernels* k = qlinear_kernels_for(isa); k && k->packed_rows) f.push_back(k);
  return f;
}

}  // namespace

TEST(QLinearPacked, LayoutReadsBackAsMlx) {
  std::mt19937 rng(11);
  for (int bits : {2, 3, 4, 8})
    for (DType dt : {DType::BF16, DType::F16, DType::F32}) {
      QMatrix m;
      make_q(m, 1, 37, 256, bits, 64, dt, false, rng);
      ASSERT_TRUE(qlinear_packable(m.l));
      const Linear p = qlinear_pack(m.l);
      ASSERT_NE(p.packed, nullptr);
      EXPECT_EQ(p.packed_tile_bytes % 64, 0);
      std::vector<uint8_t> want(256), got(256);
      std::vector<float> sc(4), bi(4);
      for (int64_t r = 0; r < 37; ++r) {
        affine_unpack_row(m.wq.data() + r * 256 * bits / 32, 256, bits, want.data());
        qlinear_packed_row(p, r, got.data(), sc.data(), bi.data());
        ASSERT_EQ(got, want) << "bits=" << bits << " r=" << r;
        for (int g = 0; g < 4; ++g) {
          ASSERT_EQ(sc[size_t(g)], load_as_f32(m.scales.data(), dt, size_t(r * 4 + g)));
          ASSERT_EQ(bi[size_t(g)], load_as_f32(m.biases.data(), dt, size_t(r * 4 + g)));
        }
      }
    }
  QMatrix m5;  // 5 and 6 bits keep the MLX layout
  make_q(m5, 1, 16, 64, 5, 32, DType::BF16, false, rng);
  EXPECT_FALSE(qlinear_packable(m5.l));
  EXPECT_ANY_THROW(qlinear_pack(m5.l));
}

TEST(QLinearPacked, EveryPackedKernelBitIdenticalToReference) {
  const std::vector<const QLinearKernels*> fams = packed_families();
  for (const QLinearKernels* k : fams) std::printf("packed int8 family: %s\n", k->isa);
  if (fams.empty()) GTEST_SKIP() << "no family with a packed kernel on this CPU";
  std::mt19937 rng(5);
  std::normal_distribution<float> nd;
  for (int bits : {2, 3, 4, 8})
    for (int gs : {32, 64, 128})
      for (DType dt : {DType::BF16, DType::F16, DType::F32})
        for (int64_t out : {1, 13, 37}) {
          const int64_t in = 3 * 128;
          QMatrix m;
          make_q(m, 1, out, in, bits, gs, dt, out == 13, rng);
          const Linear p = qlinear_pack(m.l);
          std::vector<float> x(size_t(9 * in));
          for (auto& v : x) v = nd(rng) * (1.0f + float(rng() % 4));
          x[5] = 0.0f;
          for (int64_t T = 1; T <= 9; ++T) {
            QActs xa;
            quantize_acts_q8(x.data(), T, in, xa);
            const std::vector<float> want = run_ref(m.l, xa);
            for (const QLinearKernels* k : fams) {
              const std::vector<float> y = run_packed(*k, p, xa);
              for (int64_t i = 0; i < T * out; ++i)
                ASSERT_EQ(y[size_t(i)], want[size_t(i)])
                    << k->isa << " bits=" << bits << " gs=" << gs << " dtype=" << dtype_name(dt)
                    << " out=" << out << " T=" << T << " i=" << i;
            }
          }
        }
}

TEST(QLinearPacked, ExpertsAndThreadedEntryPoints) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd;
  for (int bits : {2, 3}) {
    QMatrix m;
    make_q(m, 3, 40, 256, bits, 64, DType::BF16, true, rng);
    const Linear p = qlinear_pack(m.l);
    std::vector<float> x(size_t(5 * 256));
    for (auto& v : x) v = nd(rng);
    QActs xa;
    quantize_acts_q8(x.data(), 5, 256, xa);
    ThreadPool pool(3);
    std::vector<QLinearJob> jobs;
    std::vector<std::vector<float>> ys(3, std::vector<float>(5 * 40, NAN));
    std::vector<Linear> experts;
    for (int64_t e = 0; e < 3; ++e) experts.push_back(p.expert(e));
    for (int64_t e = 0; e < 3; ++e) jobs.push_back({&experts[size_t(e)], &xa, ys[size_t(e)].data()});
    linear_q8_grouped(jobs, pool);  // the dispatched family: packed where it has a kernel for it
    for (int64_t e = 0; e < 3; ++e) {
      EXPECT_EQ(ys[size_t(e)], run_ref(m.l.expert(e), xa)) << "bits " << bits << " expert " << e;
      std::vector<float> y(5 * 40, NAN);
      linear_q8(experts[size_t(e)], xa, y.data(), pool);
      EXPECT_EQ(y, ys[size_t(e)]) << "bits " << bits << " expert " << e;
    }
  }
}
