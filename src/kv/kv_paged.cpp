// The KV cache: per layer and side (keys, values) a KVSideCodec and pages of kPageTokens tokens, allocated as
// the context grows. Page layout: codes [KV][kPageTokens][code_bytes], then scales [KV][kPageTokens] (fp16).
//
// Attention reads the stored codes directly, a tile of tokens at a time (never a dequantized copy of the
// cache):
//   q_r   = Pi_K q * 1/sqrt(hd)                            (query rotated into the key basis, once per row)
//   s_t   = kscale_t * <q_r, c_K[idx_t]>                   (kv_kernels().decode + scores)
//   page partial: m = max s, w_t = exp(s_t - m), l = sum w, o = sum w_t * vscale_t * c_V[idx_t]
//   partials merged page by page in order (online softmax), o / l rotated back with Pi_V^T once per row.
// Row r of kv head h is query head h * G + r % G of token r / G; it sees keys [0, pos + r / G]. Decode
// (T <= 2) splits the pages of each kv head across threads; prefill splits the rows. Both compute every page
// partial and every merge with the same code in the same order, so prefill equals token-by-token decode.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/kv_kernels.h"
#include "kv/kv_cache.h"
#include "kv/kv_codec.h"

namespace tqlm {

namespace {

constexpr int64_t kPageTokens = 256;

struct Side {
  KVSideCodec codec;
  int64_t page_bytes;  // kv_heads * kPageTokens * (code_bytes + scale_bytes)
  std::vector<std::unique_ptr<uint8_t[]>> pages;
};

// One query row's running attention state: max score, sum of weights, output in the V basis.
struct RowAcc {
  float m, l;
  float* o;  // [dim_v]
};

void merge(RowAcc& acc, float m, float l, const float* o, int64_t dim) {
  if (l == 0.0f) return;
  if (acc.l == 0.0f) {
    acc.m = m;
    acc.l = l;
    std::memcpy(acc.o, o, size_t(dim) * 4);
    return;
  }
  const float M = std::max(acc.m, m), a = std::exp(acc.m - M), b = std::exp(m - M);
  acc.l = a * acc.l + b * l;
  for (int64_t j = 0; j < dim; ++j) acc.o[j] = a * acc.o[j] + b * o[j];
  acc.m = M;
}

class PagedKVCache final : public KVCache {
 public:
  PagedKVCache(const KVSpec& spec, const ModelConfig& c)
      : L_(kv_layout(spec, c)), H_(c.n_heads), KV_(c.n_kv_heads), hd_(c.head_dim) {
    for (int64_t l = 0; l < c.n_layers; ++l) {
      k_.push_back(make_side(L_.k[size_t(l)], kTurboKeySeed));
      v_.push_back(make_side(L_.v[size_t(l)], kTurboValueSeed));
    }
  }

  void write(int64_t layer, int64_t pos, int64_t T, const float* k, const float* v) override {
    Side& ks = k_[size_t(layer)];
    Side& vs = v_[size_t(layer)];
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < KV_; ++h) {
        ks.codec.encode(k + (t * KV_ + h) * hd_, codes(ks, pos + t, h, true), scale(ks, pos + t, h));
        vs.codec.encode(v + (t * KV_ + h) * hd_, codes(vs, pos + t, h, true), scale(vs, pos + t, h));
      }
  }

  void attend(int64_t layer, int64_t pos, int64_t T, const float* q, float* out, ThreadPool& pool) override;

  void dequantize(int64_t layer, int64_t pos, int64_t kv_head, float* k, float* v) const override {
    const Side& ks = k_[size_t(layer)];
    const Side& vs = v_[size_t(layer)];
    ks.codec.dequantize(codes(ks, pos, kv_head), scale_bits(ks, pos, kv_head), k);
    vs.codec.dequantize(codes(vs, pos, kv_head), scale_bits(vs, pos, kv_head), v);
  }

  uint64_t bytes() const override {
    uint64_t b = 0;
    for (const auto* sides : {&k_, &v_})
      for (const Side& s : *sides) b += uint64_t(s.pages.size()) * uint64_t(s.page_bytes);
    return b;
  }
  double bytes_per_token() const override { return double(L_.bytes_per_token()); }
  const KVLayout& layout() const override { return L_; }
  std::string mode() const override { return L_.mode; }

 private:
  Side make_side(const KVSideFormat& f, uint64_t seed) const {
    return Side{KVSideCodec(f, hd_, seed), KV_ * kPageTokens * f.vector_bytes(), {}};
  }
  uint8_t* page(Side& s, int64_t token, bool grow) {
    const size_t p = size_t(token / kPageTokens);
    if (grow)
      while (s.pages.size() <= p) s.pages.emplace_back(new uint8_t[size_t(s.page_bytes)]);
    if (p >= s.pages.size()) fail("KV cache: position {} was never written", token);
    return s.pages[p].get();
  }
  const uint8_t* page(const Side& s, int64_t token) const {
    const size_t p = size_t(token / kPageTokens);
    if (p >= s.pages.size()) fail("KV cache: position {} was never written", token);
    return s.pages[p].get();
  }
  static int64_t code_offset(const Side& s, int64_t token, int64_t h) {
    return (h * kPageTokens + token % kPageTokens) * s.codec.format().code_bytes();
  }
  static int64_t scale_offset(const Side& s, int64_t token, int64_t h, int64_t KV) {
    return KV * kPageTokens * s.codec.format().code_bytes() + 2 * (h * kPageTokens + token % kPageTokens);
  }
  uint8_t* codes(Side& s, int64_t token, int64_t h, bool grow) {
    return page(s, token, grow) + code_offset(s, token, h);
  }
  const uint8_t* codes(const Side& s, int64_t token, int64_t h) const {
    return page(s, token) + code_offset(s, token, h);
  }
  uint16_t* scale(Side& s, int64_t token, int64_t h) {
    return reinterpret_cast<uint16_t*>(page(s, token, true) + scale_offset(s, token, h, KV_));
  }
  uint16_t scale_bits(const Side& s, int64_t token, int64_t h) const {
    if (!s.codec.format().scale_bytes()) return 0;
    uint16_t v;
    std::memcpy(&v, page(s, token) + scale_offset(s, token, h, KV_), 2);
    return v;
  }

  // Partial attention of R rows (queries qr [R, dim_k], rows see nvis[r] keys of this page) over page p of
  // kv head h: part [R, 2 + dim_v] = (m, l, o[dim_v]).
  void page_partial(int64_t layer, int64_t h, int64_t p, const float* qr, int64_t R, const int64_t* nvis,
                    float* part) const;

  KVLayout L_;
  int64_t H_, KV_, hd_;
  std::vector<Side> k_, v_;  // [layer]
  // attend scratch: Q_ [KV, R, dim_k] rotated queries; Acc_ [KV, R, 2 + dim_v] row states; Part_ [KV, pages,
  // R, 2 + dim_v] page partials (decode)
  std::vector<float> Q_, Acc_, Part_;
};

void PagedKVCache::page_partial(int64_t layer, int64_t h, int64_t p, const float* qr, int64_t R,
                                const int64_t* nvis, float* part) const {
  const Side& ks = k_[size_t(layer)];
  const Side& vs = v_[size_t(layer)];
  const KVKernels& kk = kv_kernels();
  const int64_t dk = ks.codec.format().dim, dv = vs.codec.format().dim, ldp = 2 + dv;
  const int64_t np = *std::max_element(nvis, nvis + R);
  for (int64_t r = 0; r < R; ++r) {
    part[r * ldp] = -std::numeric_limits<float>::infinity();
    part[r * ldp + 1] = 0.0f;
    std::fill_n(part + r * ldp + 2, dv, 0.0f);
  }
  if (np == 0) return;
  const int64_t tile = std::max<int64_t>(16, 4096 / std::max(dk, dv));
  thread_local std::vector<float> S, buf, sc;
  S.resize(size_t(R * kPageTokens));            // [R, kPageTokens] scores, then weights
  buf.resize(size_t(tile * std::max(dk, dv)));  // [tile, dim] decoded codes
  sc.resize(size_t(tile));                      // [tile] per-vector scales
  const int64_t t_first = p * kPageTokens;
  auto load_tile = [&](const Side& s, int64_t t0, int64_t nt) {  // codes -> buf [nt, dim], scales -> sc [nt]
    kk.decode(s.codec.row_format(), codes(s, t_first + t0, h), nt, buf.data());
    if (s.codec.format()
            .scale_bytes()) {  // the tile's fp16 scales are contiguous: decode them as one f16 row
      const uint8_t* p = page(s, t_first) + scale_offset(s, t_first + t0, h, KV_);
      kk.decode(KVRowFormat{KVCodes::F16, 16, nt, 2 * nt, nullptr}, p, 1, sc.data());
    } else {
      std::fill_n(sc.data(), nt, 1.0f);
    }
  };
  for (int64_t t0 = 0; t0 < np; t0 += tile) {
    const int64_t nt = std::min(tile, np - t0);
    load_tile(ks, t0, nt);
    kk.scores(qr, R, dk, buf.data(), sc.data(), nt, dk, S.data() + t0, kPageTokens);
  }
  for (int64_t r = 0; r < R; ++r) {
    float* s = S.data() + r * kPageTokens;
    const int64_t n = nvis[r];
    if (n == 0) {
      std::fill_n(s, np, 0.0f);
      continue;
    }
    float m = s[0];
    for (int64_t t = 1; t < n; ++t) m = std::max(m, s[t]);
    const float l = kk.exp_sum(s, n, m);
    std::fill(s + n, s + np, 0.0f);
    part[r * ldp] = m;
    part[r * ldp + 1] = l;
  }
  for (int64_t t0 = 0; t0 < np; t0 += tile) {
    const int64_t nt = std::min(tile, np - t0);
    load_tile(vs, t0, nt);
    kk.accumulate(S.data() + t0, R, kPageTokens, buf.data(), sc.data(), nt, dv, part + 2, ldp);
  }
}

void PagedKVCache::attend(int64_t layer, int64_t pos, int64_t T, const float* q, float* out,
                          ThreadPool& pool) {
  const Side& ks = k_[size_t(layer)];
  const Side& vs = v_[size_t(layer)];
  const int64_t G = H_ / KV_, R = T * G, n = pos + T, pages = (n + kPageTokens - 1) / kPageTokens;
  const int64_t dk = ks.codec.format().dim, dv = vs.codec.format().dim, ldp = 2 + dv;
  const float qscale = 1.0f / std::sqrt(float(hd_));
  // Queries in the key basis, grouped by kv head: Q [KV, R, dk], row r = token r / G, head h * G + r % G.
  Q_.resize(size_t(KV_ * R * dk));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t hq = 0; hq < H_; ++hq)
      ks.codec.to_stored_basis(q + (t * H_ + hq) * hd_, qscale,
                               &Q_[size_t(((hq / G) * R + t * G + hq % G) * dk)]);
  auto visible = [&](int64_t r, int64_t p) {  // keys of page p seen by row r
    return std::clamp<int64_t>(pos + r / G + 1 - p * kPageTokens, 0, kPageTokens);
  };
  // acc [KV, R, ldp]: (m, l, o) per row, then finished rows rotated back into out.
  Acc_.assign(size_t(KV_ * R * ldp), 0.0f);
  auto finish = [&](int64_t h, int64_t r) {
    float* a = &Acc_[size_t((h * R + r) * ldp)];
    const float inv = a[1] > 0 ? 1.0f / a[1] : 0.0f;
    for (int64_t j = 0; j < dv; ++j) a[2 + j] *= inv;
    vs.codec.from_stored_basis(a + 2, out + ((r / G) * H_ + h * G + r % G) * hd_);
  };
  if (T <= 2) {
    // Decode: tasks (kv head, page) -> partials [KV, pages, R, ldp]; then merge pages in order.
    Part_.resize(size_t(KV_ * pages * R * ldp));
    pool.parallel_for(KV_ * pages, 1, [&](int64_t i0, int64_t i1, int) {
      std::vector<int64_t> nvis(static_cast<size_t>(R));
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t h = i / pages, p = i % pages;
        for (int64_t r = 0; r < R; ++r) nvis[size_t(r)] = visible(r, p);
        page_partial(layer, h, p, &Q_[size_t(h * R * dk)], R, nvis.data(), &Part_[size_t(i * R * ldp)]);
      }
    });
    for (int64_t h = 0; h < KV_; ++h)
      for (int64_t r = 0; r < R; ++r) {
        float* a = &Acc_[size_t((h * R + r) * ldp)];
        RowAcc acc{0, 0, a + 2};
        for (int64_t p = 0; p < pages; ++p) {
          const float* pr = &Part_[size_t(((h * pages + p) * R + r) * ldp)];
          merge(acc, pr[0], pr[1], pr + 2, dv);
        }
        a[0] = acc.m;
        a[1] = acc.l;
        finish(h, r);
      }
    return;
  }
  // Prefill: tasks (kv head, block of rows), each walking the pages in order.
  const int64_t rb = G * std::max<int64_t>(1, 32 / G), blocks = (R + rb - 1) / rb;
  pool.parallel_for(KV_ * blocks, 1, [&](int64_t i0, int64_t i1, int) {
    std::vector<int64_t> nvis(static_cast<size_t>(rb));
    std::vector<float> part(static_cast<size_t>(rb * ldp));
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t h = i / blocks, r0 = (i % blocks) * rb, nr = std::min(rb, R - r0);
      std::vector<RowAcc> acc;
      for (int64_t r = 0; r < nr; ++r) acc.push_back({0, 0, &Acc_[size_t((h * R + r0 + r) * ldp + 2)]});
      const int64_t last_page = (pos + (r0 + nr - 1) / G) / kPageTokens;
      for (int64_t p = 0; p <= last_page; ++p) {
        for (int64_t r = 0; r < nr; ++r) nvis[size_t(r)] = visible(r0 + r, p);
        page_partial(layer, h, p, &Q_[size_t((h * R + r0) * dk)], nr, nvis.data(), part.data());
        for (int64_t r = 0; r < nr; ++r)
          merge(acc[size_t(r)], part[size_t(r * ldp)], part[size_t(r * ldp + 1)], &part[size_t(r * ldp + 2)],
                dv);
      }
      for (int64_t r = 0; r < nr; ++r) {
        float* a = &Acc_[size_t((h * R + r0 + r) * ldp)];
        a[0] = acc[size_t(r)].m;
        a[1] = acc[size_t(r)].l;
        finish(h, r0 + r);
      }
    }
  });
}

}  // namespace

std::unique_ptr<KVCache> make_kv_cache(const KVSpec& spec, const ModelConfig& cfg) {
  return std::make_unique<PagedKVCache>(spec, cfg);
}

}  // namespace tqlm
