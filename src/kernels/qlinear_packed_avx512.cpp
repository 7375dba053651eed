// gemm_q{2,3,4,8}p16_q8_f32: the integer linear kernel over the packed 16-row tiles (qlinear_pack.h) on
// 512-bit vectors, for CPUs with AVX512-BW and AVX512-VNNI (the avx512vnni and avx512vbmi families use it
// for every packed weight, any token count).
//
// Per 16-block of the activations a tile holds 4 code planes (one vector each once shifted and masked),
// plane j multiplied with the token's activation bytes 4j .. 4j+3 broadcast to every lane: lane i of the
// vpdpbusd sum is row i's exact integer block sum, with no reduction across lanes. Each (row, token) lane
// then runs the reference's f32 sequence (qlinear_kernels.h) in block order: bit-identical to the scalar
// reference and to the MLX-layout kernels. Tokens in runs of up to 4 share each unpacked plane.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12's AVX-512 headers (see avx512vbmi)
#endif
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/dtype.h"
#include "kernels/qlinear_kernels.h"

namespace tqlm::qisa_packed512 {
namespace {

// Prefetch: while a tile is multiplied, the next tile (the next packed_tile_bytes of the same stream) is
// requested at the same pace, a few lines per 16-block, so it has arrived when its turn comes; small tiles
// into L1, larger ones into L2. A fixed distance of 256-16384 bytes ahead instead left one Zen 4 core waiting
// on its loads (4-bit, group 32, 576-wide rows: 9.5 GB/s, vs 19.6-21.3 now; bench/kernel_bench.cpp).
constexpr int64_t kL1TileBytes = 8192;

// Plane j (0..3) of 16-block kb of a tile's codes: 16 rows x 4 codes as bytes. 2, 4, 8 bits: the block's
// bits / 2 vectors at 32 * bits * kb; 3 bits: per pair of blocks two vectors of low bit pairs (as 2 bits)
// and one of high bits (bit 4 (kb % 2) + j of each byte), 192 bytes.
template <int BITS>
inline __m512i plane(const uint8_t* codes, int64_t kb, int j) {
  if constexpr (BITS == 3) {
    const uint8_t* p = codes + (kb / 2) * 192;
    const __m512i lo = _mm512_load_si512(p + 64 * (kb % 2)), hi = _mm512_load_si512(p + 128);
    const int b = int(4 * (kb % 2)) + j;  // the high bit's position, moved to bit 2
    const __m512i h =
        b >= 2 ? _mm512_srli_epi16(hi, unsigned(b - 2)) : _mm512_slli_epi16(hi, unsigned(2 - b));
    return _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(lo, unsigned(2 * j)), _mm512_set1_epi8(0x03)),
                           _mm512_and_si512(h, _mm512_set1_epi8(0x04)));
  }
  const uint8_t* p = codes + kb * 32 * BITS;
  if constexpr (BITS == 8) {
    return _mm512_load_si512(p + 64 * j);
  } else if constexpr (BITS == 4) {
    const __m512i v = _mm512_load_si512(p + 64 * (j / 2));
    return _mm512_and_si512(j % 2 ? _mm512_srli_epi16(v, 4) : v, _mm512_set1_epi8(0x0F));
  } else {
    const __m512i v = _mm512_load_si512(p);
    return _mm512_and_si512(_mm512_srli_epi16(v, unsigned(2 * j)), _mm512_set1_epi8(0x03));
  }
}

// 16 f32 values from 16 stored scales or biases.
template <DType DT>
inline __m512 load16(const uint8_t* p) {
  if constexpr (DT == DType::F32) return _mm512_loadu_ps(p);
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  if constexpr (DT == DType::F16) return _mm512_cvtph_ps(h);  // exact, as f16_to_f32
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

inline int32_t load_i32(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// yv[k] lane i = the reference's y for (tile row i, token t0 + k) before the Linear bias.
template <int BITS, DType DT, int NT>
void tile16(const uint8_t* tile, int64_t tile_bytes, int64_t gs, const QActs& xa, const float* xsum,
            int64_t t0, __m512 yv[NT]) {
  const int64_t in = xa.in, nb = xa.blocks(), per_group = gs / kQ8Block, groups = in / gs;
  constexpr size_t esz = DT == DType::F32 ? 4 : 2;
  const uint8_t* sc = tile + 16 * in * BITS / 8;  // [groups][16]
  const uint8_t* bi = sc + size_t(16 * groups) * esz;
  const int pf_lines = int((tile_bytes / 64 + nb - 1) / nb);  // of the next tile, per 16-block
  const bool l1 = tile_bytes <= kL1TileBytes;
  for (int k = 0; k < NT; ++k) yv[k] = _mm512_setzero_ps();
  for (int64_t g = 0; g < groups; ++g) {
    __m512 a[NT];
    for (int k = 0; k < NT; ++k) a[k] = _mm512_setzero_ps();
    for (int64_t kb = g * per_group; kb < (g + 1) * per_group; ++kb) {
      // past the matrix's end this is a harmless hint
      // past the matrix's end these are harmless hints
      const char* nx = reinterpret_cast<const char*>(tile + tile_bytes + kb * pf_lines * 64);
      if (l1)
        for (int l = 0; l < pf_lines; ++l) _mm_prefetch(nx + 64 * l, _MM_HINT_T0);
      else
        for (int l = 0; l < pf_lines; ++l) _mm_prefetch(nx + 64 * l, _MM_HINT_T1);
      __m512i pl[4];
      for (int j = 0; j < 4; ++j) pl[j] = plane<BITS>(tile, kb, j);
      for (int k = 0; k < NT; ++k) {
        const int8_t* xq = xa.q.data() + (t0 + k) * in + kb * kQ8Block;
        // two chains of two (the integer sum is exact in any order)
        __m512i s0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), pl[0], _mm512_set1_epi32(load_i32(xq)));
        __m512i s1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), pl[1], _mm512_set1_epi32(load_i32(xq + 4)));
        s0 = _mm512_dpbusd_epi32(s0, pl[2], _mm512_set1_epi32(load_i32(xq + 8)));
        s1 = _mm512_dpbusd_epi32(s1, pl[3], _mm512_set1_epi32(load_i32(xq + 12)));
        const __m512i s = _mm512_add_epi32(s0, s1);
        const __m512 d = _mm512_set1_ps(xa.d[size_t((t0 + k) * nb + kb)]);
        a[k] = _mm512_add_ps(a[k], _mm512_mul_ps(_mm512_cvtepi32_ps(s), d));  // exact: |isum| < 2^24
      }
    }
    const __m512 s = load16<DT>(sc + size_t(g * 16) * esz), b = load16<DT>(bi + size_t(g * 16) * esz);
    for (int k = 0; k < NT; ++k) {
      const __m512 xs = _mm512_set1_ps(xsum[(t0 + k) * groups + g]);
      yv[k] = _mm512_add_ps(yv[k], _mm512_add_ps(_mm512_mul_ps(s, a[k]), _mm512_mul_ps(b, xs)));
    }
  }
}

template <int BITS, DType DT, int NT>
void tile_store(const uint8_t* tile, const Linear& w, const QActs& xa, const float* xsum, int64_t t0,
                __m512 lb, __mmask16 keep, float* y, int64_t r) {
  __m512 yv[NT];
  tile16<BITS, DT, NT>(tile, w.packed_tile_bytes, w.group_size, xa, xsum, t0, yv);
  for (int k = 0; k < NT; ++k)
    _mm512_mask_storeu_ps(y + (t0 + k) * w.out + r, keep, _mm512_add_ps(yv[k], lb));
}

template <int BITS, DType DT>
void gemm_qNp16_q8_f32(const Linear& w, const QActs& xa, float* y, int64_t r0, int64_t r1) {
  thread_local std::vector<float> xs_store;
  qacts_group_sums(xa, w.group_size, xs_store);
  const float* xsum = xs_store.data();  // [T, groups]
  {  // the first tile has nothing before it to prefetch it: ask for all of it now
    const auto* first = reinterpret_cast<const char*>(w.packed + (r0 / 16) * w.packed_tile_bytes);
    for (int64_t o = 0; o < w.packed_tile_bytes; o += 64) _mm_prefetch(first + o, _MM_HINT_T0);
  }
  for (int64_t r = r0; r < r1; r += 16) {
    const int nr = int(std::min<int64_t>(16, r1 - r));
    const uint8_t* tile = w.packed + (r / 16) * w.packed_tile_bytes;
    alignas(64) float lbias[16] = {};
    if (w.bias)
      for (int i = 0; i < nr; ++i) lbias[i] = load_as_f32(w.bias, w.bias_dtype, size_t(r + i));
    const __m512 lb = _mm512_load_ps(lbias);
    const __mmask16 keep = __mmask16((1u << nr) - 1);
    for_token_runs(xa.T, [&](auto nt, int64_t t) {
      tile_store<BITS, DT, decltype(nt)::value>(tile, w, xa, xsum, t, lb, keep, y, r);
    });
  }
}

}  // namespace

void rows(const Linear& w, const QActs& xa, float* y, int64_t r0, int64_t r1) {
  with_packed_kind(w.bits, w.sdtype, [&](auto b, auto dt) {
    gemm_qNp16_q8_f32<decltype(b)::value, decltype(dt)::value>(w, xa, y, r0, r1);
  });
}

}  // namespace tqlm::qisa_packed512
