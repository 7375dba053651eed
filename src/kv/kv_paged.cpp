// The KV cache of one sequence: its blocks come from a KVPool (kv_pool.h); each block holds one page of
// kPageTokens tokens per (layer, side), laid out as codes [KV][kPageTokens][code_bytes], then scales
// [KV][kPageTokens] (fp16), encoded and decoded by the pool's KVSideCodec of that layer and side.
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
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/kv_kernels.h"
#include "kv/kv_cache.h"
#include "kv/kv_codec.h"

namespace tqlm {

namespace {

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

// Within a page of one (layer, side): codes [KV][kPageTokens][code_bytes], then scales [KV][kPageTokens].
int64_t code_offset(const KVSideFormat& f, int64_t token, int64_t h) {
  return (h * kPageTokens + token % kPageTokens) * f.code_bytes();
}
int64_t scale_offset(const KVSideFormat& f, int64_t token, int64_t h, int64_t KV) {
  return KV * kPageTokens * f.code_bytes() + 2 * (h * kPageTokens + token % kPageTokens);
}

// An environment switch between int8 (also when unset) and f32.
bool int8_env(const char* name) {
  const char* e = std::getenv(name);
  if (!e || std::string(e) == "int8") return true;
  if (std::string(e) == "f32") return false;
  fail("{}={}: use {}int8 or f32", name, e, std::string(name) == "TQLM_KV_VALUES" ? "auto, " : "");
}
// TQLM_KV_SCORES: int8 (default; integer scores over 4-bit key codes, docs/kv-speed.md) or f32 (decoded keys,
// the reference the int8 path is measured against).
bool kv_int8_scores() {
  static const bool on = int8_env("TQLM_KV_SCORES");
  return on;
}
// TQLM_KV_VALUES: auto (default: integer value sums over 2- and 4-bit value codes where the kernel family
// gains from them, AVX-512 VNNI; f32 elsewhere), int8 or f32 (decoded values).
bool kv_int8_values() {
  static const bool on = [] {
    const char* e = std::getenv("TQLM_KV_VALUES");
    if (!e || !*e || std::string(e) == "auto") return kv_kernels().int8_values_pay;
    return int8_env("TQLM_KV_VALUES");
  }();
  return on;
}

}  // namespace

KVCache::KVCache(std::shared_ptr<KVPool> pool)
    : pool_(std::move(pool)),
      H_(pool_->shape().heads),
      KV_(pool_->shape().kv_heads),
      hd_(pool_->shape().head_dim),
      int8_scores_(kv_int8_scores()),
      int8_values_(kv_int8_values()) {}

KVCache::~KVCache() {
  release();
}

void KVCache::release() {
  if (!view_)
    for (int32_t b : table_) pool_->unref(b);
  table_.clear();
  length_ = 0;
}

void KVCache::view(const int32_t* table, int64_t n, int64_t length) {
  if (!view_ && !table_.empty()) fail("KV cache: only an empty cache can become a pipeline view");
  if (length < 0 || length > n * kPageTokens)
    fail("KV cache: a view of {} blocks cannot hold {} tokens", n, length);
  view_ = true;
  table_.assign(table, table + n);
  for (int32_t b : table_) pool_->mirror_block(b);
  length_ = length;
}

bool KVCache::reserve(int64_t n_tokens) {
  if (view_) fail("KV cache: a pipeline view has no block for position {} (a bug)", n_tokens - 1);
  const size_t need = size_t((n_tokens + kPageTokens - 1) / kPageTokens);
  std::vector<int32_t> got;
  while (table_.size() + got.size() < need) {
    const int32_t b = pool_->alloc();
    if (b < 0) {
      for (int32_t g : got) pool_->unref(g);
      return false;
    }
    got.push_back(b);
  }
  table_.insert(table_.end(), got.begin(), got.end());
  return true;
}

int64_t KVCache::attach_prefix(const int32_t* tokens, int64_t n, int64_t max_tokens) {
  if (!table_.empty() || length_ != 0) fail("KV cache: a prefix can only be attached to an empty cache");
  length_ = pool_->match(tokens, n, max_tokens, table_);
  return length_;
}

void KVCache::publish(const int32_t* tokens, bool final) {
  pool_->publish(table_, tokens, length_, final);
}

uint64_t KVCache::bytes() const {
  return uint64_t(table_.size()) * pool_->block_bytes();
}

uint8_t* KVCache::page(int64_t layer, int side, int64_t token, bool for_write) {
  const size_t p = size_t(token / kPageTokens);
  if (for_write && p >= table_.size() && !reserve(token + 1))
    fail("KV cache full: no block for position {} (pool budget {} bytes, block {} bytes)", token,
         pool_->budget(), pool_->block_bytes());
  if (p >= table_.size()) fail("KV cache: position {} was never written", token);
  const int32_t b = table_[p];
  if (for_write && pool_->is_published(b)) fail("KV cache: position {} is in a shared block (a bug)", token);
  const int64_t off = pool_->page_offset(layer, side);
  if (off < 0) fail("KV cache: layer {} is not stored by this pipeline stage (a bug)", layer);
  return pool_->data(b) + off;
}

const uint8_t* KVCache::page(int64_t layer, int side, int64_t token) const {
  const size_t p = size_t(token / kPageTokens);
  if (p >= table_.size()) fail("KV cache: position {} was never written", token);
  const int64_t off = pool_->page_offset(layer, side);
  if (off < 0) fail("KV cache: layer {} is not stored by this pipeline stage (a bug)", layer);
  return pool_->data(table_[p]) + off;
}

void KVCache::write(int64_t layer, int64_t pos, int64_t T, const float* k, const float* v) {
  for (int side = 0; side < 2; ++side) {
    const KVSideCodec& c = pool_->codec(layer, side);
    const KVSideFormat& f = c.format();
    const float* x = side == 0 ? k : v;
    for (int64_t t = 0; t < T; ++t) {
      uint8_t* pg = page(layer, side, pos + t, true);
      const int64_t so = pool_->sink_offset(layer, side);
      if (pos + t == 0 && so >= 0) {  // the sink copy (kv_pool.h): bf16 [KV][dim]
        uint16_t* sink = reinterpret_cast<uint16_t*>(pool_->data(table_[0]) + so);
        for (int64_t h = 0; h < KV_; ++h) c.encode_sink(x + h * hd_, h, sink + h * f.dim);
      }
      for (int64_t h = 0; h < KV_; ++h)
        c.encode_head(x + (t * KV_ + h) * hd_, h, pg + code_offset(f, pos + t, h),
                      reinterpret_cast<uint16_t*>(pg + scale_offset(f, pos + t, h, KV_)));
    }
  }
}

void KVCache::dequantize(int64_t layer, int64_t pos, int64_t kv_head, float* k, float* v) const {
  for (int side = 0; side < 2; ++side) {
    const KVSideCodec& c = pool_->codec(layer, side);
    const KVSideFormat& f = c.format();
    const uint8_t* pg = page(layer, side, pos);
    uint16_t sc = 0;
    if (f.scale_bytes()) std::memcpy(&sc, pg + scale_offset(f, pos, kv_head, KV_), 2);
    c.dequantize(pg + code_offset(f, pos, kv_head), sc, side == 0 ? k : v);
    if (const int64_t so = pool_->sink_offset(layer, side); pos == 0 && so >= 0) {  // the sink copy
      std::vector<float> y(static_cast<size_t>(f.dim));                             // [dim] stored basis
      kv_decode_ref(KVRowFormat{KVCodes::BF16, 16, f.dim, 2 * f.dim, nullptr},
                    pool_->data(table_[0]) + so + 2 * kv_head * f.dim, 1, y.data());
      c.from_stored_basis(y.data(), side == 0 ? k : v);
    }
    c.add_mean(kv_head, side == 0 ? k : v);
  }
}

void KVCache::page_partial(int64_t layer, int64_t h, int64_t p, const float* qr, const KVQueryQ8* q8,
                           int64_t R, const int64_t* nvis, float* part) const {
  const KVSideCodec& kc = pool_->codec(layer, 0);
  const KVSideCodec& vc = pool_->codec(layer, 1);
  const KVKernels& kk = kv_kernels();
  const int64_t dk = kc.format().dim, dv = vc.format().dim, ldp = 2 + dv;
  const int64_t np = *std::max_element(nvis, nvis + R);
  for (int64_t r = 0; r < R; ++r) {
    part[r * ldp] = -std::numeric_limits<float>::infinity();
    part[r * ldp + 1] = 0.0f;
    std::fill_n(part + r * ldp + 2, dv, 0.0f);
  }
  if (np == 0) return;
  const int64_t tile = std::max<int64_t>(16, 4096 / std::max(dk, dv));
  thread_local std::vector<float> S, buf, sc;
  S.resize(size_t(R * kPageTokens));     // [R, kPageTokens] scores, then weights
  buf.resize(size_t(std::max(dk, dv)));  // [1, dim] the sink row
  sc.resize(size_t(kPageTokens));        // [np] per-vector scales of a tile (integer values: the page)
  const int64_t t_first = p * kPageTokens;
  // Position 0 of a sequence reads its bf16 sink copy (kv_pool.h) instead of its codes, where the side has
  // one.
  auto sink_first = [&](int side, int64_t t0) {
    return p == 0 && t0 == 0 && pool_->sink_offset(layer, side) >= 0;
  };
  auto load_scales = [&](int side, int64_t t0, int64_t nt) {  // scales -> sc [nt]
    const KVSideCodec& c = pool_->codec(layer, side);
    if (c.format().scale_bytes()) {  // the tile's fp16 scales are contiguous: decode them as one f16 row
      const uint8_t* s16 = page(layer, side, t_first) + scale_offset(c.format(), t_first + t0, h, KV_);
      kk.decode(KVRowFormat{KVCodes::F16, 16, nt, 2 * nt, nullptr}, s16, 1, sc.data());
    } else {
      std::fill_n(sc.data(), nt, 1.0f);
    }
    if (sink_first(side, t0)) sc[0] = 1.0f;
  };
  auto load_sink = [&](int side) {  // the sink copy -> buf [1, dim]
    const int64_t dim = pool_->codec(layer, side).format().dim;
    kk.decode(KVRowFormat{KVCodes::BF16, 16, dim, 2 * dim, nullptr},
              pool_->data(table_[0]) + pool_->sink_offset(layer, side) + 2 * h * dim, 1, buf.data());
  };
  // The codes of the tile after this one are fetched while this one is computed, for TurboQuant and q8 codes
  // only. Measured in decode (tqlm_attn_bench --chunk 1, AMD Zen 4, quiet, alternating; ns per cached token
  // and kv head): MiniMax-M2 shape turbo4v2 13.8-16.1 with it, 16.2-21.1 without; q8 and turbo3 alike. bf16
  // 51-57 with it, 35.5 without (SmolLM2 shape 17.1-17.4 vs 12.5): the hardware prefetcher follows the
  // plain rows, and the extra requests only compete with it.
  auto prefetch_tile = [&](int side, int64_t t0) {
    const KVSideFormat& f = pool_->codec(layer, side).format();
    if (t0 >= np || (f.codes != KVCodes::TURBO && f.codes != KVCodes::Q8)) return;
    const uint8_t* c = page(layer, side, t_first) + code_offset(f, t_first + t0, h);
    const int64_t bytes = std::min(tile, np - t0) * f.code_bytes();
    for (int64_t b = 0; b < bytes; b += 64) __builtin_prefetch(c + b);
  };
  for (int64_t t0 = 0; t0 < np; t0 += tile) {
    const int64_t nt = std::min(tile, np - t0);
    if (t0 + tile < np)
      prefetch_tile(0, t0 + tile);
    else
      prefetch_tile(1, 0);
    // scores straight from the codes: integer scores over 4-bit codes, else f32 (the sink, when first, in f32
    // from its bf16 copy)
    load_scales(0, t0, nt);
    const int64_t skip = sink_first(0, t0) ? 1 : 0;
    if (skip) {
      load_sink(0);
      kk.scores(qr, R, dk, buf.data(), sc.data(), 1, dk, S.data() + t0, kPageTokens);
    }
    const uint8_t* codes = page(layer, 0, t_first) + code_offset(kc.format(), t_first + t0 + skip, h);
    if (q8)
      kk.scores_q8(kc.row_format(), codes, sc.data() + skip, nt - skip, *q8, R, S.data() + t0 + skip,
                   kPageTokens);
    else
      kk.scores_codes(kc.row_format(), codes, qr, R, dk, sc.data() + skip, nt - skip, S.data() + t0 + skip,
                      kPageTokens);
  }
  for (int64_t r = 0; r < R; ++r) {
    float* s = S.data() + r * kPageTokens;
    const int64_t n = nvis[r];
    if (n == 0) {
      std::fill_n(s, np, 0.0f);
      continue;
    }
    const float m = kk.row_max(s, n);
    const float l = kk.exp_sum(s, n, m);
    std::fill(s + n, s + np, 0.0f);
    part[r * ldp] = m;
    part[r * ldp + 1] = l;
  }
  if (int8_values_ && vc.row_format().lut_u7) {
    // integer value sums over the page's codes in one call (the sink, when first, in f32 from its bf16 copy)
    load_scales(1, 0, np);
    const int64_t skip = sink_first(1, 0) ? 1 : 0;
    if (skip) {
      load_sink(1);
      kk.accumulate(S.data(), R, kPageTokens, buf.data(), sc.data(), 1, dv, part + 2, ldp);
    }
    kk.accumulate_q8(vc.row_format(), page(layer, 1, t_first) + code_offset(vc.format(), t_first + skip, h),
                     S.data() + skip, R, kPageTokens, sc.data() + skip, np - skip, part + 2, ldp);
    return;
  }
  for (int64_t t0 = 0; t0 < np; t0 += tile) {
    const int64_t nt = std::min(tile, np - t0);
    prefetch_tile(1, t0 + tile);
    load_scales(1, t0, nt);
    const int64_t skip = sink_first(1, t0) ? 1 : 0;
    if (skip) {  // the sink's bf16 copy first, then the codes after it
      load_sink(1);
      kk.accumulate(S.data() + t0, R, kPageTokens, buf.data(), sc.data(), 1, dv, part + 2, ldp);
    }
    kk.accumulate_codes(vc.row_format(),
                        page(layer, 1, t_first) + code_offset(vc.format(), t_first + t0 + skip, h),
                        S.data() + t0 + skip, R, kPageTokens, sc.data() + skip, nt - skip, part + 2, ldp);
  }
}

void KVCache::attend(int64_t layer, int64_t pos, int64_t T, const float* q, float* out, ThreadPool& pool) {
  const KVSideCodec& kc = pool_->codec(layer, 0);
  const KVSideCodec& vc = pool_->codec(layer, 1);
  const int64_t G = H_ / KV_, R = T * G, n = pos + T, pages = (n + kPageTokens - 1) / kPageTokens;
  const int64_t dk = kc.format().dim, dv = vc.format().dim, ldp = 2 + dv;
  const float qscale = 1.0f / std::sqrt(float(hd_));
  // Queries in the key basis, grouped by kv head: Q [KV, R, dk], row r = token r / G, head h * G + r % G.
  Q_.resize(size_t(KV_ * R * dk));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t hq = 0; hq < H_; ++hq)
      kc.to_stored_basis(q + (t * H_ + hq) * hd_, qscale, &Q_[size_t(((hq / G) * R + t * G + hq % G) * dk)]);
  // Integer scores over 4-bit key codes: each query row as int8 (round(q / s), s = max |q| / 127) with its
  // sum and the factor s x codebook step (KVQueryQ8); set_int8_scores(false) keeps the f32 scores.
  const bool int8_scores = kc.row_format().lut_u7 && kc.row_format().bits == 4 && int8_scores_;
  if (int8_scores) {
    Q8_.resize(Q_.size());
    Q8sum_.resize(size_t(KV_ * R));
    Q8mul_.resize(size_t(KV_ * R));
    for (int64_t i = 0; i < KV_ * R; ++i) {
      const float* x = &Q_[size_t(i * dk)];
      float amax = 0;
      for (int64_t j = 0; j < dk; ++j) amax = std::max(amax, std::fabs(x[j]));
      const float s = amax / 127.0f, inv = amax > 0 ? 127.0f / amax : 0.0f;
      int32_t sum = 0;
      for (int64_t j = 0; j < dk; ++j) {
        const float v = std::nearbyint(x[j] * inv);
        // NaN (a broken model's query) becomes 0 rather than an undefined conversion
        sum += Q8_[size_t(i * dk + j)] = int8_t(v >= 127.0f    ? 127.0f
                                                : v <= -127.0f ? -127.0f
                                                : v == v       ? v
                                                               : 0.0f);
      }
      Q8sum_[size_t(i)] = sum;
      Q8mul_[size_t(i)] = s * kc.row_format().lut_step;
    }
  }
  auto q8_rows = [&](int64_t i) {  // the quantized rows from row i of Q_ on
    return KVQueryQ8{&Q8_[size_t(i * dk)], dk, &Q8sum_[size_t(i)], &Q8mul_[size_t(i)]};
  };
  auto visible = [&](int64_t r, int64_t p) {  // keys of page p seen by row r
    return std::clamp<int64_t>(pos + r / G + 1 - p * kPageTokens, 0, kPageTokens);
  };
  // acc [KV, R, ldp]: (m, l, o) per row, then finished rows rotated back into out.
  Acc_.assign(size_t(KV_ * R * ldp), 0.0f);
  auto finish = [&](int64_t h, int64_t r) {
    float* a = &Acc_[size_t((h * R + r) * ldp)];
    const float inv = a[1] > 0 ? 1.0f / a[1] : 0.0f;
    for (int64_t j = 0; j < dv; ++j) a[2 + j] *= inv;
    float* o = out + ((r / G) * H_ + h * G + r % G) * hd_;
    vc.from_stored_basis(a + 2, o);
    vc.add_mean(h, o);  // centred values: attention over x - mean is the output - mean
  };
  if (T <= 2) {
    // Decode: tasks (kv head, page) -> partials [KV, pages, R, ldp]; then merge pages in order.
    Part_.resize(size_t(KV_ * pages * R * ldp));
    pool.parallel_for(KV_ * pages, 1, [&](int64_t i0, int64_t i1, int) {
      std::vector<int64_t> nvis(static_cast<size_t>(R));
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t h = i / pages, p = i % pages;
        for (int64_t r = 0; r < R; ++r) nvis[size_t(r)] = visible(r, p);
        const KVQueryQ8 q8 = int8_scores ? q8_rows(h * R) : KVQueryQ8{};
        page_partial(layer, h, p, &Q_[size_t(h * R * dk)], int8_scores ? &q8 : nullptr, R, nvis.data(),
                     &Part_[size_t(i * R * ldp)]);
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
  // Prefill: tasks (kv head, block of rows), each walking the pages in order. A block decodes (or looks up
  // and transposes) each page's keys once for all its rows, so blocks are large (up to ~128 rows: SmolLM2's
  // attention prefill 2.8 -> 2.65 ns per (query, key, kv head) with turbo4v2, 5.9 -> 4.9 with bf16, against
  // ~32 rows), but small enough for at least 4 tasks per thread when a prompt is short.
  constexpr int64_t kPrefillRows = 128;
  const int64_t per_head = std::max<int64_t>(1, (4 * pool.size() + KV_ - 1) / KV_);  // blocks wanted
  const int64_t even = (R + per_head - 1) / per_head;  // rows per block for per_head blocks
  const int64_t rb = std::clamp((even + G - 1) / G * G, G, G * std::max<int64_t>(1, kPrefillRows / G)),
                blocks = (R + rb - 1) / rb;
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
        const KVQueryQ8 q8 = int8_scores ? q8_rows(h * R + r0) : KVQueryQ8{};
        page_partial(layer, h, p, &Q_[size_t((h * R + r0) * dk)], int8_scores ? &q8 : nullptr, nr,
                     nvis.data(), part.data());
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

std::unique_ptr<KVCache> make_kv_cache(const KVSpec& spec, const KVShape& shape) {
  return std::make_unique<KVCache>(std::make_shared<KVPool>(spec, shape));
}

}  // namespace tqlm
