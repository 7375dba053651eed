// gemm_q{2,3,4,8}p16_q8_f32 on 256-bit vectors: the packed 16-row tiles (qlinear_pack.h) for the avx2 and
// avxvnni families (included by qlinear_impl.h inside the family's namespace; QL_DOT picks the dot product).
//
// A tile's 64-byte vector is two 32-byte halves, rows 0-7 and rows 8-15, each 8 rows x 4 code bytes. One
// pass over the tile computes one half: per 16-block, 4 code planes (shifted and masked) are multiplied with
// the token's activation bytes 4j .. 4j+3 broadcast to every lane, so lane i of the sum is row i's exact
// integer block sum, with no reduction across lanes; then each (row, token) lane runs the reference's f32
// sequence (qlinear_kernels.h) in block order, bit-identical to the scalar reference and to the 512-bit
// kernel (qlinear_packed_avx512.cpp). vpmaddubsw (avx2): 2-, 3- and 4-bit planes sum in int16 without
// saturating (4 planes x 2 x 15 x 127 < 2^15); 8-bit codes are split into nibbles, code = 16 hi + lo.
namespace packed256 {

// Prefetch as in the 512-bit kernel: the next tile at the pace of this one, into L1 when it is small.
constexpr int64_t kL1TileBytes = 8192;

// Plane j (0..3) of half h of 16-block kb of a tile's codes (layout: plane() of qlinear_packed_avx512.cpp):
// 8 rows x 4 codes as bytes.
template <int BITS>
inline __m256i plane(const uint8_t* codes, int64_t kb, int h, int j) {
  if constexpr (BITS == 3) {
    const uint8_t* p = codes + (kb / 2) * 192 + 32 * h;
    const __m256i lo = _mm256_load_si256(reinterpret_cast<const __m256i*>(p + 64 * (kb % 2)));
    const __m256i hi = _mm256_load_si256(reinterpret_cast<const __m256i*>(p + 128));
    const int b = int(4 * (kb % 2)) + j;  // the high bit's position, moved to bit 2
    const __m256i hb = b >= 2 ? _mm256_srli_epi16(hi, b - 2) : _mm256_slli_epi16(hi, 2 - b);
    return _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(lo, 2 * j), _mm256_set1_epi8(0x03)),
                           _mm256_and_si256(hb, _mm256_set1_epi8(0x04)));
  }
  const auto* q = reinterpret_cast<const __m256i*>(codes + kb * 32 * BITS + 32 * h);
  if constexpr (BITS == 8) {
    return _mm256_load_si256(q + 2 * j);
  } else if constexpr (BITS == 4) {
    const __m256i v = _mm256_load_si256(q + 2 * (j / 2));
    return _mm256_and_si256(j % 2 ? _mm256_srli_epi16(v, 4) : v, _mm256_set1_epi8(0x0F));
  } else {
    const __m256i v = _mm256_load_si256(q);
    return _mm256_and_si256(_mm256_srli_epi16(v, 2 * j), _mm256_set1_epi8(0x03));
  }
}

inline __m256i bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// Lane i: sum over j < 4 of row i's 4 codes of plane j times activation bytes 4j .. 4j+3 of xq. Exact.
template <int BITS>
inline __m256i block_sum(const __m256i pl[4], const int8_t* xq) {
#if QL_DOT == 1
  __m256i s0 = _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), pl[0], bcast4(xq));
  __m256i s1 = _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), pl[1], bcast4(xq + 4));
  s0 = _mm256_dpbusd_avx_epi32(s0, pl[2], bcast4(xq + 8));
  s1 = _mm256_dpbusd_avx_epi32(s1, pl[3], bcast4(xq + 12));
  return _mm256_add_epi32(s0, s1);
#else
  const __m256i ones = _mm256_set1_epi16(1);
  if constexpr (BITS <= 4) {
    __m256i s = _mm256_maddubs_epi16(pl[0], bcast4(xq));
    for (int j = 1; j < 4; ++j) s = _mm256_add_epi16(s, _mm256_maddubs_epi16(pl[j], bcast4(xq + 4 * j)));
    return _mm256_madd_epi16(s, ones);
  } else {
    const __m256i m = _mm256_set1_epi8(0x0F);
    __m256i lo = _mm256_setzero_si256(), hi = _mm256_setzero_si256();
    for (int j = 0; j < 4; ++j) {
      const __m256i x = bcast4(xq + 4 * j);
      lo = _mm256_add_epi16(lo, _mm256_maddubs_epi16(_mm256_and_si256(pl[j], m), x));
      hi = _mm256_add_epi16(hi, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(pl[j], 4), m), x));
    }
    return _mm256_add_epi32(_mm256_madd_epi16(lo, ones), _mm256_slli_epi32(_mm256_madd_epi16(hi, ones), 4));
  }
#endif
}

// 8 f32 values from 8 stored scales or biases.
template <DType DT>
inline __m256 load8(const uint8_t* p) {
  if constexpr (DT == DType::F32) return _mm256_loadu_ps(reinterpret_cast<const float*>(p));
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  if constexpr (DT == DType::F16) return _mm256_cvtph_ps(h);  // exact, as f16_to_f32
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

// yv[k] lane i = the reference's y for (tile row 8h + i, token t0 + k) before the Linear bias.
template <int BITS, DType DT, int NT>
void tile8h(const uint8_t* tile, int h, int64_t tile_bytes, int64_t gs, const QActs& xa, const float* xsum,
            int64_t t0, __m256 yv[NT]) {
  const int64_t in = xa.in, nb = xa.blocks(), per_group = gs / kQ8Block, groups = in / gs;
  constexpr size_t esz = DT == DType::F32 ? 4 : 2;
  const uint8_t* sc = tile + 16 * in * BITS / 8;  // [groups][16]
  const uint8_t* bi = sc + size_t(16 * groups) * esz;
  // this half's share of the next tile's lines, spread over its 16-blocks
  const int64_t lines = tile_bytes / 64, first = h * (lines / 2), mine = h ? lines - lines / 2 : lines / 2;
  const int pf_lines = int((mine + nb - 1) / nb);
  const bool l1 = tile_bytes <= kL1TileBytes;
  for (int k = 0; k < NT; ++k) yv[k] = _mm256_setzero_ps();
  for (int64_t g = 0; g < groups; ++g) {
    __m256 a[NT];
    for (int k = 0; k < NT; ++k) a[k] = _mm256_setzero_ps();
    for (int64_t kb = g * per_group; kb < (g + 1) * per_group; ++kb) {
      // past the matrix's end these are harmless hints
      const char* nx = reinterpret_cast<const char*>(tile + tile_bytes + (first + kb * pf_lines) * 64);
      if (l1)
        for (int l = 0; l < pf_lines; ++l) _mm_prefetch(nx + 64 * l, _MM_HINT_T0);
      else
        for (int l = 0; l < pf_lines; ++l) _mm_prefetch(nx + 64 * l, _MM_HINT_T1);
      __m256i pl[4];
      for (int j = 0; j < 4; ++j) pl[j] = plane<BITS>(tile, kb, h, j);
      for (int k = 0; k < NT; ++k) {
        const __m256i s = block_sum<BITS>(pl, xa.q.data() + (t0 + k) * in + kb * kQ8Block);
        a[k] = acc_block(a[k], s, xa.d[size_t((t0 + k) * nb + kb)]);
      }
    }
    const __m256 s = load8<DT>(sc + size_t(g * 16 + 8 * h) * esz);
    const __m256 b = load8<DT>(bi + size_t(g * 16 + 8 * h) * esz);
    for (int k = 0; k < NT; ++k) {
      const __m256 xs = _mm256_set1_ps(xsum[(t0 + k) * groups + g]);
      yv[k] = _mm256_add_ps(yv[k], _mm256_add_ps(_mm256_mul_ps(s, a[k]), _mm256_mul_ps(b, xs)));
    }
  }
}

// Rows [r, r + nr) of the tile (nr <= 16) for tokens [t0, t0 + NT): y = yv + Linear bias.
template <int BITS, DType DT, int NT>
void tile_store(const uint8_t* tile, const Linear& w, const QActs& xa, const float* xsum, int64_t t0,
                const float lbias[16], int nr, float* y, int64_t r) {
  for (int h = 0; h < 2 && 8 * h < nr; ++h) {
    __m256 yv[NT];
    tile8h<BITS, DT, NT>(tile, h, w.packed_tile_bytes, w.group_size, xa, xsum, t0, yv);
    const __m256 lb = _mm256_loadu_ps(lbias + 8 * h);
    const int n = std::min(8, nr - 8 * h);
    for (int k = 0; k < NT; ++k) {
      float* dst = y + (t0 + k) * w.out + r + 8 * h;
      const __m256 v = _mm256_add_ps(yv[k], lb);
      if (n == 8) {
        _mm256_storeu_ps(dst, v);
      } else {
        alignas(32) float tmp[8];
        _mm256_store_ps(tmp, v);
        std::memcpy(dst, tmp, size_t(n) * 4);
      }
    }
  }
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
    float lbias[16] = {};
    if (w.bias)
      for (int i = 0; i < nr; ++i) lbias[i] = load_as_f32(w.bias, w.bias_dtype, size_t(r + i));
    for_token_runs(xa.T, [&](auto nt, int64_t t) {
      tile_store<BITS, DT, decltype(nt)::value>(tile, w, xa, xsum, t, lbias, nr, y, r);
    });
  }
}

void packed_rows(const Linear& w, const QActs& xa, float* y, int64_t r0, int64_t r1) {
  with_packed_kind(w.bits, w.sdtype, [&](auto b, auto dt) {
    gemm_qNp16_q8_f32<decltype(b)::value, decltype(dt)::value>(w, xa, y, r0, r1);
  });
}

}  // namespace packed256
