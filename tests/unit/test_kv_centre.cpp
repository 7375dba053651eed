// Centring, the sink copy and per-layer formats of the KV cache: centring on the float cache changes
// attention only at rounding level, the sink copy is what position 0 reads back, bytes stay exact (block =
// 256 x bytes per token), and the per-layer allocation stays within its budget.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "kv/kv_alloc.h"
#include "kv/kv_cache.h"

using namespace tqlm;

namespace {

std::vector<float> gauss(size_t n, std::mt19937& rng, float sd = 1.0f) {
  std::normal_distribution<float> nd(0.0f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

std::shared_ptr<KVCalib> calib_for(const KVShape& c, uint32_t seed) {
  auto cal = std::make_shared<KVCalib>();
  cal->layers = c.layers;
  cal->kv_heads = c.kv_heads;
  cal->head_dim = c.head_dim;
  std::mt19937 rng(seed);
  cal->k_mean = gauss(size_t(c.layers * c.kv_heads * c.head_dim), rng, 8.0f);
  cal->v_mean = gauss(size_t(c.layers * c.kv_heads * c.head_dim), rng, 3.0f);
  return cal;
}

// Attention of n tokens written and attended one chunk at a time: out [n, H, hd].
std::vector<float> attend_all(const KVSpec& spec, const KVShape& c, const std::vector<float>& k,
                              const std::vector<float>& v, const std::vector<float>& q, int64_t n) {
  ThreadPool pool(2);
  auto cache = make_kv_cache(spec, c);
  const int64_t KV = c.kv_heads, H = c.heads, hd = c.head_dim;
  std::vector<float> out(size_t(n * H * hd));
  for (int64_t pos = 0; pos < n;) {
    const int64_t T = std::min<int64_t>(n - pos, 37);
    cache->write(0, pos, T, &k[size_t(pos * KV * hd)], &v[size_t(pos * KV * hd)]);
    cache->attend(0, pos, T, &q[size_t(pos * H * hd)], &out[size_t(pos * H * hd)], pool);
    pos += T;
  }
  return out;
}

struct EnvGuard {
  explicit EnvGuard(const char* v) { setenv("TQLM_KV_CENTRE", v, 1); }
  ~EnvGuard() { unsetenv("TQLM_KV_CENTRE"); }
};

}  // namespace

TEST(KVCentre, CentringTheFloatCacheChangesAttentionOnlyAtRoundingLevel) {
  const KVShape c{1, 4, 2, 64};
  const int64_t n = 300;
  std::mt19937 rng(3);
  auto cal = calib_for(c, 9);
  // keys and values with large per-channel offsets (the means), as real keys have
  auto k = gauss(size_t(n * 2 * 64), rng), v = gauss(size_t(n * 2 * 64), rng),
       q = gauss(size_t(n * 4 * 64), rng);
  for (size_t i = 0; i < k.size(); ++i) k[i] += cal->k_mean[i % 128], v[i] += cal->v_mean[i % 128];
  KVSpec plain("f32", 0), centred("f32c", 0);
  centred.calib = cal;
  const auto a = attend_all(plain, c, k, v, q, n);
  for (const char* sides : {"k", "kv", "v"}) {
    EnvGuard env(sides);
    EXPECT_TRUE(kv_layout(centred, c).k[0].centred == (sides[0] == 'k')) << sides;
    const auto b = attend_all(centred, c, k, v, q, n);
    double err = 0, ref = 0;
    for (size_t i = 0; i < a.size(); ++i)
      err = std::max(err, double(std::fabs(a[i] - b[i]))), ref = std::max(ref, double(std::fabs(a[i])));
    EXPECT_LT(err, 1e-4 * ref) << sides;  // f32 rounding of q.k with |k| ~ 60
    EXPECT_GT(err, 0.0) << sides << ": centring did nothing";
  }
}

TEST(KVCentre, CentredCodesAreTheCodesOfTheCentredVector) {
  const KVShape c{1, 2, 2, 64};
  auto cal = calib_for(c, 4);
  KVSpec s("turbo4c", 0);
  s.calib = cal;
  auto cache = make_kv_cache(s, c);
  std::mt19937 rng(1);
  auto x = gauss(128, rng);
  cache->write(0, 0, 1, x.data(), x.data());
  std::vector<float> k(64), v(64), ref(64);
  cache->dequantize(0, 0, 1, k.data(), v.data());
  // the same codec without a mean, fed x - mean, plus the mean
  KVSideCodec plain(kv_side_format("turbo4", 64, "test"), 64, kTurboKeySeed);
  std::vector<float> xc(64);
  for (int i = 0; i < 64; ++i) xc[size_t(i)] = x[size_t(64 + i)] - cal->k_mean[size_t(64 + i)];
  std::vector<uint8_t> codes(32);
  uint16_t sc = 0;
  plain.encode(xc.data(), codes.data(), &sc);
  plain.dequantize(codes.data(), sc, ref.data());
  for (int i = 0; i < 64; ++i) EXPECT_FLOAT_EQ(k[size_t(i)], ref[size_t(i)] + cal->k_mean[size_t(64 + i)]);
}

TEST(KVCentre, SinkCopyIsWhatPositionZeroReadsAndBytesStayExact) {
  const KVShape c{4, 4, 2, 64};
  KVSpec s("turbo2s", 1);
  const KVLayout L = kv_layout(s, c);
  // 2 compressed layers x 2 sides x 2 heads x 64 dims x 2 bytes in every block, spread over 256 tokens
  EXPECT_EQ(L.sink_bytes(), 2 * 2 * 2 * 64 * 2);
  EXPECT_EQ(L.bytes_per_token(),
            kv_layout({"turbo2", 1}, c).bytes_per_token() + (L.sink_bytes() + 255) / 256);
  KVPool pool(s, c);
  EXPECT_EQ(pool.block_bytes(), uint64_t(256 * L.bytes_per_token()));
  auto cache = std::make_unique<KVCache>(std::make_shared<KVPool>(s, c));
  std::mt19937 rng(2);
  auto x = gauss(3 * 128, rng);
  cache->write(1, 0, 3, x.data(), x.data());
  std::vector<float> k(64), v(64);
  cache->dequantize(1, 0, 1, k.data(), v.data());
  for (int i = 0; i < 64; ++i) EXPECT_NEAR(k[size_t(i)], x[size_t(64 + i)], 0.02f);  // bf16, not 2 bits
  cache->dequantize(1, 1, 1, k.data(), v.data());
  double e = 0;
  for (int i = 0; i < 64; ++i) e += std::fabs(k[size_t(i)] - x[size_t(128 + 64 + i)]);
  EXPECT_GT(e / 64, 0.05);  // position 1: 2-bit codes
}

TEST(KVCentre, AutoPlanStaysWithinBudgetAndFavoursSensitiveLayers) {
  const KVShape c{8, 4, 2, 64};
  KVCalib cal;
  cal.layers = 8;
  cal.kv_heads = 2;
  cal.head_dim = 64;
  for (int b : {2, 3, 4, 8}) {
    cal.k_kl[b].assign(8, 0.1 / (b * b));
    cal.v_kl[b].assign(8, 0.02 / (b * b));
  }
  cal.k_kl[2][3] = cal.k_kl[3][3] = cal.k_kl[4][3] = 5.0;  // layer 3's keys: only 8 bits or bf16 will do
  const int64_t bf16 = 4 * 8 * 2 * 64;
  for (double r : {2.0, 3.0, 3.5, 5.0}) {
    const KVLayerPlan p = kv_auto_plan(cal, c, r, false);
    KVSpec s("plan", 0);
    s.plan = std::make_shared<KVLayerPlan>(KVLayerPlan{p.k, p.v, false, false});
    const KVLayout L = kv_layout(s, c);
    EXPECT_LE(L.bytes_per_token(), int64_t(double(bf16) / r)) << r;
    EXPECT_GE(L.bytes_per_token(), int64_t(double(bf16) / r) - 2 * 130) << r << ": budget left unspent";
    EXPECT_TRUE(p.k[3] == "turbo8" || p.k[3] == "bf16") << r << " " << p.k[3];
  }
  EXPECT_THROW(kv_auto_plan(cal, c, 9.0, false), Error);  // below turbo2 everywhere
}

TEST(KVCentre, PlanFilesAndCalibrationFilesRoundTrip) {
  const KVShape c{2, 2, 1, 64};
  const std::string dir = testing::TempDir();
  {
    std::ofstream(dir + "/plan.json") << R"({"k": ["bf16", "turbo4"], "v": ["q8", "turbo2"], "sink": true})";
  }
  KVCalib cal;
  cal.layers = 2, cal.kv_heads = 1, cal.head_dim = 64, cal.rotary_dim = 64;
  cal.rope_inv_freq.assign(32, 1.0f);
  cal.k_mean.assign(128, 0.5f);
  cal.v_mean.assign(128, -0.25f);
  save_kv_calib(cal, dir + "/calib.json");
  KVSpec s(dir + "/plan.json", 0, dir + "/calib.json");
  const KVLayout L = kv_layout(s, c);
  EXPECT_EQ(L.k[0].name(), "bf16");
  EXPECT_EQ(L.k[1].name(), "turbo4c");
  EXPECT_EQ(L.v[0].name(), "q8");  // values are not centred by default
  EXPECT_TRUE(L.sink);
  EXPECT_EQ(L.fixed_bytes(), 64 * 4);
  EXPECT_EQ(load_kv_calib(dir + "/calib.json")->k_mean[7], 0.5f);
  EXPECT_THROW(kv_layout(KVSpec(dir + "/plan.json", 0), c), Error);  // centred, no calibration
  EXPECT_THROW(kv_layout(KVSpec("turbo4c", 0, dir + "/calib.json"), KVShape{3, 2, 1, 64}), Error);
  for (const char* bad : {"auto:", "auto:0.5", "auto:x", "turbo4cc", "turbo4sc"})
    EXPECT_THROW(kv_layout(KVSpec(bad, 0, dir + "/calib.json"), c), Error) << bad;
}

TEST(KVCentre, SlowDimsFollowRopePairingAndPartialRotary) {
  // MiniMax-M2 (tests/fixtures/configs/minimax-m2.json): head_dim 128, rotary_dim 64, theta 5e6
  KVCalib cal;
  cal.head_dim = 128;
  cal.rotary_dim = 64;
  for (int i = 0; i < 32; ++i) cal.rope_inv_freq.push_back(float(std::pow(5e6, -2.0 * i / 64)));
  const auto keep = kv_slow_dims(cal, 2048);
  for (int d = 64; d < 128; ++d) EXPECT_EQ(keep[size_t(d)], 1) << d;  // not rotated: always centred
  for (int i = 0; i < 32; ++i) {
    const bool slow = 2 * M_PI / cal.rope_inv_freq[size_t(i)] >= 2048;
    EXPECT_EQ(keep[size_t(i)], slow) << i;
    EXPECT_EQ(keep[size_t(i + 32)], slow) << i;  // rotate-half pair
  }
  EXPECT_EQ(keep[0], 0);   // fastest pair
  EXPECT_EQ(keep[31], 1);  // slowest pair
}

TEST(KVCentre, PrefixReuseKeepsTheSinkCopyAndAttentionBitExact) {
  const KVShape c{2, 4, 2, 64};
  KVSpec s("turbo3cs", 0);
  s.calib = calib_for(c, 6);
  auto pool = std::make_shared<KVPool>(s, c, 0);
  std::mt19937 rng(8);
  const int64_t n = 300;  // one full block and a partial one
  auto k = gauss(size_t(n * 2 * 64), rng), v = gauss(size_t(n * 2 * 64), rng), q = gauss(size_t(4 * 64), rng);
  std::vector<int32_t> tok(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) tok[size_t(i)] = int32_t(i * 7 % 50);
  ThreadPool tp(2);
  std::vector<float> oa(4 * 64), ob(4 * 64);
  {
    KVCache a(pool);
    for (int64_t l = 0; l < 2; ++l) a.write(l, 0, n, k.data(), v.data());
    a.set_length(n);
    a.publish(tok.data(), /*final=*/true);
    KVCache b(pool);
    EXPECT_EQ(b.attach_prefix(tok.data(), n, n - 1), n - 1);  // block 0 shared, block 1 copied
    EXPECT_TRUE(pool->is_published(b.blocks()[0]));
    for (int64_t l = 0; l < 2; ++l)
      b.write(l, n - 1, 1, &k[size_t((n - 1) * 128)], &v[size_t((n - 1) * 128)]);
    a.attend(1, n - 1, 1, q.data(), oa.data(), tp);
    b.attend(1, n - 1, 1, q.data(), ob.data(), tp);
  }
  EXPECT_EQ(oa, ob);  // the reused sink copy and codes read back as written
}
