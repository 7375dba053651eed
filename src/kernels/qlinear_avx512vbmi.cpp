// Integer linear kernels, avx512vbmi family: decode (T <= kQ8PermutedMaxT tokens) on 512-bit vectors for CPUs
// with AVX512-VBMI and AVX512-VNNI (Ice Lake, Sapphire Rapids, Zen 4 and later); longer batches run the
// avx512vnni family's kernels (qlinear_impl.h). Compile flags in CMakeLists.txt.
//
// gemv_qN_q8_f32_vbmi: 64 codes of any MLX bit width are unpacked with two instructions and no activation
// reordering: a byte permute (vpermb) gives qword lane L the bytes of codes 8L..8L+7 (they start at byte
// BITS * L), and a multishift (vpmultishiftqb) moves each code's bits to its own byte, masked to BITS bits
// (generic: the same constants shape for 2, 3, 4, 5, 6 bits; 8 bits is a plain load). One 512-bit vpdpbusd
// per (row, 64 codes, token) leaves 16 int32 partial sums, lanes 4b..4b+3 = 16-block b; two unpack+add levels
// reduce 8 rows to one vector per 4 rows whose 128-bit lane b holds block b's exact sums. Every (row, token)
// then runs the reference's f32 sequence (qlinear_kernels.h) in block order: bit-identical to the scalar
// reference and the other families.
// GCC 12's AVX-512 intrinsic headers start some results from _mm512_undefined_*(), which
// -Wmaybe-uninitialized reports inside the headers (a known false positive).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "core/dtype.h"
#include "kernels/qlinear_kernels.h"

namespace tqlm::qisa_avx512vbmi {
namespace {

template <int BITS>
struct Unpack64 {
  alignas(64) uint8_t perm[64] = {}, shift[64] = {};
  constexpr Unpack64() {
    for (int lane = 0; lane < 8; ++lane)
      for (int j = 0; j < 8; ++j) {
        perm[8 * lane + j] = uint8_t(std::min(BITS * lane + j, BITS <= 4 ? 31 : 63));  // codes 8L..8L+7
        shift[8 * lane + j] = uint8_t(BITS * j);  // code j of the lane's qword
      }
  }
};
template <int BITS>
inline constexpr Unpack64<BITS> kUnpack64{};

// 64 codes of the block at p as bytes in order. Reads 32 bytes (BITS <= 4) or 64 bytes from p, past the block
// (the caller keeps that inside the matrix). Plain loads: masked byte loads cost several times more on Zen 4.
template <int BITS>
inline __m512i unpack64(const uint8_t* p) {
  if constexpr (BITS == 8) {
    return _mm512_loadu_si512(p);
  } else {
    const __m512i raw = BITS <= 4
                            ? _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)))
                            : _mm512_loadu_si512(p);
    const Unpack64<BITS>& k = kUnpack64<BITS>;
    const __m512i v = _mm512_permutexvar_epi8(_mm512_load_si512(k.perm), raw);
    return _mm512_and_si512(_mm512_multishift_epi64_epi8(_mm512_load_si512(k.shift), v),
                            _mm512_set1_epi8(char((1 << BITS) - 1)));
  }
}

// Rows 0-3 (`a`) and 4-7 (`b`) of p[8]: 128-bit lane k of a holds the sums of lanes 4k..4k+3 of p[0], p[1],
// p[2], p[3] (all adds on int32 lanes: exact).
inline void reduce8x16(const __m512i p[8], __m512i& a, __m512i& b) {
  __m512i q[4];
  for (int i = 0; i < 4; ++i)
    q[i] = _mm512_add_epi32(_mm512_unpacklo_epi32(p[2 * i], p[2 * i + 1]),
                            _mm512_unpackhi_epi32(p[2 * i], p[2 * i + 1]));
  a = _mm512_add_epi32(_mm512_unpacklo_epi64(q[0], q[1]), _mm512_unpackhi_epi64(q[0], q[1]));
  b = _mm512_add_epi32(_mm512_unpacklo_epi64(q[2], q[3]), _mm512_unpackhi_epi64(q[2], q[3]));
}

// 8 x 8 f32 transpose: out[j] lane i = in[i] lane j.
inline void transpose8x8(__m256 r[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int h = 0; h < 2; ++h) {
    const __m256* tt = t + 4 * h;
    u[4 * h + 0] = _mm256_shuffle_ps(tt[0], tt[2], 0x44);
    u[4 * h + 1] = _mm256_shuffle_ps(tt[0], tt[2], 0xEE);
    u[4 * h + 2] = _mm256_shuffle_ps(tt[1], tt[3], 0x44);
    u[4 * h + 3] = _mm256_shuffle_ps(tt[1], tt[3], 0xEE);
  }
  for (int j = 0; j < 4; ++j) {
    r[j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x20);
    r[j + 4] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x31);
  }
}

// Word permutations that transpose 8 rows x 8 groups of 16-bit values held as z0 = rows 0-3, z1 = rows 4-7
// (8 words per row): kT16[h] word 8j + i = row i, group 4h + j.
struct Transpose16 {
  alignas(64) uint16_t idx[2][32] = {};
  constexpr Transpose16() {
    for (int h = 0; h < 2; ++h)
      for (int j = 0; j < 4; ++j)
        for (int i = 0; i < 8; ++i) idx[h][8 * j + i] = uint16_t((i < 4 ? 0 : 32) + 8 * (i % 4) + 4 * h + j);
  }
};
inline constexpr Transpose16 kT16{};

// 16 f32 values from 16 bf16 or f16 ones.
inline __m512 half16_to_f32(__m256i h, DType dt) {
  if (dt == DType::F16) return _mm512_cvtph_ps(h);  // exact, as f16_to_f32
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

// Scales or biases of rows [r, r + nr) (the last repeated up to 8) as f32, transposed: dst[g * 8 + i]
// (gathering each group's 8 values in place instead was about 1.8x slower for 2-bit weights on Zen 4).
// 16-bit values: 8 groups of 8 rows per step, transposed as words (two vpermt2w) before the conversion.
void load_sb(const void* src, DType dt, int64_t groups, int64_t r, int nr, float* dst) {
  int64_t g0 = 0;
  const uint8_t* row[8];
  const size_t esz = dtype_size(dt);
  for (int i = 0; i < 8; ++i)
    row[i] = static_cast<const uint8_t*>(src) + size_t((r + std::min(i, nr - 1)) * groups) * esz;
  if (dt == DType::BF16 || dt == DType::F16) {
    const __m512i i0 = _mm512_load_si512(kT16.idx[0]), i1 = _mm512_load_si512(kT16.idx[1]);
    for (; g0 < groups; g0 += 8) {
      // A tail of fewer than 8 groups (576 / 32 = 18 on SmolLM2) takes masked loads and stores: no reads past
      // a row's end, no writes past dst's [groups, 8] (the scalar tail it replaces was 10% of decode there).
      const int n = int(std::min<int64_t>(8, groups - g0));
      const __mmask8 lm = __mmask8((1u << n) - 1);
      auto ld = [&](int i) { return _mm_maskz_loadu_epi16(lm, row[i] + g0 * 2); };
      __m512i z0 = _mm512_castsi128_si512(ld(0)), z1 = _mm512_castsi128_si512(ld(4));
      z0 = _mm512_inserti32x4(_mm512_inserti32x4(_mm512_inserti32x4(z0, ld(1), 1), ld(2), 2), ld(3), 3);
      z1 = _mm512_inserti32x4(_mm512_inserti32x4(_mm512_inserti32x4(z1, ld(5), 1), ld(6), 2), ld(7), 3);
      const __m512i w0 = _mm512_permutex2var_epi16(z0, i0, z1), w1 = _mm512_permutex2var_epi16(z0, i1, z1);
      float* d = dst + g0 * 8;
      const __m512 f[4] = {
          half16_to_f32(_mm512_castsi512_si256(w0), dt), half16_to_f32(_mm512_extracti64x4_epi64(w0, 1), dt),
          half16_to_f32(_mm512_castsi512_si256(w1), dt), half16_to_f32(_mm512_extracti64x4_epi64(w1, 1), dt)};
      for (int q = 0; q < 4; ++q) {  // f[q]: groups g0 + 2q, g0 + 2q + 1 (8 rows each)
        const int left = std::clamp(n - 2 * q, 0, 2);
        if (left == 2)
          _mm512_storeu_ps(d + 16 * q, f[q]);
        else if (left == 1)
          _mm512_mask_storeu_ps(d + 16 * q, __mmask16(0x00FF), f[q]);
      }
    }
  } else if (dt == DType::F32) {
    for (; g0 + 8 <= groups; g0 += 8) {
      __m256 v[8];
      for (int i = 0; i < 8; ++i) v[i] = _mm256_loadu_ps(reinterpret_cast<const float*>(row[i] + g0 * 4));
      transpose8x8(v);
      for (int j = 0; j < 8; ++j) _mm256_storeu_ps(dst + (g0 + j) * 8, v[j]);
    }
  }
  for (int i = 0; i < 8; ++i)
    for (int64_t g = g0; g < groups; ++g) dst[g * 8 + i] = load_as_f32(row[i], dt, size_t(g));
}

// a + float(isum) * d, the reference's step for one 16-block.
inline __m256 acc_block(__m256 a, __m256i isum, float d) {
  return _mm256_add_ps(a,
                       _mm256_mul_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(d)));  // exact: |isum| < 2^24
}

// The sum of the int8 images of the group's blocks, in block order (qacts_group_sum).
inline float group_sum(const QActs& a, int64_t t, int64_t b0, int64_t nb) {
  const float* s = a.s.data() + t * a.blocks() + b0;
  float xs = 0.0f;
  for (int64_t i = 0; i < nb; ++i) xs = xs + s[i];
  return xs;
}

// y [NT tokens, out] for rows [r, r + nr): the 8 rows at cp[0..7] (the last repeated), NT = xa.T <= 2.
template <int BITS, int NT>
void tile8(const uint8_t* const cp[8], const uint8_t* next, const float* sc, const float* bi, __m256 lb,
           int64_t gs, const QActs& xa, float* y, int64_t out, int64_t r, int nr) {
  const int64_t in = xa.in, nb = xa.blocks(), per_group = gs / kQ8Block;
  const __m512i perm_lo = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11);
  const __m512i perm_hi = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
  __m256 yv[NT], a[NT];
  for (int k = 0; k < NT; ++k) yv[k] = _mm256_setzero_ps(), a[k] = _mm256_setzero_ps();
  for (int64_t e = 0; e < in; e += 64) {
    const int n = int(std::min<int64_t>(64, in - e));  // 64, or a 32-code tail (its lanes 8-15 are not used)
    __m512i c[8];
    // The next tile's 8 rows are one contiguous block: prefetch 64 * BITS bytes of it per step (its rows are
    // too short for the hardware prefetcher to pick up the 8 streams in time: 8-bit decode 14 -> 28 GB/s on
    // one Zen 4 core, bench/kernel_bench.cpp).
    if (next)
      for (int l = 0; l < BITS; ++l)
        _mm_prefetch(reinterpret_cast<const char*>(next + e * BITS + 64 * l), _MM_HINT_T0);
    for (int i = 0; i < 8; ++i) c[i] = unpack64<BITS>(cp[i] + e * BITS / 8);
    __m256i blk[NT][4];  // [token][16-block of this step]: 8 rows' exact sums
    for (int k = 0; k < NT; ++k) {
      const int8_t* xp = xa.q.data() + k * in + e;
      const __m512i xq =
          n == 64 ? _mm512_loadu_si512(xp)
                  : _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xp)));
      __m512i p[8], ra, rb;
      for (int i = 0; i < 8; ++i) p[i] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), c[i], xq);
      reduce8x16(p, ra, rb);
      const __m512i lo = _mm512_permutex2var_epi64(ra, perm_lo, rb);  // blocks 0, 1: rows 0-3 | rows 4-7
      const __m512i hi = _mm512_permutex2var_epi64(ra, perm_hi, rb);  // blocks 2, 3
      blk[k][0] = _mm512_castsi512_si256(lo);
      blk[k][1] = _mm512_extracti64x4_epi64(lo, 1);
      blk[k][2] = _mm512_castsi512_si256(hi);
      blk[k][3] = _mm512_extracti64x4_epi64(hi, 1);
    }
    for (int b = 0; b < n / kQ8Block; ++b) {
      const int64_t kb = e / kQ8Block + b;  // activation block
      for (int k = 0; k < NT; ++k) a[k] = acc_block(a[k], blk[k][b], xa.d[size_t(k * nb + kb)]);
      if ((kb + 1) % per_group == 0) {  // the group ends: y += scale * a + bias * xs
        const int64_t g = kb / per_group;
        const __m256 s = _mm256_loadu_ps(sc + g * 8), bb = _mm256_loadu_ps(bi + g * 8);
        for (int k = 0; k < NT; ++k) {
          const __m256 xs = _mm256_set1_ps(group_sum(xa, k, g * per_group, per_group));
          yv[k] = _mm256_add_ps(yv[k], _mm256_add_ps(_mm256_mul_ps(s, a[k]), _mm256_mul_ps(bb, xs)));
          a[k] = _mm256_setzero_ps();
        }
      }
    }
  }
  const __mmask8 keep = __mmask8((1u << nr) - 1);
  for (int k = 0; k < NT; ++k) _mm256_mask_storeu_ps(y + k * out + r, keep, _mm256_add_ps(yv[k], lb));
}

template <int BITS>
void gemv_qN_q8_f32_vbmi(const Linear& w, const QActs& xa, float* y, int64_t r0, int64_t r1, float* scratch) {
  const int64_t groups = w.in / w.group_size;
  float* sc = scratch;                                          // [groups, 8]
  float* bi = sc + groups * 8;                                  // [groups, 8]
  uint8_t* last = reinterpret_cast<uint8_t*>(bi + groups * 8);  // [in * BITS / 8 + 64]: the last row
  {  // the first tile is cold (threads take chunks of tiles in turn): ask for all of it at once
    const auto* first = reinterpret_cast<const char*>(w.wq) + r0 * (w.in * BITS / 8);
    const int64_t bytes = std::min<int64_t>(8, r1 - r0) * (w.in * BITS / 8);
    for (int64_t o = 0; o < bytes; o += 64) _mm_prefetch(first + o, _MM_HINT_T0);
  }
  for (int64_t r = r0; r < r1; r += 8) {
    const int nr = int(std::min<int64_t>(8, r1 - r));
    const uint8_t* cp[8];
    alignas(32) float lbias[8];
    qlinear_tile_rows(w, r, nr, last, cp, lbias);
    const __m256 lb = _mm256_load_ps(lbias);
    load_sb(w.scales, w.sdtype, groups, r, nr, sc);
    load_sb(w.biases, w.sdtype, groups, r, nr, bi);
    const bool more = r + 16 <= w.out;  // a whole next tile (its rows all inside the matrix)
    const uint8_t* next =
        more ? reinterpret_cast<const uint8_t*>(w.wq) + (r + 8) * (w.in * BITS / 8) : nullptr;
    if (more) {  // and the next tile's scales and biases
      const size_t esz = dtype_size(w.sdtype), sb_bytes = size_t(8 * groups) * esz;
      const auto* s = static_cast<const char*>(w.scales) + size_t((r + 8) * groups) * esz;
      const auto* b = static_cast<const char*>(w.biases) + size_t((r + 8) * groups) * esz;
      for (size_t o = 0; o < sb_bytes; o += 64)
        _mm_prefetch(s + o, _MM_HINT_T0), _mm_prefetch(b + o, _MM_HINT_T0);
    }
    if (xa.T == 1)
      tile8<BITS, 1>(cp, next, sc, bi, lb, w.group_size, xa, y, w.out, r, nr);
    else
      tile8<BITS, 2>(cp, next, sc, bi, lb, w.group_size, xa, y, w.out, r, nr);
  }
}

void rows(const Linear& w, const QActs& xa, float* y, int64_t r0, int64_t r1, float* scratch) {
  if (xa.T > kQ8PermutedMaxT) return qisa_avx512vnni::kernels.rows(w, xa, y, r0, r1, scratch);
  with_mlx_bits(w.bits, [&](auto b) { gemv_qN_q8_f32_vbmi<decltype(b)::value>(w, xa, y, r0, r1, scratch); });
}

void quantize(const float* x, int64_t t0, int64_t t1, QActs& out) {
  qisa_avx512vnni::kernels.quantize(x, t0, t1, out);
}

}  // namespace

const QLinearKernels kernels = {"avx512vbmi", rows, quantize, qisa_packed512::rows};

}  // namespace tqlm::qisa_avx512vbmi
