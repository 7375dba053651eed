// Plain float KV cache: keys and values stored per token as [KV, hd] in f32, bf16 or f16.
#include <cmath>
#include <cstring>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/linear.h"
#include "kernels/ops.h"
#include "kv/kv_cache.h"

namespace tqlm {

namespace {

constexpr int64_t kPageTokens = 256;

// An f32 matrix [out, in] seen as a Linear, so attention runs on the dispatched linear kernels.
Linear f32_matrix(const float* w, int64_t out, int64_t in) {
  Linear l;
  l.name = "attention";
  l.out = out;
  l.in = in;
  l.w = w;
  l.wdtype = DType::F32;
  return l;
}

template <typename T>
struct Codec;
template <>
struct Codec<float> {
  static float enc(float x) { return x; }
  static float dec(float x) { return x; }
};
struct Bf16 {
  uint16_t v;
};
struct F16 {
  uint16_t v;
};
template <>
struct Codec<Bf16> {
  static Bf16 enc(float x) { return {f32_to_bf16(x)}; }
  static float dec(Bf16 x) { return bf16_to_f32(x.v); }
};
template <>
struct Codec<F16> {
  static F16 enc(float x) { return {f32_to_f16(x)}; }
  static float dec(F16 x) { return f16_to_f32(x.v); }
};

template <typename E>
class FloatKVCache final : public KVCache {
 public:
  FloatKVCache(const ModelConfig& c, std::string mode)
      : n_layers_(c.n_layers), H_(c.n_heads), KV_(c.n_kv_heads), hd_(c.head_dim), mode_(std::move(mode)),
        k_pages_(size_t(c.n_layers)), v_pages_(size_t(c.n_layers)) {}

  void write(int64_t layer, int64_t pos, int64_t T, const float* k, const float* v) override {
    const int64_t row = KV_ * hd_;
    for (int64_t t = 0; t < T; ++t) {
      E* kd = slot(k_pages_[size_t(layer)], pos + t);
      E* vd = slot(v_pages_[size_t(layer)], pos + t);
      for (int64_t i = 0; i < row; ++i) {
        kd[i] = Codec<E>::enc(k[t * row + i]);
        vd[i] = Codec<E>::enc(v[t * row + i]);
      }
    }
  }

  // Per kv head: expand its keys K [n, hd] and values V^T [hd, n] to f32 once, then two matrix products
  // with the ISA-dispatched linear kernels: S = Q K^T for the T x group query rows, causal mask + softmax,
  // O = S V.
  void attend(int64_t layer, int64_t pos, int64_t T, const float* q, float* out, ThreadPool& pool) override {
    const auto& kp = k_pages_[size_t(layer)];
    const auto& vp = v_pages_[size_t(layer)];
    const int64_t group = H_ / KV_, n = pos + T, rows = T * group;
    const float scale = 1.0f / std::sqrt(float(hd_));
    K_.resize(size_t(n * hd_));
    Vt_.resize(size_t(n * hd_));
    Q_.resize(size_t(rows * hd_));
    S_.resize(size_t(rows * n));
    O_.resize(size_t(rows * hd_));
    for (int64_t kvh = 0; kvh < KV_; ++kvh) {
      for (int64_t s = 0; s < n; ++s) {
        const E* kr = at(kp, s) + kvh * hd_;
        const E* vr = at(vp, s) + kvh * hd_;
        for (int64_t i = 0; i < hd_; ++i) {
          K_[size_t(s * hd_ + i)] = Codec<E>::dec(kr[i]);
          Vt_[size_t(i * n + s)] = Codec<E>::dec(vr[i]);
        }
      }
      for (int64_t t = 0; t < T; ++t)  // row t*group + j: token t, query head kvh*group + j
        std::copy_n(q + (t * H_ + kvh * group) * hd_, group * hd_, &Q_[size_t(t * group * hd_)]);
      linear_f32(f32_matrix(K_.data(), n, hd_), Q_.data(), rows, S_.data(), pool);  // [rows, n]
      for (int64_t r = 0; r < rows; ++r) {
        float* sr = &S_[size_t(r * n)];
        const int64_t valid = pos + r / group + 1;  // causal: keys [0, pos + t]
        for (int64_t s = 0; s < valid; ++s) sr[s] *= scale;
        softmax_f32(sr, valid);
        std::fill(sr + valid, sr + n, 0.0f);
      }
      linear_f32(f32_matrix(Vt_.data(), hd_, n), S_.data(), rows, O_.data(), pool);  // [rows, hd]
      for (int64_t t = 0; t < T; ++t)
        std::copy_n(&O_[size_t(t * group * hd_)], group * hd_, out + (t * H_ + kvh * group) * hd_);
    }
  }

  uint64_t bytes() const override {
    uint64_t pages = 0;
    for (const auto& l : k_pages_) pages += l.size();
    for (const auto& l : v_pages_) pages += l.size();
    return pages * uint64_t(kPageTokens * KV_ * hd_) * sizeof(E);
  }
  double bytes_per_token() const override { return double(2 * n_layers_ * KV_ * hd_ * int64_t(sizeof(E))); }
  std::string mode() const override { return mode_; }

 private:
  using Pages = std::vector<std::unique_ptr<E[]>>;
  E* slot(Pages& pages, int64_t s) {
    const size_t p = size_t(s / kPageTokens);
    while (pages.size() <= p) pages.emplace_back(new E[size_t(kPageTokens * KV_ * hd_)]);
    return pages[p].get() + (s % kPageTokens) * KV_ * hd_;
  }
  const E* at(const Pages& pages, int64_t s) const {
    return pages[size_t(s / kPageTokens)].get() + (s % kPageTokens) * KV_ * hd_;
  }

  int64_t n_layers_, H_, KV_, hd_;
  std::string mode_;
  std::vector<Pages> k_pages_, v_pages_;  // [layer][page] -> [kPageTokens, KV, hd]
  // attention scratch (one kv head at a time)
  std::vector<float> K_;   // [n, hd]
  std::vector<float> Vt_;  // [hd, n]
  std::vector<float> Q_;   // [T * group, hd]
  std::vector<float> S_;   // [T * group, n]
  std::vector<float> O_;   // [T * group, hd]
};

}  // namespace

std::unique_ptr<KVCache> make_kv_cache(const KVSpec& spec, const ModelConfig& cfg) {
  const std::string& mode = spec.mode;
  if (mode == "bf16") return std::make_unique<FloatKVCache<Bf16>>(cfg, mode);
  if (mode == "f16") return std::make_unique<FloatKVCache<F16>>(cfg, mode);
  if (mode == "f32") return std::make_unique<FloatKVCache<float>>(cfg, mode);
  fail("unknown --kv mode '{}' (supported: bf16, f16, f32)", mode);
}

}  // namespace tqlm
