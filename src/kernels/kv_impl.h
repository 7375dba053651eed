// KV-cache attention kernels written once with GCC vector extensions; included by linear_{sse2,avx2,
// avx512}.cpp after linear_impl.h (same namespace, vector types and Unpack).
//
// decode: codes -> f32 rows. TurboQuant indices are unpacked in registers (2/4/8 bits: one variable shift
// per lane; 3, 5, 6 bits: two lane permutes and variable shifts, UnpackBytes; a scalar bit stream where W <
// 8) and looked up in the codebook with lane permutes when it fits 8 vectors (2^bits <= 8W), else lane by
// lane.
#include <cmath>
#include <vector>

#include "kernels/kv_kernels.h"

namespace tqlm::TQLM_ISA_NS {

namespace kv {

typedef uint16_t vh __attribute__((vector_size(TQLM_VB / 2)));  // W x u16

inline void store(float* p, vf v) {
  std::memcpy(p, &v, sizeof v);
}

// Codebook lookup of W indices: the table is held in registers when it has at most 8W entries (a lane permute
// of one or two vectors, then selects between pairs of vectors by the index's higher bits), else read lane by
// lane.
template <int BITS>
struct Lookup {
  static constexpr int levels = 1 << BITS;
  static constexpr int pairs =
      levels <= W ? 0 : levels / (2 * W);  // vector pairs of the table (0: one vector)
  static constexpr bool in_registers = levels <= 8 * W;
  vf lo = {}, tab[pairs > 0 && in_registers ? 2 * pairs : 1] = {};
  const float* lut;
  explicit Lookup(const float* l) : lut(l) {
    if constexpr (levels <= W) {
      for (int i = 0; i < levels; ++i) lo[i] = l[i];
    } else if constexpr (in_registers) {
      for (int k = 0; k < 2 * pairs; ++k) std::memcpy(&tab[k], l + k * W, sizeof(vf));
    }
  }
  vf operator()(vi idx) const {
    if constexpr (levels <= W) {
      return __builtin_shuffle(lo, idx);
    } else if constexpr (in_registers) {  // the shuffle of two vectors reads idx modulo 2W
      vf r[pairs];
      for (int k = 0; k < pairs; ++k) r[k] = __builtin_shuffle(tab[2 * k], tab[2 * k + 1], idx);
      if constexpr (pairs >= 2) {
        const vi hi2 = (idx & (2 * W)) != 0;
        r[0] = hi2 ? r[1] : r[0];
        if constexpr (pairs == 4) {
          r[2] = hi2 ? r[3] : r[2];
          r[0] = (idx & (4 * W)) != 0 ? r[2] : r[0];
        }
      }
      return r[0];
    } else {
      vf r;
      for (int i = 0; i < W; ++i) r[i] = lut[idx[i]];
      return r;
    }
  }
};

// W codes of 3, 5 or 6 bits (W a multiple of 8, so a group starts on a byte): the group's W x BITS / 8 bytes
// are loaded into the low lanes of a vector (one unaligned load of `load` bytes, which may read up to 10
// bytes past the group: into the next row, so the caller reads the last row of a buffer with codes_exact),
// then lane i takes its code from the 32-bit lane(s) holding bits [i x BITS, (i + 1) x BITS): two lane
// permutes and variable shifts. The same interface as Unpack.
template <int BITS>
struct UnpackBytes {  // used only where W % 8 == 0 (the callers check)
  static constexpr int bytes = W * BITS / 8, load = W <= 8 ? 8 : 16;
  vu word0, word1, shr, shl;
  UnpackBytes() {
    for (int i = 0; i < W; ++i) {
      const int o = i * BITS;
      word0[i] = uint32_t(o / 32);
      word1[i] = uint32_t(std::min(o / 32 + 1, W - 1));  // only read when the code crosses into it
      shr[i] = uint32_t(o % 32);
      shl[i] = uint32_t(31 - o % 32);  // (w1 << 1) << shl = w1 << (32 - o % 32), without a shift by 32
    }
  }
  vi split(vu raw) const {
    const vu w0 = __builtin_shuffle(raw, word0), w1 = __builtin_shuffle(raw, word1);
    return (vi)(((w0 >> shr) | ((w1 << 1) << shl)) & ((1u << BITS) - 1u));
  }
  vi codes(const uint32_t* row, int64_t e0) const {
    typedef uint32_t vload __attribute__((vector_size(load)));
    vload l;
    std::memcpy(&l, reinterpret_cast<const uint8_t*>(row) + e0 / 8 * BITS, load);
    vu raw = {};
    for (int i = 0; i < load / 4; ++i) raw[i] = l[i];
    return split(raw);
  }
  vi codes_exact(const uint32_t* row, int64_t e0) const {  // reads exactly the group's bytes
    vu raw = {};
    std::memcpy(&raw, reinterpret_cast<const uint8_t*>(row) + e0 / 8 * BITS, bytes);
    return split(raw);
  }
};

// Codes of row `row` from coordinate e; `last`: the buffer's last row, read without going past it.
template <typename U>
vi codes_of(const U& unpack, const uint32_t* row, int64_t e, bool last) {
  if constexpr (requires { unpack.codes_exact(row, e); })
    if (last) return unpack.codes_exact(row, e);
  return unpack.codes(row, e);
}

// TurboQuant codes -> codebook values, W coordinates at a time (U: Unpack or UnpackBytes).
template <int BITS, typename U>
void decode_turbo(const KVRowFormat& f, const uint8_t* codes, int64_t n, float* out) {
  static const U unpack;
  const Lookup<BITS> lookup(f.lut);
  for (int64_t t = 0; t < n; ++t) {
    const uint32_t* row = reinterpret_cast<const uint32_t*>(codes + t * f.row_bytes);
    for (int64_t e = 0; e < f.dim; e += W)
      store(out + t * f.dim + e, lookup(codes_of(unpack, row, e, t == n - 1)));
  }
}

// 3, 5 and 6 bits: UnpackBytes where W >= 8 and rows have 16 bytes or more; else 8 codes = BITS bytes, read
// as one little-endian word and split in a scalar loop.
template <int BITS>
void decode_turbo_bytes(const KVRowFormat& f, const uint8_t* codes, int64_t n, float* out) {
  if constexpr (W % 8 == 0)
    if (f.row_bytes >= 16) return decode_turbo<BITS, UnpackBytes<BITS>>(f, codes, n, out);
  constexpr uint64_t mask = (1u << BITS) - 1;
  for (int64_t t = 0; t < n; ++t) {
    const uint8_t* row = codes + t * f.row_bytes;
    for (int64_t e = 0; e < f.dim; e += 8) {
      const uint8_t* b = row + e / 8 * BITS;
      uint64_t word = 0;
      for (int i = 0; i < BITS; ++i) word |= uint64_t(b[i]) << (8 * i);
      for (int i = 0; i < 8; ++i) out[t * f.dim + e + i] = f.lut[(word >> (BITS * i)) & mask];
    }
  }
}

// W bf16 values from p as f32 (exact: the 16 bits become the high half), as decode() converts them. GCC
// lowers the vector-extension conversion to two half-width widenings and an insert (AVX2 and AVX-512), so the
// one widening load is asked for (maskz with every lane: the plain AVX-512 intrinsic's undefined source trips
// GCC 12's -Wmaybe-uninitialized). Fewer instructions; no change measurable in decode, which waits on memory.
inline vf load_bf16(const uint8_t* p) {
#if TQLM_VB == 64
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return vf(vu(_mm512_maskz_cvtepu16_epi32(__mmask16(0xffff), h)) << 16);
#elif TQLM_VB == 32
  return vf(vu(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)))) << 16);
#else
  vh h;
  std::memcpy(&h, p, sizeof h);
  const vu u = __builtin_convertvector(h, vu) << 16;
  vf r;
  std::memcpy(&r, &u, sizeof r);
  return r;
#endif
}

void decode(const KVRowFormat& f, const uint8_t* codes, int64_t n, float* out) {
  const int64_t total = n * f.dim;
  switch (f.codes) {
    case KVCodes::F32:
      std::memcpy(out, codes, size_t(total) * 4);
      return;
    case KVCodes::BF16: {  // bf16 -> f32: the 16 bits become the high half of the f32
      const uint16_t* s = reinterpret_cast<const uint16_t*>(codes);
      int64_t i = 0;
      for (; i + W <= total; i += W) store(out + i, load_bf16(codes + 2 * i));
      for (; i < total; ++i) out[i] = bf16_to_f32(s[i]);
      return;
    }
    case KVCodes::F16: {
      const uint16_t* s = reinterpret_cast<const uint16_t*>(codes);
      int64_t i = 0;
#if defined(__F16C__)
      for (; i + 8 <= total; i += 8)
        _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i))));
#endif
      for (; i < total; ++i) out[i] = f16_to_f32(s[i]);
      return;
    }
    case KVCodes::Q8: {
      const int8_t* s = reinterpret_cast<const int8_t*>(codes);
      int64_t i = 0;
#if TQLM_VB >= 32  // GCC scalarises int8 -> f32 vector conversions: sign-extend with vpmovsxbd explicitly
      for (; i + 8 <= total; i += 8)
        _mm256_storeu_ps(out + i, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(
                                      _mm_loadl_epi64(reinterpret_cast<const __m128i*>(s + i)))));
#endif
      for (; i < total; ++i) out[i] = float(s[i]);
      return;
    }
    case KVCodes::TURBO:
      if (f.dim % W != 0 || f.dim % 8 != 0) return kv_decode_ref(f, codes, n, out);
      switch (f.bits) {
        case 2:
          return decode_turbo<2, Unpack<2>>(f, codes, n, out);
        case 3:
          return decode_turbo_bytes<3>(f, codes, n, out);
        case 5:
          return decode_turbo_bytes<5>(f, codes, n, out);
        case 6:
          return decode_turbo_bytes<6>(f, codes, n, out);
        case 4:
          return decode_turbo<4, Unpack<4>>(f, codes, n, out);
        case 8:
          return decode_turbo<8, Unpack<8>>(f, codes, n, out);
        default:
          return kv_decode_ref(f, codes, n, out);
      }
  }
}

// x in every lane (a vector-extension `vf{} + x` is an add: it turns -0 into +0, so it cannot be folded)
inline vf splat(float x) {
#if TQLM_VB == 64
  return _mm512_set1_ps(x);
#elif TQLM_VB == 32
  return _mm256_set1_ps(x);
#else
  return _mm_set1_ps(x);
#endif
}

// a * b + c, fused where the family has FMA (the build turns contraction off, so it is asked for here)
inline vf fmadd(vf a, vf b, vf c) {
#if defined(__FMA__) && TQLM_VB == 64
  return _mm512_fmadd_ps(a, b, c);
#elif defined(__FMA__) && TQLM_VB == 32
  return _mm256_fmadd_ps(a, b, c);
#else
  return a * b + c;
#endif
}

// Sums of 4 vectors at once: two halving steps combine pairs of vectors (lane i + lane i + W/2 of each, then
// of each pair), the rest halve one vector holding 4 groups of W/4 lanes. Every dot product goes through this
// same tree whatever its position in a batch, so scores do not depend on how tokens are batched.
struct Hsum4Masks {
  vi lo, hi, lo2, hi2, fold[4];
  int folds = 0;
  Hsum4Masks() {
    for (int i = 0; i < W; ++i) {
      const int h = W / 2, q = W / 4;
      lo[i] = i < h ? i : W + i - h;  // a[0..h) then b[0..h)
      hi[i] = i < h ? i + h : W + i;  // a[h..W) then b[h..W)
      const int g = i / q;            // group g of d holds vector g: c0 halves for g < 2, c1's after
      lo2[i] = (g < 2 ? 0 : W) + (g % 2) * h + i % q;
      hi2[i] = lo2[i] + q;
    }
    for (int g = W / 8; g >= 1; g /= 2, ++folds)
      for (int i = 0; i < W; ++i) fold[folds][i] = (i / (W / 4)) * (W / 4) + (i % (W / 4) + g) % (W / 4);
  }
};
inline const Hsum4Masks h4;

// out[0..4) = sums of a0..a3 (W >= 4).
inline void hsum4(vf a0, vf a1, vf a2, vf a3, float* out) {
  const vf c0 =
      __builtin_shuffle(a0, a1, h4.lo) + __builtin_shuffle(a0, a1, h4.hi);  // [a0 halves | a1 halves]
  const vf c1 = __builtin_shuffle(a2, a3, h4.lo) + __builtin_shuffle(a2, a3, h4.hi);
  // quarters: group k of W/4 lanes holds vector k's partial sums
  vf d = __builtin_shuffle(c0, c1, h4.lo2) + __builtin_shuffle(c0, c1, h4.hi2);
  for (int f = 0; f < h4.folds; ++f) d += __builtin_shuffle(d, h4.fold[f]);
  for (int k = 0; k < 4; ++k) out[k] = d[k * (W / 4)];
}

// Scores of RB query rows against 4 keys at a time: each loaded key vector feeds all RB rows (RB x 4
// accumulators in registers), then one hsum4 tree per row. A row's arithmetic does not depend on RB or on
// the other rows, so prefill (many rows) equals decode (G rows) bit for bit.
// key(t, j) = coordinates [j, j + W) of key t (f32 rows, or bf16 codes converted in registers).
template <int RB, typename Key>
void scores_rows(const float* q, int64_t ldq, Key&& key, const float* scale, int64_t n, int64_t dim, float* s,
                 int64_t lds) {
  const vf zero = {};
  for (int64_t t = 0; t < n; t += 4) {
    const int nt = int(std::min<int64_t>(4, n - t));
    vf a[RB][4];
    for (int r = 0; r < RB; ++r)
      for (int i = 0; i < 4; ++i) a[r][i] = zero;
    for (int64_t j = 0; j < dim; j += W) {
      vf kv[4];
      for (int i = 0; i < 4; ++i) kv[i] = i < nt ? key(t + i, j) : zero;
      for (int r = 0; r < RB; ++r) {
        const vf qv = load(q + r * ldq + j);
        for (int i = 0; i < 4; ++i) a[r][i] = fmadd(qv, kv[i], a[r][i]);
      }
    }
    for (int r = 0; r < RB; ++r) {
      float sums[4];
      hsum4(a[r][0], a[r][1], a[r][2], a[r][3], sums);
      for (int i = 0; i < nt; ++i) s[r * lds + t + i] = scale[t + i] * sums[i];
    }
  }
}

constexpr int kRowBlock = W >= 16 ? 4 : 2;  // query rows per register block (RB x 4 accumulators)
// Most rows for which decode reads bf16 keys and values in registers (row blocks each converting the codes
// again) rather than decoding a tile once: on AVX-512 up to 16 (G = 6 and 8 query heads per kv head run
// 1.6x faster than the tile, G = 16 ~10%); on AVX2 (2-row blocks) more rows measured no better.
constexpr int kRegRows = W >= 16 ? 16 : kRowBlock;

// f.template operator()<RB>(r) for blocks of RB = kRowBlock rows starting at r, then one block of the rest.
template <typename F>
void row_blocks(int64_t R, F&& f) {
  int64_t r = 0;
  for (; r + kRowBlock <= R; r += kRowBlock) f.template operator()<kRowBlock>(r);
  switch (R - r) {
    case 3:
      return f.template operator()<3>(r);
    case 2:
      return f.template operator()<2>(r);
    case 1:
      return f.template operator()<1>(r);
  }
}

// W keys transposed: kt[j] lane i = coordinate j of key i (rows k [nk, dim], missing keys 0). Each W x W
// block is transposed by log2 W butterfly stages that swap the off-diagonal b x b blocks of row pairs (i, i
// + b), b = W/2 .. 1.
inline void transpose_keys(const float* k, int nk, int64_t dim, vf* kt) {
  static const struct Masks {
    vi lo[8], hi[8];  // stage of width b: lane l of the pair's first / second row
    Masks() {
      for (int st = 0, b = W / 2; b >= 1; b /= 2, ++st)
        for (int l = 0; l < W; ++l) {
          lo[st][l] = (l & b) ? W + l - b : l;  // x[l] or y[l - b]
          hi[st][l] = (l & b) ? W + l : l + b;  // y[l] or x[l + b]
        }
    }
  } m;
  for (int64_t j0 = 0; j0 < dim; j0 += W) {
    vf x[W];
    for (int i = 0; i < W; ++i) x[i] = i < nk ? load(k + i * dim + j0) : vf{};
    for (int st = 0, b = W / 2; b >= 1; b /= 2, ++st)
      for (int i = 0; i < W; ++i)
        if (!(i & b)) {
          const vf a = x[i], c = x[i + b];
          x[i] = __builtin_shuffle(a, c, m.lo[st]);
          x[i + b] = __builtin_shuffle(a, c, m.hi[st]);
        }
    for (int i = 0; i < W; ++i) kt[j0 + i] = x[i];
  }
}

// Scores of RB rows against the W keys of kt (transpose_keys), one vector of W keys' scores per row, with
// the arithmetic of scores_rows + hsum4 exactly: lane i's product chain c_i = fma over j = i, i + W, ...
// (from 0), then hsum4's tree as vertical adds: d_j = (c_j + c_{j+W/2}) + (c_{j+W/4} + c_{j+3W/4}) for j <
// W/4, then halving folds d_j + d_{j+g}, g = W/8 .. 1. No horizontal sums: prefill's many rows use this after
// one transpose per W keys, and it gives decode's bits.
template <int RB>
void scores_rows_t(const float* q, int64_t ldq, const vf* kt, int64_t dim, vf* out) {
  constexpr int Q = W / 4;
  vf d[RB][Q];
  // c[r] = lane i's product chain of row r
  auto chain = [&](int64_t i, vf* c) {
#pragma GCC unroll 8
    for (int r = 0; r < RB; ++r) c[r] = vf{};
    for (int64_t j0 = 0; j0 < dim; j0 += W) {
      const vf kv = kt[j0 + i];
#pragma GCC unroll 8
      for (int r = 0; r < RB; ++r) c[r] = fmadd(splat(q[r * ldq + j0 + i]), kv, c[r]);
    }
  };
#pragma GCC unroll 4
  for (int j = 0; j < Q; ++j) {
    vf c0[RB], c1[RB], t[RB];
    chain(j, c0);
    chain(j + 2 * Q, c1);
#pragma GCC unroll 8
    for (int r = 0; r < RB; ++r) t[r] = c0[r] + c1[r];
    chain(j + Q, c0);
    chain(j + 3 * Q, c1);
#pragma GCC unroll 8
    for (int r = 0; r < RB; ++r) d[r][j] = t[r] + (c0[r] + c1[r]);
  }
#pragma GCC unroll 4
  for (int g = Q / 2; g >= 1; g /= 2)
#pragma GCC unroll 8
    for (int r = 0; r < RB; ++r)
#pragma GCC unroll 4
      for (int j = 0; j < g; ++j) d[r][j] = d[r][j] + d[r][j + g];
#pragma GCC unroll 8
  for (int r = 0; r < RB; ++r) out[r] = d[r][0];
}

void scores(const float* q, int64_t R, int64_t ldq, const float* k, const float* scale, int64_t n,
            int64_t dim, float* s, int64_t lds) {
  if (dim % W != 0 || W < 4) return kv_scores_ref(q, R, ldq, k, scale, n, dim, s, lds);
  constexpr int64_t kMaxDimT = 256;
  if (R > 4 && dim <= kMaxDimT) {  // many rows (prefill): W keys at a time, transposed once
    vf kt[kMaxDimT];
    for (int64_t t = 0; t < n; t += W) {
      const int nk = int(std::min<int64_t>(W, n - t));
      transpose_keys(k + t * dim, nk, dim, kt);
      vf sc = {};
      for (int i = 0; i < nk; ++i) sc[i] = scale[t + i];
      auto rows = [&]<int RB>(int64_t r) {
        vf sum[RB];
        scores_rows_t<RB>(q + r * ldq, ldq, kt, dim, sum);
        for (int b = 0; b < RB; ++b) {
          const vf v = sc * sum[b];
          if (nk == W)
            store(s + (r + b) * lds + t, v);
          else
            for (int i = 0; i < nk; ++i) s[(r + b) * lds + t + i] = v[i];
        }
      };
      row_blocks(R, rows);
    }
    return;
  }
  auto key = [&](int64_t t, int64_t j) { return load(k + t * dim + j); };
  row_blocks(
      R, [&]<int RB>(int64_t r) { scores_rows<RB>(q + r * ldq, ldq, key, scale, n, dim, s + r * lds, lds); });
}

// fn(rows [nt, dim], t0, nt) for the codes decoded 64 tokens at a time into a thread-local buffer: the
// *_codes kernels' path where registers do not pay (many rows, or a format without an in-register loader).
template <typename F>
void for_decoded_tiles(const KVRowFormat& f, const uint8_t* codes, int64_t n, F&& fn) {
  constexpr int64_t tile = 64;
  thread_local std::vector<float> buf;  // [tile, dim]
  buf.resize(size_t(tile * f.dim));
  for (int64_t t0 = 0; t0 < n; t0 += tile) {
    const int64_t nt = std::min(tile, n - t0);
    decode(f, codes + t0 * f.row_bytes, nt, buf.data());
    fn(buf.data(), t0, nt);
  }
}

void scores_codes(const KVRowFormat& f, const uint8_t* codes, const float* q, int64_t R, int64_t ldq,
                  const float* scale, int64_t n, float* s, int64_t lds) {
  if (R <= kRegRows && f.codes == KVCodes::BF16 && f.dim % W == 0) {  // decode: bf16 keys in registers
    auto key = [&](int64_t t, int64_t j) { return load_bf16(codes + t * f.row_bytes + 2 * j); };
    return row_blocks(R, [&]<int RB>(int64_t r) {
      scores_rows<RB>(q + r * ldq, ldq, key, scale, n, f.dim, s + r * lds, lds);
    });
  }
  for_decoded_tiles(f, codes, n, [&](const float* k, int64_t t0, int64_t nt) {
    scores(q, R, ldq, k, scale + t0, nt, f.dim, s + t0, lds);
  });
}

// exp(x) for x <= 0 as 2^k * e^f: y = x log2 e + 1.5 x 2^23 rounds k = round(x log2 e) into y's low mantissa
// bits (k = y - 1.5 x 2^23, and y's bits + 127 - bits(1.5 x 2^23), shifted to the exponent field, are 2^k),
// f = x - k ln 2 in [-ln2/2, ln2/2] (Cody-Waite: ln 2 = hi + lo), e^f by a degree-5 minimax polynomial
// (relative error <= 1.9e-7 in f32, measured; the degree-6 Taylor polynomial before it: 2e-7 with 2x the
// operations); x below -87 gives 0.
inline vf exp_neg(vf x) {
  const vf magic = vf{} + 12582912.0f;  // 1.5 x 2^23
  const vf y = fmadd(x, vf{} + 1.44269504088896341f, magic);
  const vf k = y - magic;
  const vf f = fmadd(k, vf{} + 2.12194440e-4f, fmadd(k, vf{} - 0.693359375f, x));
  vf p = vf{} + 0.008297654800117016f;
  p = fmadd(p, f, vf{} + 0.04191538318991661f);
  p = fmadd(p, f, vf{} + 0.16667574644088745f);
  p = fmadd(p, f, vf{} + 0.49998894333839417f);
  p = fmadd(p, f, vf{} + 0.9999997019767761f);
  p = fmadd(p, f, vf{} + 1.0000001192092896f);
  vi e;
  std::memcpy(&e, &y, sizeof e);
  e = (e + (127 - 0x4B400000)) << 23;  // 2^k as f32 bits
  vf scale;
  std::memcpy(&scale, &e, sizeof e);
  return x < -87.0f ? vf{} : p * scale;
}

float row_max(const float* s, int64_t n) {
  if (n < W) return kv_row_max_ref(s, n);
  vf m = load(s);
  int64_t t = W;
  for (; t + W <= n; t += W) {
    const vf v = load(s + t);
    m = v > m ? v : m;
  }
  float r = m[0];
  for (int i = 1; i < W; ++i) r = std::max(r, m[i]);
  for (; t < n; ++t) r = std::max(r, s[t]);
  return r;
}

float exp_sum(float* s, int64_t n, float m) {
  vf acc = {};
  int64_t t = 0;
  for (; t + W <= n; t += W) {
    const vf e = exp_neg(load(s + t) - m);
    store(s + t, e);
    acc += e;
  }
  float sum = hsum(acc);
  for (; t < n; ++t) sum += (s[t] = std::exp(s[t] - m));
  return sum;
}

constexpr int64_t kMaxTile = 64;  // keys per weight block in accumulate

// Register tile: 4 vectors (4W coordinates) of RB output rows kept in registers across the tokens, so each
// value vector (src(t, j, x): x[0..4) = coordinates [j, j + 4W) of token t) feeds every row of the block.
// Per row: o += w_t * v_t in order of t, with w_t = p[r, t] * scale[t] formed once per block of tokens.
template <int RB, typename Src>
void accumulate_weighted(const float* p, int64_t ldp, const float* scale, int64_t n, int64_t dim, float* o,
                         int64_t ldo, Src&& src) {
  float w[RB][kMaxTile];
  for (int64_t t0 = 0; t0 < n; t0 += kMaxTile) {
    const int64_t nt = std::min<int64_t>(kMaxTile, n - t0);
    for (int r = 0; r < RB; ++r)
      for (int64_t t = 0; t < nt; ++t) w[r][t] = p[r * ldp + t0 + t] * scale[t0 + t];
    for (int64_t j = 0; j < dim; j += 4 * W) {
      vf a[RB][4];
      for (int r = 0; r < RB; ++r)
        for (int c = 0; c < 4; ++c) a[r][c] = load(o + r * ldo + j + c * W);
      for (int64_t t = 0; t < nt; ++t) {
        vf x[4];
        src(t0 + t, j, x);
        for (int r = 0; r < RB; ++r) {
          const float wt = w[r][t];
          for (int c = 0; c < 4; ++c) a[r][c] = fmadd(splat(wt), x[c], a[r][c]);
        }
      }
      for (int r = 0; r < RB; ++r)
        for (int c = 0; c < 4; ++c) store(o + r * ldo + j + c * W, a[r][c]);
    }
  }
}

// accumulate_weighted over R rows: blocks of 6 rows where W >= 16 (32 registers: 6 x 4 accumulators + 4
// value vectors), then row_blocks.
template <typename Src>
void accumulate_rows(const float* p, int64_t R, int64_t ldp, const float* scale, int64_t n, int64_t dim,
                     float* o, int64_t ldo, Src&& src) {
  auto block = [&]<int RB>(int64_t r) {
    accumulate_weighted<RB>(p + r * ldp, ldp, scale, n, dim, o + r * ldo, ldo, src);
  };
  int64_t r = 0;
  if constexpr (W >= 16)
    for (; r + 6 <= R; r += 6) block.template operator()<6>(r);
  row_blocks(R - r, [&]<int RB>(int64_t r1) { block.template operator()<RB>(r + r1); });
}

void accumulate(const float* p, int64_t R, int64_t ldp, const float* v, const float* scale, int64_t n,
                int64_t dim, float* o, int64_t ldo) {
  if (dim % (4 * W) != 0) return kv_accumulate_ref(p, R, ldp, v, scale, n, dim, o, ldo);
  accumulate_rows(p, R, ldp, scale, n, dim, o, ldo, [&](int64_t t, int64_t j, vf* x) {
    for (int c = 0; c < 4; ++c) x[c] = load(v + t * dim + j + c * W);
  });
}

// accumulate() over stored codes (f, codes [n, row_bytes]). A few rows (decode: the G query heads of a kv
// head) with TurboQuant codes (2, 4, 8 bits; 3, 5, 6 where W >= 8): each token's codes are unpacked and
// looked up in registers and feed the rows' accumulators directly. Otherwise the codes are decoded a tile at
// a time into a thread-local buffer for accumulate(). Same values, same order: both give the same bits.
template <int BITS, typename U>
void accumulate_codes_bits(const KVRowFormat& f, const uint8_t* codes, const float* p, int64_t R, int64_t ldp,
                           const float* scale, int64_t n, float* o, int64_t ldo) {
  static const U unpack;
  const Lookup<BITS> lookup(f.lut);
  row_blocks(R, [&]<int RB>(int64_t r) {
    accumulate_weighted<RB>(
        p + r * ldp, ldp, scale, n, f.dim, o + r * ldo, ldo, [&](int64_t t, int64_t j, vf* x) {
          const uint32_t* row = reinterpret_cast<const uint32_t*>(codes + t * f.row_bytes);
          for (int c = 0; c < 4; ++c) x[c] = lookup(codes_of(unpack, row, j + c * W, t == n - 1));
        });
  });
}

// 3, 5 and 6 bits (a template, so that families with W < 8 never instantiate UnpackBytes)
template <int V = W>
void accumulate_codes_bytes(const KVRowFormat& f, const uint8_t* codes, const float* p, int64_t R,
                            int64_t ldp, const float* scale, int64_t n, float* o, int64_t ldo) {
  if constexpr (V % 8 == 0) {
    if (f.bits == 3) return accumulate_codes_bits<3, UnpackBytes<3>>(f, codes, p, R, ldp, scale, n, o, ldo);
    if (f.bits == 5) return accumulate_codes_bits<5, UnpackBytes<5>>(f, codes, p, R, ldp, scale, n, o, ldo);
    if (f.bits == 6) return accumulate_codes_bits<6, UnpackBytes<6>>(f, codes, p, R, ldp, scale, n, o, ldo);
  }
}

void accumulate_codes(const KVRowFormat& f, const uint8_t* codes, const float* p, int64_t R, int64_t ldp,
                      const float* scale, int64_t n, float* o, int64_t ldo) {
  if (R <= kRowBlock && f.codes == KVCodes::TURBO && f.dim % (4 * W) == 0) {
    switch (f.bits) {
      case 2:
        return accumulate_codes_bits<2, Unpack<2>>(f, codes, p, R, ldp, scale, n, o, ldo);
      case 4:
        return accumulate_codes_bits<4, Unpack<4>>(f, codes, p, R, ldp, scale, n, o, ldo);
      case 8:
        return accumulate_codes_bits<8, Unpack<8>>(f, codes, p, R, ldp, scale, n, o, ldo);
    }
    if (W % 8 == 0 && f.row_bytes >= 16 && (f.bits == 3 || f.bits == 5 || f.bits == 6))
      return accumulate_codes_bytes(f, codes, p, R, ldp, scale, n, o, ldo);
  }
  if (R <= kRegRows && f.codes == KVCodes::BF16 && f.dim % (4 * W) == 0)  // decode: bf16 in registers
    return accumulate_rows(p, R, ldp, scale, n, f.dim, o, ldo, [&](int64_t t, int64_t j, vf* x) {
      for (int c = 0; c < 4; ++c) x[c] = load_bf16(codes + t * f.row_bytes + 2 * (j + c * W));
    });
  for_decoded_tiles(f, codes, n, [&](const float* v, int64_t t0, int64_t nt) {
    accumulate(p + t0, R, ldp, v, scale + t0, nt, f.dim, o, ldo);
  });
}

#include "kernels/kv_scores_q8.h"
#include "kernels/kv_values_q8.h"

}  // namespace kv

const KVKernels kv_kernels = {TQLM_ISA_NAME,     kv::decode,      kv::scores,     kv::scores_q8,
                              kv::row_max,       kv::exp_sum,     kv::accumulate, kv::accumulate_codes,
                              kv::accumulate_q8, kv::scores_codes};

}  // namespace tqlm::TQLM_ISA_NS
