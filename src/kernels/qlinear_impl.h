// The SIMD integer linear kernels (see qlinear_kernels.h for what they compute), written once with AVX2
// intrinsics on 256-bit vectors and compiled per instruction set by qlinear_{avx2,avxvnni,avx512vnni}.cpp,
// which define QL_NS, QL_NAME and QL_DOT (0: vpmaddubsw + vpmaddwd, 1: VEX vpdpbusd, 2: EVEX vpdpbusd).
//
// A tile is 8 weight rows; its results sit in one f32 vector per token, lane i = row i, so each lane runs
// the reference's sequence of f32 operations for its (row, token): bit-identical to the scalar reference,
// whatever T and however the rows are split. Per 32 codes, each row's codes are unpacked in registers,
// multiplied with the int8 activations (int32 partial sums), and the 8 rows' partial sums are reduced into
// two vectors of 8 exact integer sums, one per 16-element activation block (qact.h).
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/dtype.h"
#include "kernels/qlinear_kernels.h"

namespace tqlm::QL_NS {
namespace {

// Shuffle and multiplier constants that unpack 32 codes of BITS bits (a 4*BITS-byte block of the row's
// little-endian bit stream) into 32 bytes. Lane 0 of the source vector holds the block's bytes from 0, lane
// 1 from byte 2*BITS (where code 16 starts), so both lanes use the same constants. Vector `a` takes codes
// 0-7 / 16-23 into 16-bit lanes, `b` codes 8-15 / 24-31; packus(a, b) then puts codes 0..31 in order.
// Each 16-bit lane holds the two bytes around its code; a multiply by 2^(16 - shift - BITS) moves the
// code's top bit to bit 15 and a shift right by 16 - BITS leaves the code.
template <int BITS>
struct UnpackConsts {
  alignas(32) uint8_t sa[32] = {}, sb[32] = {};
  alignas(32) uint16_t ma[16] = {}, mb[16] = {};
  constexpr UnpackConsts() {
    for (int lane = 0; lane < 2; ++lane)
      for (int half = 0; half < 2; ++half)
        for (int j = 0; j < 8; ++j) {
          const int i = j + 8 * half, bit = BITS * i, byte = bit / 8, s = bit % 8;
          uint8_t* sh = half ? sb : sa;
          uint16_t* mu = half ? mb : ma;
          sh[lane * 16 + 2 * j] = uint8_t(byte);
          sh[lane * 16 + 2 * j + 1] = s + BITS > 8 ? uint8_t(byte + 1) : uint8_t(0x80);
          mu[lane * 8 + j] = uint16_t(1u << (16 - s - BITS));
        }
  }
};
template <int BITS>
inline constexpr UnpackConsts<BITS> kUnpack{};

// 32 codes of the block at p (4 * BITS bytes) as bytes in order. Reads 16 + 2 * BITS bytes for BITS < 8.
template <int BITS>
inline __m256i unpack32(const uint8_t* p) {
  if constexpr (BITS == 8) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  } else {
    const UnpackConsts<BITS>& k = kUnpack<BITS>;
    const __m256i src =
        _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))),
                                _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2 * BITS)), 1);
    __m256i a = _mm256_shuffle_epi8(src, _mm256_load_si256(reinterpret_cast<const __m256i*>(k.sa)));
    __m256i b = _mm256_shuffle_epi8(src, _mm256_load_si256(reinterpret_cast<const __m256i*>(k.sb)));
    a = _mm256_srli_epi16(_mm256_mullo_epi16(a, _mm256_load_si256(reinterpret_cast<const __m256i*>(k.ma))),
                          16 - BITS);
    b = _mm256_srli_epi16(_mm256_mullo_epi16(b, _mm256_load_si256(reinterpret_cast<const __m256i*>(k.mb))),
                          16 - BITS);
    return _mm256_packus_epi16(a, b);
  }
}

// 2- and 4-bit blocks in the shift-only order of QActs::q2p / q4p: 3 instructions instead of unpack32's 9.
template <int BITS>
inline __m256i unpack32_permuted(const uint8_t* p) {
  if constexpr (BITS == 4) {  // 16 bytes: low nibbles in lane 0, high nibbles in lane 1
    const __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_and_si256(_mm256_srlv_epi64(v, _mm256_set_epi64x(4, 4, 0, 0)), _mm256_set1_epi8(0x0F));
  } else {  // 8 bytes: bit pair m of each byte in 64-bit lane m
    int64_t w;
    std::memcpy(&w, p, 8);
    const __m256i v = _mm256_set1_epi64x(w);
    return _mm256_and_si256(_mm256_srlv_epi64(v, _mm256_set_epi64x(6, 4, 2, 0)), _mm256_set1_epi8(0x03));
  }
}

// int32 lane i: sum over bytes 4i..4i+3 of code (unsigned, < 2^BITS) * x (int8 in [-127, 127]). Exact.
template <int BITS>
inline __m256i dot4(__m256i c, __m256i x) {
#if QL_DOT == 2
  return _mm256_dpbusd_epi32(_mm256_setzero_si256(), c, x);
#elif QL_DOT == 1
  return _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), c, x);
#else
  const __m256i ones = _mm256_set1_epi16(1);
  if constexpr (BITS <= 7) {  // pairs: 2 * 127 * 127 fits int16, no saturation
    return _mm256_madd_epi16(_mm256_maddubs_epi16(c, x), ones);
  } else {  // 8-bit codes would saturate vpmaddubsw: split into nibbles, code = 16 * hi + lo
    const __m256i m = _mm256_set1_epi8(0x0F);
    const __m256i lo = _mm256_and_si256(c, m), hi = _mm256_and_si256(_mm256_srli_epi16(c, 4), m);
    const __m256i slo = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, x), ones);
    const __m256i shi = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, x), ones);
    return _mm256_add_epi32(slo, _mm256_slli_epi32(shi, 4));
  }
#endif
}

// qacts_group_sum, repeated here so no inline function is shared with code built for another ISA (the
// linker keeps one copy of an inline function).
inline float group_sum(const QActs& a, int64_t t, int64_t b0, int64_t nb) {
  const float* s = a.s.data() + t * a.blocks() + b0;
  float xs = 0.0f;
  for (int64_t i = 0; i < nb; ++i) xs = xs + s[i];
  return xs;
}

// Lane i of lo: the sum of lanes 0-3 of p[i] (bytes 0-15: the first 16-block); of hi: lanes 4-7.
inline void reduce8(const __m256i p[8], __m256i& lo, __m256i& hi) {
  const __m256i h01 = _mm256_hadd_epi32(p[0], p[1]), h23 = _mm256_hadd_epi32(p[2], p[3]);
  const __m256i h45 = _mm256_hadd_epi32(p[4], p[5]), h67 = _mm256_hadd_epi32(p[6], p[7]);
  const __m256i h0 = _mm256_hadd_epi32(h01, h23), h1 = _mm256_hadd_epi32(h45, h67);
  lo = _mm256_permute2x128_si256(h0, h1, 0x20);
  hi = _mm256_permute2x128_si256(h0, h1, 0x31);
}

// a + float(isum) * d, the reference's step for one 16-block.
inline __m256 acc_block(__m256 a, __m256i isum, float d) {
  return _mm256_add_ps(a,
                       _mm256_mul_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(d)));  // exact: |isum| < 2^24
}

// Tokens [t0, t0 + NT) against 8 rows whose codes start at cp[i], stored at LOADBITS bits (8: an unpacked
// buffer), of true width BITS. yv[k] lane i = the reference's y for (row i, token t0 + k) before the bias.
template <int LOADBITS, int BITS, int NT>
void tile8(const uint8_t* const cp[8], const uint8_t* next, const float* sc, const float* bi, int64_t gs,
           const QActs& xa, int64_t t0, __m256 yv[NT]) {
  const int64_t in = xa.in, nb = xa.blocks(), per_group = gs / kQ8Block, groups = in / gs;
  for (int k = 0; k < NT; ++k) yv[k] = _mm256_setzero_ps();
  for (int64_t g = 0; g < groups; ++g) {
    __m256 a[NT];
    for (int k = 0; k < NT; ++k) a[k] = _mm256_setzero_ps();
    for (int64_t cb = g * gs / 32; cb < (g + 1) * gs / 32; ++cb) {  // 32 codes: activation blocks 2cb, 2cb+1
      __m256i c[8];
      if (next)  // the next tile (8 contiguous rows): 32 * BITS bytes of it per 32 codes (see the avx512vbmi
                 // family)
        for (int l = 0; l < 32 * LOADBITS; l += 64)
          _mm_prefetch(reinterpret_cast<const char*>(next + cb * 32 * LOADBITS + l), _MM_HINT_T0);
      for (int i = 0; i < 8; ++i) c[i] = unpack32<LOADBITS>(cp[i] + cb * LOADBITS * 4);
      for (int k = 0; k < NT; ++k) {
        const __m256i xq =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xa.q.data() + (t0 + k) * in + cb * 32));
        __m256i p[8], lo, hi;
        for (int i = 0; i < 8; ++i) p[i] = dot4<BITS>(c[i], xq);
        reduce8(p, lo, hi);
        const float* d = xa.d.data() + (t0 + k) * nb + 2 * cb;
        a[k] = acc_block(acc_block(a[k], lo, d[0]), hi, d[1]);
      }
    }
    const __m256 s = _mm256_loadu_ps(sc + g * 8), b = _mm256_loadu_ps(bi + g * 8);
    for (int k = 0; k < NT; ++k) {
      const __m256 xs = _mm256_set1_ps(group_sum(xa, t0 + k, g * per_group, per_group));
      yv[k] = _mm256_add_ps(yv[k], _mm256_add_ps(_mm256_mul_ps(s, a[k]), _mm256_mul_ps(b, xs)));
    }
  }
}

// Long batches: the tile's codes unpacked once into a buffer laid out so that no reduction is needed:
// per 32 codes, 8 vectors j = 0..7, dword i of vector j = codes 4j..4j+3 of row i (an 8 x 8 dword
// transpose of the unpacked rows). Multiplying vector j by the token's activation dword j broadcast
// accumulates each row's block sum in its own lane (j = 0..3: the first 16-block, 4..7: the second).
inline void transpose8(const __m256i c[8], uint8_t* dst /* [8, 32] */) {
  __m256i t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_epi32(c[2 * i], c[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_epi32(c[2 * i], c[2 * i + 1]);
  }
  for (int h = 0; h < 2; ++h) {  // rows 4h..4h+3
    __m256i* v = u + 4 * h;
    const __m256i* tt = t + 4 * h;
    v[0] = _mm256_unpacklo_epi64(tt[0], tt[2]);  // dwords 0 | 4
    v[1] = _mm256_unpackhi_epi64(tt[0], tt[2]);  // dwords 1 | 5
    v[2] = _mm256_unpacklo_epi64(tt[1], tt[3]);  // dwords 2 | 6
    v[3] = _mm256_unpackhi_epi64(tt[1], tt[3]);  // dwords 3 | 7
  }
  for (int j = 0; j < 4; ++j) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 32 * j),
                        _mm256_permute2x128_si256(u[j], u[4 + j], 0x20));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 32 * (j + 4)),
                        _mm256_permute2x128_si256(u[j], u[4 + j], 0x31));
  }
}

// acc lane i += sum over bytes 4i..4i+3 of code (unsigned, < 2^BITS) * x (int8). Exact.
template <int BITS>
inline __m256i dot4_acc(__m256i acc, __m256i c, __m256i x) {
#if QL_DOT == 2
  return _mm256_dpbusd_epi32(acc, c, x);
#elif QL_DOT == 1
  return _mm256_dpbusd_avx_epi32(acc, c, x);
#else
  return _mm256_add_epi32(acc, dot4<BITS>(c, x));
#endif
}

template <int BITS, int NT>
void tile8_t(const uint8_t* buf, const float* sc, const float* bi, int64_t gs, const QActs& xa, int64_t t0,
             __m256 yv[NT]) {
  const int64_t in = xa.in, nb = xa.blocks(), per_group = gs / kQ8Block, groups = in / gs;
  for (int k = 0; k < NT; ++k) yv[k] = _mm256_setzero_ps();
  for (int64_t g = 0; g < groups; ++g) {
    __m256 a[NT];
    for (int k = 0; k < NT; ++k) a[k] = _mm256_setzero_ps();
    for (int64_t blk = g * per_group; blk < (g + 1) * per_group; ++blk) {  // 16-blocks: half a buffer block
      __m256i acc[NT];
      for (int k = 0; k < NT; ++k) acc[k] = _mm256_setzero_si256();
      for (int j = 0; j < 4; ++j) {
        const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(buf + blk * 128 + 32 * j));
        for (int k = 0; k < NT; ++k) {
          int32_t xd;
          std::memcpy(&xd, xa.q.data() + (t0 + k) * in + blk * kQ8Block + 4 * j, 4);
          acc[k] = dot4_acc<BITS>(acc[k], wv, _mm256_set1_epi32(xd));
        }
      }
      for (int k = 0; k < NT; ++k) a[k] = acc_block(a[k], acc[k], xa.d[size_t((t0 + k) * nb + blk)]);
    }
    const __m256 s = _mm256_loadu_ps(sc + g * 8), b = _mm256_loadu_ps(bi + g * 8);
    for (int k = 0; k < NT; ++k) {
      const __m256 xs = _mm256_set1_ps(group_sum(xa, t0 + k, g * per_group, per_group));
      yv[k] = _mm256_add_ps(yv[k], _mm256_add_ps(_mm256_mul_ps(s, a[k]), _mm256_mul_ps(b, xs)));
    }
  }
}

// TRANSPOSED: cp[0] is the transposed buffer (tile8_t), else 8 packed rows (tile8).
template <bool TRANSPOSED, int BITS, int NT>
void tile_store(const uint8_t* const cp[8], const uint8_t* next, const float* sc, const float* bi,
                const __m256 lb, int64_t gs, const QActs& xa, int64_t t0, float* y, int64_t out, int64_t r,
                int nr) {
  __m256 yv[NT];
  if constexpr (TRANSPOSED)
    tile8_t<BITS, NT>(cp[0], sc, bi, gs, xa, t0, yv);
  else
    tile8<BITS, BITS, NT>(cp, next, sc, bi, gs, xa, t0, yv);
  for (int k = 0; k < NT; ++k) {
    alignas(32) float tmp[8];
    _mm256_store_ps(tmp, _mm256_add_ps(yv[k], lb));
    std::memcpy(y + (t0 + k) * out + r, tmp, size_t(nr) * sizeof(float));
  }
}

// Scales or biases of rows [r, r + nr) (the last repeated up to 8) as f32, transposed: dst[g * 8 + i].
template <DType SD>
void load_sb_t(const void* src, int64_t groups, int64_t r, int nr, float* dst) {
  for (int i = 0; i < 8; ++i) {
    const int64_t base = (r + std::min(i, nr - 1)) * groups;
    for (int64_t g = 0; g < groups; ++g) {
      float v;
      if constexpr (SD == DType::F32) {
        v = load_f32(src, size_t(base + g));
      } else if constexpr (SD == DType::BF16) {
        v = bf16_to_f32(load_u16(src, size_t(base + g)));
      } else {
        v = _cvtsh_ss(load_u16(src, size_t(base + g)));  // exact, as f16_to_f32
      }
      dst[g * 8 + i] = v;
    }
  }
}
void load_sb(const void* src, DType dt, int64_t groups, int64_t r, int nr, float* dst) {
  switch (dt) {
    case DType::F32:
      return load_sb_t<DType::F32>(src, groups, r, nr, dst);
    case DType::BF16:
      return load_sb_t<DType::BF16>(src, groups, r, nr, dst);
    case DType::F16:
      return load_sb_t<DType::F16>(src, groups, r, nr, dst);
    default:
      for (int i = 0; i < 8; ++i)
        for (int64_t g = 0; g < groups; ++g)
          dst[g * 8 + i] = load_as_f32(src, dt, size_t((r + std::min(i, nr - 1)) * groups + g));
  }
}

// Decode (T <= kQ8PermutedMaxT) unpacks each block in registers for all tokens at once; longer batches unpack
// the tile's 8 rows once into a transposed byte buffer (tile8_t) and run 4 tokens at a time over it. Both do
// the same f32 operations on the same exact integer block sums.
template <bool TRANSPOSED, int BITS>
void run_tokens(const uint8_t* const cp[8], const uint8_t* next, const float* sc, const float* bi,
                const __m256 lb, int64_t gs, const QActs& xa, float* y, int64_t out, int64_t r, int nr) {
  int64_t t = 0;
  if constexpr (TRANSPOSED)  // 8 tokens per pass over the buffer: each weight vector loaded once for 8
    for (; t + 8 <= xa.T; t += 8)
      tile_store<TRANSPOSED, BITS, 8>(cp, next, sc, bi, lb, gs, xa, t, y, out, r, nr);
  for (; t + 4 <= xa.T; t += 4)
    tile_store<TRANSPOSED, BITS, 4>(cp, next, sc, bi, lb, gs, xa, t, y, out, r, nr);
  switch (xa.T - t) {
    case 3:
      return tile_store<TRANSPOSED, BITS, 3>(cp, next, sc, bi, lb, gs, xa, t, y, out, r, nr);
    case 2:
      return tile_store<TRANSPOSED, BITS, 2>(cp, next, sc, bi, lb, gs, xa, t, y, out, r, nr);
    case 1:
      return tile_store<TRANSPOSED, BITS, 1>(cp, next, sc, bi, lb, gs, xa, t, y, out, r, nr);
    default:
      return;
  }
}

// gemm_qN_q8_f32: y [T, out] rows [r0, r1) = codes (N = BITS bits, MLX affine) x int8 activations, f32 out.
template <int BITS>
void gemm_qN_q8_f32(const Linear& w, const QActs& xa, float* y, int64_t r0, int64_t r1, float* scratch) {
  const int64_t in = w.in, groups = in / w.group_size, row_bytes = in * BITS / 8;
  float* sc = scratch;                                          // [groups, 8]
  float* bi = sc + groups * 8;                                  // [groups, 8]
  uint8_t* last = reinterpret_cast<uint8_t*>(bi + groups * 8);  // [row_bytes + 64]: the matrix's last row
  uint8_t* buf = last + (row_bytes + 64 + 63) / 64 * 64;        // [in / 32, 8, 32] transposed codes
  if (xa.T <= kQ8PermutedMaxT) {  // decode: the first tile is cold (see the avx512vbmi family): all of it now
    const auto* first = reinterpret_cast<const char*>(w.wq) + r0 * row_bytes;
    for (int64_t o = 0; o < std::min<int64_t>(8, r1 - r0) * row_bytes; o += 64)
      _mm_prefetch(first + o, _MM_HINT_T0);
  }
  for (int64_t r = r0; r < r1; r += 8) {
    const int nr = int(std::min<int64_t>(8, r1 - r));
    const uint8_t* cp[8];
    alignas(32) float lbias[8];
    qlinear_tile_rows(w, r, nr, last, cp, lbias);
    load_sb(w.scales, w.sdtype, groups, r, nr, sc);
    load_sb(w.biases, w.sdtype, groups, r, nr, bi);
    const __m256 lb = _mm256_load_ps(lbias);
    if (xa.T <= kQ8PermutedMaxT) {
      const uint8_t* next =
          r + 16 <= w.out ? reinterpret_cast<const uint8_t*>(w.wq) + (r + 8) * row_bytes : nullptr;
      run_tokens<false, BITS>(cp, next, sc, bi, lb, w.group_size, xa, y, w.out, r, nr);
      continue;
    }
    for (int64_t cb = 0; cb < in / 32; ++cb) {
      __m256i c[8];
      for (int i = 0; i < 8; ++i) c[i] = unpack32<BITS>(cp[i] + cb * BITS * 4);
      transpose8(c, buf + cb * 256);
    }
    const uint8_t* bp[8] = {buf};
    run_tokens<true, BITS>(bp, nullptr, sc, bi, lb, w.group_size, xa, y, w.out, r, nr);
  }
}

// quantize_rows_q8_ref with 8-float vectors: the same operations on every element (max_ps returns its second
// operand for a NaN, as the reference's comparisons do), so the same bytes and floats.
void quantize(const float* x, int64_t t0, int64_t t1, QActs& out) {
  const int64_t in = out.in, nb = in / kQ8Block;
  const __m256 sign = _mm256_set1_ps(-0.0f), lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
  const __m256 magic = _mm256_set1_ps(12582912.0f);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t t = t0; t < t1; ++t)
    for (int64_t b = 0; b < nb; b += 2) {  // two 16-blocks (in is a multiple of 32): v[0..1], v[2..3]
      const float* xb = x + t * in + b * kQ8Block;  // [32]
      __m256 v[4];
      for (int k = 0; k < 4; ++k) v[k] = _mm256_loadu_ps(xb + 8 * k);
      const __m256 m0 = _mm256_max_ps(_mm256_andnot_ps(sign, v[1]),
                                      _mm256_max_ps(_mm256_andnot_ps(sign, v[0]), _mm256_setzero_ps()));
      const __m256 m1 = _mm256_max_ps(_mm256_andnot_ps(sign, v[3]),
                                      _mm256_max_ps(_mm256_andnot_ps(sign, v[2]), _mm256_setzero_ps()));
      // lane 0: block b, lane 1: block b + 1 (no NaN is left in m0, m1, so the order of the maxima is free)
      __m256 m = _mm256_max_ps(_mm256_permute2f128_ps(m0, m1, 0x20), _mm256_permute2f128_ps(m0, m1, 0x31));
      m = _mm256_max_ps(m, _mm256_shuffle_ps(m, m, 0x4E));
      m = _mm256_max_ps(m, _mm256_shuffle_ps(m, m, 0xB1));
      const float amax[2] = {_mm256_cvtss_f32(m), _mm_cvtss_f32(_mm256_extractf128_ps(m, 1))};
      __m256i qi[4];
      for (int h = 0; h < 2; ++h) {
        const float d = amax[h] / 127.0f, id = amax[h] > 0.0f ? 127.0f / amax[h] : 0.0f;
        for (int k = 2 * h; k < 2 * h + 2; ++k) {
          __m256 q = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(v[k], _mm256_set1_ps(id)), lo), hi);
          q = _mm256_sub_ps(_mm256_add_ps(q, magic), magic);
          qi[k] = _mm256_cvtps_epi32(q);
        }
        const __m256i sum = _mm256_add_epi32(qi[2 * h], qi[2 * h + 1]);
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
        out.d[size_t(t * nb + b + h)] = d;
        out.s[size_t(t * nb + b + h)] = float(_mm_cvtsi128_si32(s4)) * d;
      }
      const __m256i packed = _mm256_permutevar8x32_epi32(
          _mm256_packs_epi16(_mm256_packs_epi32(qi[0], qi[1]), _mm256_packs_epi32(qi[2], qi[3])), order);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out.q.data() + t * in + b * kQ8Block), packed);
    }
}

void rows(const Linear& w, const QActs& xa, float* y, int64_t r0, int64_t r1, float* scratch) {
  with_mlx_bits(w.bits, [&](auto b) { gemm_qN_q8_f32<decltype(b)::value>(w, xa, y, r0, r1, scratch); });
}

#if QL_DOT != 2
#include "kernels/qlinear_packed256.h"
#endif

}  // namespace

#if QL_DOT == 2
const QLinearKernels kernels = {QL_NAME, rows, quantize, qisa_packed512::rows};
#else
const QLinearKernels kernels = {QL_NAME, rows, quantize, packed256::packed_rows};
#endif

}  // namespace tqlm::QL_NS
