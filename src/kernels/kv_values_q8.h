// Integer value accumulate over stored 2- and 4-bit TurboQuant value codes, read in place (included by
// kv_impl.h inside namespace kv after kv_scores_q8.h, whose vq helpers it uses; and by
// kv_scores_q8_vnni.cpp). The numbers are kv_accumulate_q8_ref's (kv_kernels.h): per row, the weights
// p x scale quantized to 16 bits against the row's largest, centroids on the codebook's 7-bit grid (s7 = u7
// - 64 in [-63, 63]), exact int32 sums, one fma per coordinate into the output. The 16-bit weights go as two
// u8 planes (high and low byte), each with its own dot products and accumulators, joined as hi x 256 + lo.
// (8-bit weights, one plane, were tried first: 1.5x faster, but every weight below 1/510 of the page's
// largest rounds to 0 and outputs moved by ~0.6% of their size in the unit test; 16 bits: 0.02%.)
//
// Layout. Tokens go in groups of 4. For each 64-coordinate block, the 4 tokens' code bytes are transposed
// (byte unpacks) so that 32-bit lane i holds byte i of each of the 4 tokens; a byte holds 4 codes (2 bits)
// or 2 (4 bits), so masking out one code position per byte ("plane") and looking the codes up in the s7
// table with a byte shuffle gives vectors whose lane holds one coordinate of the 4 tokens. The group's
// weights, 4 bytes of one plane per row, are broadcast as one 32-bit lane, and one u8 x s8 dot product per
// vector and plane (vpdpbusd, or vpmaddubsw + vpmaddwd: |pair| <= 2 x 255 x 63 < 2^15, no saturation) adds
// the 4 tokens' products of 16 (8) coordinates. The value tile is built once per call and serves every row;
// the accumulators hold coordinates in plane order, put back in coordinate order when a row is finished (a
// lane permute on AVX-512, a table on AVX2).

#if TQLM_VB >= 32

// GCC 12 reports its own AVX-512 intrinsics' undefined-vector idiom (_mm512_broadcast_i32x4) as
// uninitialized in unoptimized builds (a false positive).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

constexpr int kVLanes = TQLM_VB / 4;      // 32-bit lanes: coordinates per value vector
constexpr int kVPerBlock = 64 / kVLanes;  // value vectors per 64 coordinates of 4 tokens
constexpr int64_t kVMaxTokens = 512;      // n limit: 65535 x 63 x n stays below 2^31
constexpr int64_t kVMaxBlocks = 8;        // dim <= 512
// Accumulator registers per pass: of 32 (AVX-512), 16 (24 made GCC spill and copy registers: 4.3 instead of
// 3.2 ns per query, key and kv head); of 16 (AVX2), 8.
constexpr int kVAccBudget = TQLM_VB == 64 ? 16 : 8;
constexpr int kVChunk = 4;  // value vectors per accumulation pass (AVX-512: one 64-block; AVX2: half of one)
constexpr int kVRows = std::max(1, kVAccBudget / (2 * kVChunk));  // rows per pass: 2 planes x kVChunk each

#if TQLM_VB == 64
inline vq q_set8(char v) {
  return _mm512_set1_epi8(v);
}
inline vq q_set32(int32_t v) {
  return _mm512_set1_epi32(v);
}
inline vq v_srl16(vq a, int n) {  // count in a register: valid in unoptimized builds too
  return _mm512_srl_epi16(a, _mm_cvtsi32_si128(n));
}
inline vq q_shl32_8(vq a) {
  return _mm512_sll_epi32(a, _mm_cvtsi32_si128(8));
}
#else
inline vq q_set8(char v) {
  return _mm256_set1_epi8(v);
}
inline vq q_set32(int32_t v) {
  return _mm256_set1_epi32(v);
}
inline vq v_srl16(vq a, int n) {
  return _mm256_srl_epi16(a, _mm_cvtsi32_si128(n));
}
inline vq q_shl32_8(vq a) {
  return _mm256_sll_epi32(a, _mm_cvtsi32_si128(8));
}
#endif

// Coordinate (within its 64-block) of lane l of value vector v of a block, for `bits`-bit codes: lane l of
// transposed vector y holds byte i = y * kVLanes + l of each token; plane c of it is code c of that byte.
inline int v_coord(int bits, int v, int l) {
  const int planes = 8 / bits, y = v / planes, c = v % planes, i = y * kVLanes + l;
  return i * planes + c;
}

// The 4 tokens' bytes [16h, 16h + 16) of one block, transposed: t[k] (k < 4) 32-bit lane i = byte 16h + 4k
// + i of tokens 0..3.
inline void v_transpose16(const uint8_t* const* tok, int64_t off, __m128i* t) {
  const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(tok[0] + off));
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(tok[1] + off));
  const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(tok[2] + off));
  const __m128i d = _mm_loadu_si128(reinterpret_cast<const __m128i*>(tok[3] + off));
  const __m128i ab0 = _mm_unpacklo_epi8(a, b), ab1 = _mm_unpackhi_epi8(a, b);
  const __m128i cd0 = _mm_unpacklo_epi8(c, d), cd1 = _mm_unpackhi_epi8(c, d);
  t[0] = _mm_unpacklo_epi16(ab0, cd0);
  t[1] = _mm_unpackhi_epi16(ab0, cd0);
  t[2] = _mm_unpacklo_epi16(ab1, cd1);
  t[3] = _mm_unpackhi_epi16(ab1, cd1);
}

// One block's kVPerBlock value vectors of a group of 4 tokens (rows at tok[k] + 8 x bits x b).
template <int BITS>
inline void v_block(const uint8_t* const* tok, int64_t b, vq table, vq* out) {
  constexpr int bytes = 8 * BITS, planes = 8 / BITS;
  __m128i t[8];
  for (int h = 0; h < bytes / 16; ++h) v_transpose16(tok, b * bytes + 16 * h, t + 4 * h);
  constexpr int units = kVLanes / 4;  // 128-bit units per vector
  const vq mask = q_set8(char((1 << BITS) - 1));
  for (int y = 0; y < bytes / (4 * units); ++y) {
#if TQLM_VB == 64
    vq x = _mm512_castsi128_si512(t[4 * y]);
    x = _mm512_inserti32x4(x, t[4 * y + 1], 1);
    x = _mm512_inserti32x4(x, t[4 * y + 2], 2);
    x = _mm512_inserti32x4(x, t[4 * y + 3], 3);
#else
    const vq x = _mm256_set_m128i(t[2 * y + 1], t[2 * y]);
#endif
    for (int c = 0; c < planes; ++c)
      out[y * planes + c] = q_shuffle(table, q_and(v_srl16(x, BITS * c), mask));
  }
}

// Adds the int32 sums of one pass (acc[c], c < kVChunk: value vectors v0 + c, v0 a multiple of kVChunk) to
// the row's output o [dim]: o[j] = fma(factor, float(acc), o[j]) in coordinate order.
template <int BITS>
inline void v_finish(const vq* acc, int64_t v0, float factor, float* o) {
  o += v0 / kVPerBlock * 64;
#if TQLM_VB == 64
  // out vector k lane m = coordinate 16k + m: from acc[v] lane l with v_coord(v, l) = 16k + m; every
  // 64-block's 4 vectors pair up as (0, 1) and (2, 3), so two 2-source permutes and one blend per output.
  struct Tables {
    __m512i ia[4], ib[4];
    __mmask16 hi[4];
    Tables() {
      for (int k = 0; k < 4; ++k) {
        alignas(64) int32_t a[16] = {}, b[16] = {};
        int hm = 0;
        for (int v = 0; v < 4; ++v)
          for (int l = 0; l < 16; ++l) {
            const int j = v_coord(BITS, v, l);
            if (j / 16 != k) continue;
            const int m = j % 16, sel = l + 16 * (v % 2);
            if (v < 2) {
              a[m] = sel;
            } else {
              b[m] = sel;
              hm |= 1 << m;
            }
          }
        ia[k] = _mm512_load_si512(a);
        ib[k] = _mm512_load_si512(b);
        hi[k] = __mmask16(hm);
      }
    }
  };
  static const Tables tb;
  const __m512 f = _mm512_set1_ps(factor);
  for (int k = 0; k < 4; ++k) {
    const __m512i x = _mm512_mask_blend_epi32(tb.hi[k], _mm512_permutex2var_epi32(acc[0], tb.ia[k], acc[1]),
                                              _mm512_permutex2var_epi32(acc[2], tb.ib[k], acc[3]));
    _mm512_storeu_ps(o + 16 * k, _mm512_fmadd_ps(f, _mm512_cvtepi32_ps(x), _mm512_loadu_ps(o + 16 * k)));
  }
#else
  alignas(32) int32_t a[kVChunk][kVLanes];
  for (int c = 0; c < kVChunk; ++c) std::memcpy(a[c], &acc[c], sizeof(vq));
  const int vb = int(v0 % kVPerBlock);
  for (int c = 0; c < kVChunk; ++c)
    for (int l = 0; l < kVLanes; ++l) {
      float& y = o[v_coord(BITS, vb + c, l)];
      y = std::fma(factor, float(a[c][l]), y);
    }
#endif
}

// The row's weights as 16-bit integers u_t (0 past n), split into bytes: hi[t] = u_t >> 8, lo[t] = u_t &
// 255 (t < n4, a multiple of 4). Returns the factor m / 65535 x step, or 0 when the row adds nothing (no
// weight above 0, or an infinite one).
inline float v_weights(const float* p, const float* scale, int64_t n, int64_t n4, float step, uint8_t* hi,
                       uint8_t* lo) {
  float m = 0;
#if TQLM_VB == 64
  __m512 mv = _mm512_setzero_ps();
  for (int64_t t = 0; t < n; t += 16) {
    const __mmask16 k = t + 16 <= n ? __mmask16(0xFFFF) : __mmask16((1u << (n - t)) - 1);
    mv = _mm512_max_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, p + t), _mm512_maskz_loadu_ps(k, scale + t)),
                       mv);
  }
  m = _mm512_reduce_max_ps(mv);
#else
  for (int64_t t = 0; t < n; ++t) {
    const float w = p[t] * scale[t];
    m = w > m ? w : m;
  }
#endif
  if (!(m > 0.0f) || std::isinf(m)) return 0.0f;
  const float inv = 65535.0f / m;
#if TQLM_VB == 64
  const __m512 iv = _mm512_set1_ps(inv), zero = _mm512_setzero_ps(), top = _mm512_set1_ps(65535.0f);
  const __m512i byte = _mm512_set1_epi32(255);
  for (int64_t t = 0; t < n4; t += 16) {
    const __mmask16 k = t + 16 <= n ? __mmask16(0xFFFF) : t < n ? __mmask16((1u << (n - t)) - 1) : 0;
    __m512 x = _mm512_mul_ps(
        _mm512_mul_ps(_mm512_maskz_loadu_ps(k, p + t), _mm512_maskz_loadu_ps(k, scale + t)), iv);
    x = _mm512_min_ps(_mm512_max_ps(x, zero), top);  // NaN -> 0 (max returns its second operand)
    const __m512i u = _mm512_cvtps_epi32(x);
    const __mmask16 st = t + 16 <= n4 ? __mmask16(0xFFFF) : __mmask16((1u << (n4 - t)) - 1);
    _mm512_mask_cvtepi32_storeu_epi8(hi + t, st, _mm512_srli_epi32(u, 8));
    _mm512_mask_cvtepi32_storeu_epi8(lo + t, st, _mm512_and_si512(u, byte));
  }
#else
  for (int64_t t = 0; t < n4; ++t) {
    float x = t < n ? p[t] * scale[t] * inv : 0.0f;
    x = x > 0.0f ? x : 0.0f;
    x = x < 65535.0f ? x : 65535.0f;
    const int u = int(std::nearbyint(x));
    hi[t] = uint8_t(u >> 8);
    lo[t] = uint8_t(u & 255);
  }
#endif
  return (m / 65535.0f) * step;
}

// The sums of RB rows over value vectors [v0, v0 + kVChunk) of every group: acc[r * kVChunk + c] =
// 256 x (high plane's sum) + (low plane's sum), exact in int32 (n <= kVMaxTokens).
template <int RB>
inline void v_rows(const vq* tile, int64_t groups, int64_t nv, int64_t v0, const uint8_t* const* hi,
                   const uint8_t* const* lo, vq* acc, vq ones) {
  vq ah[RB][kVChunk] = {}, al[RB][kVChunk] = {};
  for (int64_t g = 0; g < groups; ++g) {
    const vq* vg = tile + g * nv + v0;
    for (int r = 0; r < RB; ++r) {  // per row: its two broadcast weights, the group's vectors reloaded
      int32_t x, y;
      std::memcpy(&x, hi[r] + 4 * g, 4);
      std::memcpy(&y, lo[r] + 4 * g, 4);
      const vq wh = q_set32(x), wl = q_set32(y);
      for (int c = 0; c < kVChunk; ++c) {
        ah[r][c] = q_dot(ah[r][c], wh, vg[c], ones);
        al[r][c] = q_dot(al[r][c], wl, vg[c], ones);
      }
    }
  }
  for (int r = 0; r < RB; ++r)
    for (int c = 0; c < kVChunk; ++c) acc[r * kVChunk + c] = q_add32(q_shl32_8(ah[r][c]), al[r][c]);
}

template <int BITS>
void accumulate_q8_bits(const KVRowFormat& f, const uint8_t* codes, const float* p, int64_t R, int64_t ldp,
                        const float* scale, int64_t n, float* o, int64_t ldo) {
  const int64_t blocks = f.dim / 64, nv = blocks * kVPerBlock, groups = (n + 3) / 4, n4 = 4 * groups;
  static const uint8_t zero_row[8 * 8 * kVMaxBlocks] = {};  // stands in for missing tokens of the last group
  alignas(16) uint8_t s7[16] = {};
  for (int i = 0; i < (1 << BITS); ++i) s7[i] = uint8_t(int(f.lut_u7[i]) - 64);
  const vq table = q_bcast128(s7), ones = q_set16(1);
  struct Box {  // a vector type as a std::vector element (its attributes are not part of the type)
    vq v;
  };
  thread_local std::vector<Box> tbuf;      // [groups][nv] the value vectors
  thread_local std::vector<uint8_t> ubuf;  // [2][R][n4] the rows' weights: high bytes, then low bytes
  thread_local std::vector<float> fac;     // [R]
  tbuf.resize(size_t(groups * nv));
  vq* tile = reinterpret_cast<vq*>(tbuf.data());
  ubuf.resize(size_t(2 * R * n4));
  uint8_t *hi = ubuf.data(), *lo = hi + R * n4;
  fac.resize(size_t(R));
  for (int64_t g = 0; g < groups; ++g) {
    const uint8_t* tok[4];
    for (int k = 0; k < 4; ++k) tok[k] = 4 * g + k < n ? codes + (4 * g + k) * f.row_bytes : zero_row;
    for (int64_t b = 0; b < blocks; ++b) v_block<BITS>(tok, b, table, tile + g * nv + b * kVPerBlock);
  }
  for (int64_t r = 0; r < R; ++r)
    fac[size_t(r)] = v_weights(p + r * ldp, scale, n, n4, f.lut_step, hi + r * n4, lo + r * n4);
  auto pass = [&]<int RB>(int64_t r0, int64_t v0) {  // rows [r0, r0 + RB), vectors [v0, v0 + kVChunk)
    const uint8_t *h[RB], *l[RB];
    for (int r = 0; r < RB; ++r) h[r] = hi + (r0 + r) * n4, l[r] = lo + (r0 + r) * n4;
    vq acc[RB * kVChunk];
    v_rows<RB>(tile, groups, nv, v0, h, l, acc, ones);
    for (int r = 0; r < RB; ++r)
      if (fac[size_t(r0 + r)] != 0.0f)
        v_finish<BITS>(acc + r * kVChunk, v0, fac[size_t(r0 + r)], o + (r0 + r) * ldo);
  };
  for (int64_t v0 = 0; v0 < nv; v0 += kVChunk) {
    int64_t r0 = 0;
    for (; r0 + kVRows <= R; r0 += kVRows) pass.template operator()<kVRows>(r0, v0);
    for (; r0 < R; ++r0) pass.template operator()<1>(r0, v0);
  }
}

void accumulate_q8(const KVRowFormat& f, const uint8_t* codes, const float* p, int64_t R, int64_t ldp,
                   const float* scale, int64_t n, float* o, int64_t ldo) {
  if (n <= 0 || R <= 0) return;
  const bool ok = f.lut_u7 && f.dim % 64 == 0 && f.dim / 64 <= kVMaxBlocks && n <= kVMaxTokens;
  if (ok && f.bits == 2) return accumulate_q8_bits<2>(f, codes, p, R, ldp, scale, n, o, ldo);
  if (ok && f.bits == 4) return accumulate_q8_bits<4>(f, codes, p, R, ldp, scale, n, o, ldo);
  kv_accumulate_q8_ref(f, codes, p, R, ldp, scale, n, o, ldo);
}

#pragma GCC diagnostic pop

#else

void accumulate_q8(const KVRowFormat& f, const uint8_t* codes, const float* p, int64_t R, int64_t ldp,
                   const float* scale, int64_t n, float* o, int64_t ldo) {
  kv_accumulate_q8_ref(f, codes, p, R, ldp, scale, n, o, ldo);
}

#endif
