// The KV cache in every mode: kernels of every instruction-set family against the scalar references,
// attention over the stored codes against attention over the explicitly dequantized cache, prefill equal to
// token-by-token decode, codes and norms as the format says, and the byte accounting.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/kv_kernels.h"
#include "kv/codebook.h"
#include "kv/hadamard.h"
#include "kv/kv_cache.h"
#include "kv/kv_calib.h"
#include "kv/kv_codec.h"

using namespace tqlm;

namespace {

const char* kModes[] = {"f32",       "bf16",     "f16",      "q8",       "turbo2",   "turbo3",
                        "turbo4",    "turbo8",   "turbo4v2", "turbo2v4", "turbo8v3", "turbo3v8",
                        "turbo4v2c", "turbo3cs", "q8cs",     "turbo4s",  "f32c",     "turbo6v5s"};

KVShape small_config(int64_t layers, int64_t H, int64_t KV, int64_t hd) {
  return KVShape{layers, H, KV, hd};
}

std::vector<float> randn(size_t n, std::mt19937& rng, float sd = 1.0f) {
  std::normal_distribution<float> nd(0.0f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

// A calibration with random means for the centred modes.
KVSpec spec_with_calib(const char* mode, int boundary, const KVShape& c) {
  auto cal = std::make_shared<KVCalib>();
  cal->layers = c.layers;
  cal->kv_heads = c.kv_heads;
  cal->head_dim = c.head_dim;
  std::mt19937 rng(5);
  cal->k_mean = randn(size_t(c.layers * c.kv_heads * c.head_dim), rng, 2.0f);
  cal->v_mean = randn(size_t(c.layers * c.kv_heads * c.head_dim), rng);
  KVSpec s(mode, boundary);
  s.calib = cal;
  return s;
}

}  // namespace

TEST(KVKernels, EveryFamilyMatchesReference) {
  std::mt19937 rng(11);
  for (const char* isa : {"scalar", "avx2", "avx512", "avx512vnni"}) {
    const KVKernels* kk = kv_kernels_for(isa);
    if (!kk) continue;
    for (const char* mode :
         {"f32", "bf16", "f16", "q8", "turbo2", "turbo3", "turbo4", "turbo5", "turbo6", "turbo8"})
      for (int64_t hd : {64, 128, 80}) {
        KVShape c = small_config(1, 2, 1, hd);
        const KVSideFormat f = kv_layout({mode, 0}, c).k[0];
        KVSideCodec codec(f, hd, 3);
        const int64_t n = 37, R = 5, d = f.dim;
        std::vector<uint8_t> codes(size_t(n * f.code_bytes()));
        std::vector<uint16_t> sc(static_cast<size_t>(n));
        auto x = randn(size_t(n * hd), rng);
        for (int64_t t = 0; t < n; ++t)
          codec.encode(&x[size_t(t * hd)], &codes[size_t(t * f.code_bytes())], &sc[size_t(t)]);
        std::vector<float> a(size_t(n * d)), b(size_t(n * d));
        kk->decode(codec.row_format(), codes.data(), n, a.data());
        kv_decode_ref(codec.row_format(), codes.data(), n, b.data());
        ASSERT_EQ(a, b) << isa << " " << mode << " hd " << hd;
        auto q = randn(size_t(R * d), rng), scale = randn(size_t(n), rng), p = randn(size_t(R * n), rng);
        std::vector<float> s1(size_t(R * n)), s2(size_t(R * n));
        kk->scores(q.data(), R, d, a.data(), scale.data(), n, d, s1.data(), n);
        kv_scores_ref(q.data(), R, d, a.data(), scale.data(), n, d, s2.data(), n);
        for (int64_t r = 0; r < R; ++r)
          for (int64_t t = 0; t < n; ++t) {  // tolerance: f32 rounding of the sum of |terms|
            double mag = 0;
            for (int64_t j = 0; j < d; ++j) mag += std::fabs(q[size_t(r * d + j)] * a[size_t(t * d + j)]);
            const size_t i = size_t(r * n + t);
            EXPECT_NEAR(s1[i], s2[i], 1e-5 * mag * std::fabs(scale[size_t(t)]) + 1e-6) << isa << mode;
          }
        {  // many rows (the transposed prefill kernel) give each row's few-row (decode) bits
          const int64_t RM = 30;
          auto qm = randn(size_t(RM * d), rng);
          std::vector<float> sm(size_t(RM * n)), s1r(static_cast<size_t>(n));
          kk->scores(qm.data(), RM, d, a.data(), scale.data(), n, d, sm.data(), n);
          for (int64_t r = 0; r < RM; ++r) {
            kk->scores(qm.data() + r * d, 1, d, a.data(), scale.data(), n, d, s1r.data(), n);
            ASSERT_EQ(std::vector<float>(sm.begin() + r * n, sm.begin() + (r + 1) * n), s1r)
                << isa << " " << mode << " hd " << hd << " row " << r;
          }
        }
        std::vector<float> e1(static_cast<size_t>(n)), e2(static_cast<size_t>(n));
        for (int64_t t = 0; t < n; ++t)
          e1[size_t(t)] = e2[size_t(t)] = -std::fabs(s2[size_t(t)]) * 9.0f - 0.01f * float(t);
        e1[3] = e2[3] = -100.0f;                                   // underflows to (about) 0
        const float mx = *std::max_element(e1.begin(), e1.end());  // softmax: exp(s - max), terms <= 1
        for (int64_t nn = 1; nn <= n; ++nn)
          ASSERT_EQ(kk->row_max(e1.data(), nn), kv_row_max_ref(e1.data(), nn));
        ASSERT_EQ(kk->row_max(e1.data(), n), mx);
        const float sum1 = kk->exp_sum(e1.data(), n, mx), sum2 = kv_exp_sum_ref(e2.data(), n, mx);
        EXPECT_NEAR(sum1, sum2, 1e-6f * sum2) << isa;
        for (int64_t t = 0; t < n; ++t)
          EXPECT_NEAR(e1[size_t(t)], e2[size_t(t)], 3e-7f * e2[size_t(t)] + 1e-30f) << isa;
        std::vector<float> o1(size_t(R * d), 0.5f), o2(size_t(R * d), 0.5f);
        kk->accumulate(p.data(), R, n, a.data(), scale.data(), n, d, o1.data(), d);
        kv_accumulate_ref(p.data(), R, n, a.data(), scale.data(), n, d, o2.data(), d);
        for (size_t i = 0; i < o1.size(); ++i) {
          double mag = 0.5;
          for (int64_t t = 0; t < n; ++t)
            mag += std::fabs(p[size_t(int64_t(i) / d * n + t)] * scale[size_t(t)] *
                             a[size_t(t * d + int64_t(i) % d)]);
          EXPECT_NEAR(o1[i], o2[i], 1e-5 * mag) << isa << mode;
        }
        // over the codes in place: the same bits, for row counts on both sides of the in-register limits
        const int64_t RC = 30;
        const auto qc = randn(size_t(RC * d), rng), pc = randn(size_t(RC * n), rng);
        for (int64_t R2 : {1, 3, 5, 6, 8, 16, 17, 30}) {
          std::vector<float> k1(size_t(R2 * n)), k2(size_t(R2 * n));
          kk->scores_codes(codec.row_format(), codes.data(), qc.data(), R2, d, scale.data(), n, k1.data(), n);
          kk->scores(qc.data(), R2, d, a.data(), scale.data(), n, d, k2.data(), n);
          ASSERT_EQ(k1, k2) << isa << " " << mode << " hd " << hd << " R " << R2;
        }
        for (int64_t R2 : {1, 3, 5, 6, 8, 16, 17, 30}) {
          std::vector<float> c1(size_t(R2 * d), 0.5f), c2(size_t(R2 * d), 0.5f);
          kk->accumulate_codes(codec.row_format(), codes.data(), pc.data(), R2, n, scale.data(), n, c1.data(),
                               d);
          kk->accumulate(pc.data(), R2, n, a.data(), scale.data(), n, d, c2.data(), d);
          ASSERT_EQ(c1, c2) << isa << " " << mode << " hd " << hd << " R " << R2;
        }
        if (!codec.row_format().lut_u7 || f.bits != 4) continue;
        // integer scores over 4-bit codes: exact integers, so every family equals the reference bit for bit,
        // and the scores are those of the 7-bit centroid grid (within its rounding of the f32 centroids)
        for (int64_t R8 : {1, 3, 4, 5, 9, 30}) {
          std::vector<int8_t> q8(size_t(R8 * d));
          std::vector<int32_t> qsum(static_cast<size_t>(R8));
          std::vector<float> qmul(static_cast<size_t>(R8));
          std::uniform_int_distribution<int> qd(-127, 127);
          for (int64_t r = 0; r < R8; ++r) {
            for (int64_t j = 0; j < d; ++j) qsum[size_t(r)] += (q8[size_t(r * d + j)] = int8_t(qd(rng)));
            qmul[size_t(r)] = 0.01f * float(r + 1) * codec.row_format().lut_step;
          }
          const KVQueryQ8 qq{q8.data(), d, qsum.data(), qmul.data()};
          for (int64_t nn : {n, int64_t(1), int64_t(4), int64_t(6)}) {
            std::vector<float> t1(size_t(R8 * nn)), t2(size_t(R8 * nn));
            kk->scores_q8(codec.row_format(), codes.data(), scale.data(), nn, qq, R8, t1.data(), nn);
            kv_scores_q8_ref(codec.row_format(), codes.data(), scale.data(), nn, qq, R8, t2.data(), nn);
            ASSERT_EQ(t1, t2) << isa << " hd " << hd << " R " << R8 << " n " << nn;
            for (int64_t r = 0; r < R8; ++r)
              for (int64_t t = 0; t < nn; ++t) {
                double exact = 0, mag = 0;
                for (int64_t j = 0; j < d; ++j) {
                  exact += double(q8[size_t(r * d + j)]) * a[size_t(t * d + j)];
                  mag += std::fabs(double(q8[size_t(r * d + j)]));
                }
                exact *= double(qmul[size_t(r)]) / codec.row_format().lut_step * scale[size_t(t)];
                const double tol = 0.5 * double(codec.row_format().lut_step) * mag * double(qmul[size_t(r)]) /
                                   codec.row_format().lut_step * std::fabs(scale[size_t(t)]);
                EXPECT_NEAR(t1[size_t(r * nn + t)], exact, tol + 1e-4) << isa << " r " << r << " t " << t;
              }
          }
        }
      }
  }
}

// Integer value sums over 2- and 4-bit codes (accumulate_q8): exact integers, so every family equals the
// reference bit for bit, whatever the rows, tokens and head width; and they stay close to the f32 sums over
// the decoded codes (the u8 weights and the 7-bit centroid grid are the only differences).
TEST(KVKernels, IntegerValueSumsMatchReferenceOnEveryFamily) {
  std::mt19937 rng(23);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  for (const char* isa : {"scalar", "avx2", "avx512", "avx512vnni"}) {
    const KVKernels* kk = kv_kernels_for(isa);
    if (!kk) continue;
    for (const char* mode : {"turbo2", "turbo4"})
      for (int64_t hd : {64, 128, 256}) {
        const KVSideFormat f = kv_layout({mode, 0}, small_config(1, 2, 1, hd)).k[0];
        KVSideCodec codec(f, hd, 3);
        const KVRowFormat& rf = codec.row_format();
        ASSERT_TRUE(rf.lut_u7) << mode;
        const int64_t n = 256, d = f.dim, Rmax = 30;
        std::vector<uint8_t> codes(size_t(n * f.code_bytes()));
        std::vector<uint16_t> sc16(static_cast<size_t>(n));
        auto x = randn(size_t(n * hd), rng);
        for (int64_t t = 0; t < n; ++t)
          codec.encode(&x[size_t(t * hd)], &codes[size_t(t * f.code_bytes())], &sc16[size_t(t)]);
        std::vector<float> dec(size_t(n * d)), scale(static_cast<size_t>(n)), p(size_t(Rmax * n));
        kv_decode_ref(rf, codes.data(), n, dec.data());
        for (int64_t t = 0; t < n; ++t) scale[size_t(t)] = 0.5f + unit(rng);
        for (int64_t r = 0; r < Rmax; ++r)  // softmax numerators: one 1, a spread below it, some zeros
          for (int64_t t = 0; t < n; ++t)
            p[size_t(r * n + t)] = t % 7 == 3 ? 0.0f : std::exp(-8.0f * unit(rng)) * (t == r ? 0.0f : 1.0f);
        for (int64_t r = 0; r < Rmax; ++r) p[size_t(r * n + r % n)] = 1.0f;
        std::fill_n(p.begin() + 2 * n, n, 0.0f);  // row 2 adds nothing
        for (int64_t R : {1, 3, 6, 7, 30})
          for (int64_t nn : {1, 3, 4, 5, 64, 255, 256}) {
            std::vector<float> o1(size_t(R * d), 0.5f), o2(size_t(R * d), 0.5f), o3(size_t(R * d), 0.5f);
            kk->accumulate_q8(rf, codes.data(), p.data(), R, n, scale.data(), nn, o1.data(), d);
            kv_accumulate_q8_ref(rf, codes.data(), p.data(), R, n, scale.data(), nn, o2.data(), d);
            ASSERT_EQ(o1, o2) << isa << " " << mode << " hd " << hd << " R " << R << " n " << nn;
            if (R < 3) continue;
            kv_accumulate_ref(p.data(), R, n, dec.data(), scale.data(), nn, d, o3.data(), d);
            double err = 0, mag = 0;
            for (size_t i = 0; i < o1.size(); ++i) {
              err += (o1[i] - o3[i]) * (o1[i] - o3[i]);
              mag += (o3[i] - 0.5) * (o3[i] - 0.5);
            }
            EXPECT_LT(std::sqrt(err), 0.02 * std::sqrt(mag) + 1e-6) << isa << " " << mode << " n " << nn;
            for (int64_t j = 0; j < d; ++j) ASSERT_EQ(o1[size_t(2 * d + j)], 0.5f);  // the zero row
          }
        // broken inputs (NaN or infinite weights) give numbers or NaN, never a crash
        std::vector<float> bad(p.begin(), p.begin() + 3 * n), o(size_t(3 * d), 0.0f);
        bad[5] = std::nanf("");
        bad[n + 7] = INFINITY;
        kk->accumulate_q8(rf, codes.data(), bad.data(), 3, n, scale.data(), n, o.data(), d);
      }
  }
}

// The stored format, bit by bit: packed indices LSB-first, nearest centroid of the rotated unit vector, fp16
// norm |x| / |c| (so the reconstruction keeps the norm of x).
TEST(KVCodec, TurboCodesAreNearestCentroidsOfTheRotatedUnitVector) {
  std::mt19937 rng(3);
  for (int bits : {2, 3, 4, 8}) {
    const int64_t hd = 64;
    KVSideFormat f{KVCodes::TURBO, bits, hd};
    KVSideCodec codec(f, hd, kTurboKeySeed);
    auto x = randn(size_t(hd), rng, 3.0f);
    std::vector<uint8_t> codes(size_t(f.code_bytes()));
    uint16_t scale = 0;
    codec.encode(x.data(), codes.data(), &scale);
    double nn = 0;
    for (float v : x) nn += double(v) * v;
    std::vector<float> y(x);
    for (auto& v : y) v = float(v / std::sqrt(nn));
    const auto signs = hadamard_signs(int(hd), kTurboKeySeed);
    hadamard_rotate_f32(y.data(), int(hd), signs.data());
    const Codebook& cb = lloyd_max_codebook(int(hd), bits);
    double cc = 0;
    for (int64_t j = 0; j < hd; ++j) {
      uint32_t idx = 0;
      for (int i = 0; i < bits; ++i)
        idx |= uint32_t((codes[size_t((j * bits + i) / 8)] >> ((j * bits + i) % 8)) & 1) << i;
      int best = 0;
      for (int k = 1; k < (1 << bits); ++k)
        if (std::fabs(y[size_t(j)] - cb.centroids[size_t(k)]) <
            std::fabs(y[size_t(j)] - cb.centroids[size_t(best)]))
          best = k;
      ASSERT_EQ(int(idx), best) << "bits " << bits << " coord " << j;
      cc += double(cb.centroids[idx]) * cb.centroids[idx];
    }
    EXPECT_EQ(scale, f32_to_f16(float(std::sqrt(nn) / std::sqrt(cc))));
    std::vector<float> back(static_cast<size_t>(hd));
    codec.dequantize(codes.data(), scale, back.data());
    double bb = 0, err = 0;
    for (int64_t j = 0; j < hd; ++j) {
      bb += double(back[size_t(j)]) * back[size_t(j)];
      err += std::pow(double(back[size_t(j)]) - x[size_t(j)], 2);
    }
    EXPECT_NEAR(std::sqrt(bb), std::sqrt(nn), 2e-3 * std::sqrt(nn));
    EXPECT_LT(err / nn, 4.0 * cb.mse * double(hd) + 0.02) << bits;  // a few times the expected distortion
  }
}

// Compressed attention equals attention over the explicitly dequantized cache, for every mode; prefill in
// chunks equals token-by-token decode exactly; head dims 64, 128 and 80 (padded to 128 for the rotation).
// With integer scores (4-bit keys, int8 queries) and integer value sums (2- and 4-bit values, u8 weights)
// prefill still equals decode exactly, and the outputs stay within the queries' int8 rounding and the
// weights' u8 rounding of the dequantized attention.
TEST(KVCache, AttentionOverCodesEqualsAttentionOverDequantizedCache) {
  std::mt19937 rng(7);
  for (int variant : {0, 1, 2})  // f32 scores and values; integer scores; integer scores and values
    for (int64_t hd : {64, 80, 128})
      for (const char* mode : kModes) {
        const int64_t layers = 5, H = 6, KV = 2, G = H / KV, n = 300;  // two pages
        KVShape c = small_config(layers, H, KV, hd);
        ThreadPool pool(2);
        auto prefill = make_kv_cache(spec_with_calib(mode, 1, c), c),
             decode = make_kv_cache(spec_with_calib(mode, 1, c), c);
        for (KVCache* kc : {prefill.get(), decode.get()}) {
          kc->set_int8_scores(variant >= 1);
          kc->set_int8_values(variant == 2);
        }
        const KVSideFormat& vf = prefill->layout().v[2];
        const bool q8 = variant >= 1 && std::string(mode).rfind("turbo4", 0) == 0;  // 4-bit keys
        const bool v8 =
            variant == 2 && vf.codes == KVCodes::TURBO && (vf.bits == 2 || vf.bits == 4) && vf.dim % 64 == 0;
        if ((variant == 1 && !q8) || (variant == 2 && !v8)) continue;
        auto k = randn(size_t(n * KV * hd), rng), v = randn(size_t(n * KV * hd), rng);
        auto q = randn(size_t(n * H * hd), rng, 2.0f);
        for (int64_t i = 0; i < n * KV; ++i)
          k[size_t(i * hd)] += 4.0f;  // an outlier channel, as real keys have
        const int64_t layer = 2;      // compressed (boundary 1 of 5)
        std::vector<float> out_p(size_t(n * H * hd)), out_d(size_t(n * H * hd));
        for (int64_t pos = 0; pos < n;) {  // chunks of 1, 7, 64, ... tokens
          const int64_t T = std::min<int64_t>(n - pos, pos == 0 ? 1 : pos < 10 ? 7 : 97);
          prefill->write(layer, pos, T, &k[size_t(pos * KV * hd)], &v[size_t(pos * KV * hd)]);
          prefill->attend(layer, pos, T, &q[size_t(pos * H * hd)], &out_p[size_t(pos * H * hd)], pool);
          pos += T;
        }
        for (int64_t pos = 0; pos < n; ++pos) {
          decode->write(layer, pos, 1, &k[size_t(pos * KV * hd)], &v[size_t(pos * KV * hd)]);
          decode->attend(layer, pos, 1, &q[size_t(pos * H * hd)], &out_d[size_t(pos * H * hd)], pool);
        }
        ASSERT_EQ(out_p, out_d) << mode << " hd " << hd << ": prefill differs from decode";
        // reference: dequantize every stored vector, then plain softmax attention in double
        std::vector<float> K(size_t(n * KV * hd)), V(size_t(n * KV * hd));
        for (int64_t s = 0; s < n; ++s)
          for (int64_t h = 0; h < KV; ++h)
            decode->dequantize(layer, s, h, &K[size_t((s * KV + h) * hd)], &V[size_t((s * KV + h) * hd)]);
        double max_err = 0, max_ref = 0;
        for (int64_t t = 0; t < n; t += 13)
          for (int64_t hq = 0; hq < H; ++hq) {
            const int64_t h = hq / G;
            std::vector<double> sc(static_cast<size_t>(t + 1));
            double m = -1e300;
            for (int64_t s = 0; s <= t; ++s) {
              double d = 0;
              for (int64_t j = 0; j < hd; ++j)
                d += double(q[size_t((t * H + hq) * hd + j)]) * K[size_t((s * KV + h) * hd + j)];
              sc[size_t(s)] = d / std::sqrt(double(hd));
              m = std::max(m, sc[size_t(s)]);
            }
            double l = 0;
            for (auto& x : sc) l += (x = std::exp(x - m));
            for (int64_t j = 0; j < hd; ++j) {
              double o = 0;
              for (int64_t s = 0; s <= t; ++s) o += sc[size_t(s)] * V[size_t((s * KV + h) * hd + j)];
              o /= l;
              max_err = std::max(max_err, std::fabs(o - out_d[size_t((t * H + hq) * hd + j)]));
              max_ref = std::max(max_ref, std::fabs(o));
            }
          }
        // int8 queries: scores move by up to ~|q|_max / 254 per coordinate; on these sharp random softmaxes
        // (queries of sd 2, an outlier key channel) outputs move by up to ~0.1 (measured 0.03-0.09). u8
        // weights (16-bit): the 7-bit centroid grid dominates (measured: up to 0.005 with f32 scores)
        const double tol = q8 ? 0.15 : v8 ? 0.02 : 2e-5;
        if (std::getenv("TQLM_TEST_PRINT_ERR"))
          std::printf("%s hd %lld variant %d: max err %.4g (ref %.3g)\n", mode, (long long)hd, variant,
                      max_err, max_ref);
        EXPECT_LT(max_err, tol * std::max(1.0, max_ref)) << mode << " hd " << hd << " int8 " << q8 << v8;
      }
}

TEST(KVCache, BoundaryLayersStayBf16AndBytesAreCounted) {
  KVShape c = small_config(6, 4, 2, 64);
  auto cache = make_kv_cache({"turbo4v2", 2}, c);
  const KVLayout& L = cache->layout();
  for (int64_t l = 0; l < 6; ++l) {
    const bool boundary = l < 2 || l >= 4;
    EXPECT_EQ(L.k[size_t(l)].codes, boundary ? KVCodes::BF16 : KVCodes::TURBO);
    EXPECT_EQ(L.v[size_t(l)].bits, boundary ? 16 : 2);
  }
  // per token: 4 bf16 layers x 2 heads x 2 x 128 B + 2 turbo layers x 2 heads x ((32 + 2) + (16 + 2)) B
  EXPECT_EQ(L.bytes_per_token(), 4 * 2 * 2 * 128 + 2 * 2 * (34 + 18));
  EXPECT_NEAR(L.nominal_ratio(), 16.0 / 3.0, 1e-12);
  EXPECT_EQ(cache->bytes(), 0u);
  std::mt19937 rng(1);
  auto k = randn(2 * 64 * 300, rng);
  for (int64_t l = 0; l < 6; ++l) cache->write(l, 0, 300, k.data(), k.data());  // 300 tokens: two pages
  EXPECT_EQ(cache->bytes(), uint64_t(2 * 256 * L.bytes_per_token()));
  // boundary layers hold bf16 exactly
  std::vector<float> kk(64), vv(64);
  cache->dequantize(0, 5, 1, kk.data(), vv.data());
  for (int j = 0; j < 64; ++j)
    EXPECT_EQ(kk[size_t(j)], bf16_to_f32(f32_to_bf16(k[size_t((5 * 2 + 1) * 64 + j)])));
  // modes: boundary capped at layers / 2; float modes have no boundary; errors name the mode
  EXPECT_EQ(kv_layout({"q8", 100}, c).boundary, 3);
  EXPECT_EQ(kv_layout({"bf16", 2}, c).boundary, 0);
  EXPECT_EQ(kv_layout({"turbo4v2", 0}, c).bytes_per_token(), 6 * 2 * (34 + 18));
  for (const char* bad : {"turbo7", "turbo4v1", "q4", "", "turbo", "turbo4v2x"}) {
    try {
      kv_layout({bad, 2}, c);
      ADD_FAILURE() << bad << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("turbo4v2"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(kv_layout({"turbo4", -1}, c), Error);
}
