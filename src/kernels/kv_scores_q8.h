// Integer scores over 4-bit TurboQuant key codes, read in place (included by kv_impl.h inside namespace kv).
//
// Per 64 coordinates of a key: its 32 code bytes become 64 index bytes in coordinate order (zero-extend to
// words, then low nibble -> even byte, high nibble -> odd byte), a byte shuffle looks the indices up in the
// 7-bit centroid table (u = 64 + c in [1, 127]), and u8 x s8 multiply-adds with the int8 query give exact
// int32 sums (pairs of products stay below 2 * 127 * 127 < 2^15, so vpmaddubsw never saturates). A group of
// K = W / 4 keys (one per 128-bit lane) is transposed so that lane k of chunk vector c holds coordinates
// [16c, 16c + 16) of key k (with AVX-512 VNNI, kv_scores_q8_vnni.cpp, one vpdpbusd replaces the
// vpmaddubsw + vpmaddwd + vpaddd); each query row's 16-byte chunk c is broadcast to every lane, so a row's
// four chunk products add up lane-wise into one vector holding, per lane, four partial sums of one key. Four
// rows are then reduced together (two unpack-and-add steps leave, per lane, the four rows' sums for that
// key). That is the path for a few rows (decode: one kv head's query heads). For more than 4 rows (prefill)
// the looked-up keys are instead transposed once to key-major vectors (q_keys_t: 32-bit lane k = 4
// coordinates of key k), and each row needs one dot product per 4 coordinates of 16 (8) keys with its 4
// query bytes broadcast and no reduction (q_scores_t). Both give the reference's integers, so the same bits.
//
// Without AVX2 the scalar reference runs (same integers, so the same scores).

#if TQLM_VB >= 32

// GCC 12 reports its own AVX-512 intrinsics' undefined-vector idiom as maybe-uninitialized (a false
// positive).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#if TQLM_VB == 64
typedef __m512i vq;
inline vq q_zext_u8_u16(const uint8_t* p) {
  return _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
inline vq q_bcast128(const void* p) {
  return _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline vq q_shuffle(vq t, vq i) {
  return _mm512_shuffle_epi8(t, i);
}
inline vq q_maddubs(vq u, vq s) {
  return _mm512_maddubs_epi16(u, s);
}
inline vq q_madd16(vq a, vq b) {
  return _mm512_madd_epi16(a, b);
}
inline vq q_add32(vq a, vq b) {
  return _mm512_add_epi32(a, b);
}
inline vq q_set16(int16_t v) {
  return _mm512_set1_epi16(v);
}
inline vq q_and(vq a, vq b) {
  return _mm512_and_si512(a, b);
}
inline vq q_or(vq a, vq b) {
  return _mm512_or_si512(a, b);
}
inline vq q_shl16_4(vq a) {  // immediate count: unoptimized builds expand the intrinsic as a macro
  return _mm512_slli_epi16(a, 4);
}
inline vq q_unpacklo32(vq a, vq b) {
  return _mm512_unpacklo_epi32(a, b);
}
inline vq q_unpackhi32(vq a, vq b) {
  return _mm512_unpackhi_epi32(a, b);
}
inline vq q_unpacklo64(vq a, vq b) {
  return _mm512_unpacklo_epi64(a, b);
}
inline vq q_unpackhi64(vq a, vq b) {
  return _mm512_unpackhi_epi64(a, b);
}
constexpr int kQKeys = 4;  // keys per group: one per 128-bit lane
// u[k] holds key k's 64 looked-up bytes (lane c = coordinates [16c, 16c + 16)); out[c] = chunk c of every
// key.
inline void q_transpose(const vq* u, vq* out) {
  const vq a = _mm512_shuffle_i64x2(u[0], u[1], 0x44), b = _mm512_shuffle_i64x2(u[0], u[1], 0xEE);
  const vq c = _mm512_shuffle_i64x2(u[2], u[3], 0x44), d = _mm512_shuffle_i64x2(u[2], u[3], 0xEE);
  out[0] = _mm512_shuffle_i64x2(a, c, 0x88);
  out[1] = _mm512_shuffle_i64x2(a, c, 0xDD);
  out[2] = _mm512_shuffle_i64x2(b, d, 0x88);
  out[3] = _mm512_shuffle_i64x2(b, d, 0xDD);
}
#else
typedef __m256i vq;
inline vq q_bcast128(const void* p) {
  return _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline vq q_shuffle(vq t, vq i) {
  return _mm256_shuffle_epi8(t, i);
}
inline vq q_maddubs(vq u, vq s) {
  return _mm256_maddubs_epi16(u, s);
}
inline vq q_madd16(vq a, vq b) {
  return _mm256_madd_epi16(a, b);
}
inline vq q_add32(vq a, vq b) {
  return _mm256_add_epi32(a, b);
}
inline vq q_set16(int16_t v) {
  return _mm256_set1_epi16(v);
}
inline vq q_and(vq a, vq b) {
  return _mm256_and_si256(a, b);
}
inline vq q_or(vq a, vq b) {
  return _mm256_or_si256(a, b);
}
inline vq q_shl16_4(vq a) {
  return _mm256_slli_epi16(a, 4);
}
inline vq q_unpacklo32(vq a, vq b) {
  return _mm256_unpacklo_epi32(a, b);
}
inline vq q_unpackhi32(vq a, vq b) {
  return _mm256_unpackhi_epi32(a, b);
}
inline vq q_unpacklo64(vq a, vq b) {
  return _mm256_unpacklo_epi64(a, b);
}
inline vq q_unpackhi64(vq a, vq b) {
  return _mm256_unpackhi_epi64(a, b);
}
constexpr int kQKeys = 2;
#endif

// out[4k + r] = scale[k] * mul[r] * float(sums[4k + r] - 64 * qsum[r]) for k < nk, r < nr (other lanes: any).
inline void q_finish(vq sums, const float* scale, int nk, const float* mul, const int32_t* qsum, int nr,
                     float* out) {
  float sc4[4] = {}, mul4[4] = {};
  int32_t q64[4] = {};
  for (int k = 0; k < nk; ++k) sc4[k] = scale[k];
  for (int r = 0; r < nr; ++r) mul4[r] = mul[r], q64[r] = 64 * qsum[r];
#if TQLM_VB == 64
  const __m512 sp = _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3),
                                          _mm512_castps128_ps512(_mm_loadu_ps(sc4)));
  const __m512 mp = _mm512_broadcast_f32x4(_mm_loadu_ps(mul4));
  const vq qp = q_bcast128(q64);
  _mm512_storeu_ps(out, _mm512_mul_ps(_mm512_mul_ps(sp, mp), _mm512_cvtepi32_ps(_mm512_sub_epi32(sums, qp))));
#else
  const __m256 sp = _mm256_setr_ps(sc4[0], sc4[0], sc4[0], sc4[0], sc4[1], sc4[1], sc4[1], sc4[1]);
  const __m256 mp = _mm256_broadcast_ps(reinterpret_cast<const __m128*>(mul4));
  const vq qp = q_bcast128(q64);
  _mm256_storeu_ps(out, _mm256_mul_ps(_mm256_mul_ps(sp, mp), _mm256_cvtepi32_ps(_mm256_sub_epi32(sums, qp))));
#endif
}

// acc + the sums of 4 adjacent u8 x s8 products per 32-bit lane (exact).
inline vq q_dot(vq acc, vq u, vq q, vq ones16) {
#if TQLM_VB == 64 && defined(__AVX512VNNI__)
  (void)ones16;
  return _mm512_dpbusd_epi32(acc, u, q);
#else
  return q_add32(acc, q_madd16(q_maddubs(u, q), ones16));
#endif
}

// The 64 index bytes (coordinate order) of one 64-coordinate block: bytes b[0..32) -> W/4 vectors of words.
// idx = (w | w << 4) & 0x0F0F: the low byte keeps the low nibble, the high byte receives the high nibble.
inline vq q_indices(vq w) {
  return q_and(q_or(w, q_shl16_4(w)), q_set16(0x0F0F));
}

// Looked-up bytes of one key's coordinates [64 b + h VB, 64 b + (h + 1) VB), VB = the vector's bytes (h = 0
// with 512 bits; 0 or 1 with 256).
inline vq q_lookup(const uint8_t* key, int64_t b, int h, vq table) {
#if TQLM_VB == 64
  (void)h;
  return q_shuffle(table, q_indices(q_zext_u8_u16(key + 32 * b)));
#else
  const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(key + 32 * b + 16 * h));
  return q_shuffle(table, q_indices(_mm256_cvtepu8_epi16(c)));
#endif
}

// Looked-up bytes of 64 coordinates [64 b, 64 b + 64) of each key of a group, transposed into chunk vectors:
// ch[c] (c < 4) lane k = key k's coordinates [64 b + 16 c, 64 b + 16 c + 16).
inline void q_key_chunks(const uint8_t* const* keys, int64_t b, vq table, vq* ch) {
#if TQLM_VB == 64
  vq u[4];
  for (int k = 0; k < 4; ++k) u[k] = q_lookup(keys[k], b, 0, table);
  q_transpose(u, ch);
#else
  vq u[2][2];  // [key][half]: half h = coordinates [32 h, 32 h + 32) (two 16-byte lanes)
  for (int k = 0; k < 2; ++k)
    for (int h = 0; h < 2; ++h) u[k][h] = q_lookup(keys[k], b, h, table);
  for (int h = 0; h < 2; ++h) {
    ch[2 * h] = _mm256_permute2x128_si256(u[0][h], u[1][h], 0x20);
    ch[2 * h + 1] = _mm256_permute2x128_si256(u[0][h], u[1][h], 0x31);
  }
#endif
}

// Key-major layout for many rows (prefill): kt[16 b + d] lane k = looked-up bytes [64 b + 4 d, 64 b + 4 d +
// 4) of key k, for kTK keys (one per 32-bit lane; missing keys: zero rows). Each vector of kTK keys'
// looked-up bytes (a 64-coordinate block, or half of one in 256 bits) is transposed as a matrix of dwords:
// unpacks of dwords and qwords inside 128-bit lanes (t1[4i + m] lane L: dword 4L + m of keys 4i .. 4i + 3),
// then the 128-bit lanes of the groups of 4 keys are put side by side.
constexpr int kTK = TQLM_VB / 4;
inline void q_keys_t(const uint8_t* const* keys, int64_t blocks, vq table, vq* kt) {
  constexpr int halves = 64 / TQLM_VB;  // vectors per 64-coordinate block of a key
  for (int64_t b = 0; b < blocks; ++b)
    for (int h = 0; h < halves; ++h) {
      vq u[kTK], t0[kTK], t1[kTK];
      for (int k = 0; k < kTK; ++k) u[k] = q_lookup(keys[k], b, h, table);
      for (int k = 0; k < kTK; k += 2) {  // lane L: dwords 4L, 4L + 1 (t0[k]) / 4L + 2, 4L + 3 of k, k + 1
        t0[k] = q_unpacklo32(u[k], u[k + 1]);
        t0[k + 1] = q_unpackhi32(u[k], u[k + 1]);
      }
      for (int k = 0; k < kTK; k += 4) {
        t1[k] = q_unpacklo64(t0[k], t0[k + 2]);
        t1[k + 1] = q_unpackhi64(t0[k], t0[k + 2]);
        t1[k + 2] = q_unpacklo64(t0[k + 1], t0[k + 3]);
        t1[k + 3] = q_unpackhi64(t0[k + 1], t0[k + 3]);
      }
      vq* o = kt + 16 * b + 8 * h;
      for (int m = 0; m < 4; ++m) {  // dword 4L + m of the kTK keys, lanes in key order
#if TQLM_VB == 64
        const vq g[4] = {t1[m], t1[4 + m], t1[8 + m], t1[12 + m]};
        vq l[4];
        q_transpose(g, l);
        for (int L = 0; L < 4; ++L) o[4 * L + m] = l[L];
#else
        o[m] = _mm256_permute2x128_si256(t1[m], t1[4 + m], 0x20);
        o[4 + m] = _mm256_permute2x128_si256(t1[m], t1[4 + m], 0x31);
#endif
      }
    }
}

// acc += each 32-bit lane's 4-byte dot product of u (u8) with the 4 bytes at q + i (s8), broadcast.
// With VNNI as inline asm that folds the broadcast into the instruction's memory operand. The address goes
// in as two registers rather than a memory operand: GCC must assume an asm memory read may see any
// __m512i (a may_alias type), so it stored every accumulator after each instruction; the intrinsic instead
// copied each accumulator to another register around it. Nothing writes q while the kernel runs.
inline vq q_dot_bcast(vq acc, vq u, const int8_t* q, int64_t i, vq ones) {
#if TQLM_VB == 64 && defined(__AVX512VNNI__)
  (void)ones;
  asm("vpdpbusd (%1,%2)%{1to16%}, %3, %0" : "+v"(acc) : "r"(q), "r"(i), "v"(u));
  return acc;
#else
  int32_t w;
  std::memcpy(&w, q + i, 4);
#if TQLM_VB == 64
  return q_dot(acc, u, _mm512_set1_epi32(w), ones);
#else
  return q_dot(acc, u, _mm256_set1_epi32(w), ones);
#endif
#endif
}

// Scores of nk <= kTK keys (kt from q_keys_t) against every row, RB rows at a time: one dot product per 4
// coordinates of the kTK keys and a row (its 4 query bytes broadcast), so a row's scores build up in one
// vector with no reduction, then q_finish's f32 operations and one store per row.
template <int RB>
inline void q_scores_t(const vq* kt, int64_t blocks, const float* scale, int nk, const KVQueryQ8& q,
                       int64_t R, float* s, int64_t lds, vq ones) {
#if TQLM_VB == 64
  const __mmask16 keep = __mmask16((1u << nk) - 1);
  const __m512 sc = _mm512_maskz_loadu_ps(keep, scale);
#else
  float sc8[8] = {};
  for (int k = 0; k < nk; ++k) sc8[k] = scale[k];
  const __m256 sc = _mm256_loadu_ps(sc8);
#endif
  const int64_t dwords = 16 * blocks;
  for (int64_t r0 = 0; r0 < R; r0 += RB) {
    const int nr = int(std::min<int64_t>(RB, R - r0));
    const int8_t* qr[RB];
    for (int r = 0; r < RB; ++r) qr[r] = q.q + (r0 + std::min(r, nr - 1)) * q.ldq;
    vq acc[RB];
#pragma GCC unroll 16
    for (int r = 0; r < RB; ++r) acc[r] = q_set16(0);
    for (int64_t d = 0; d < dwords; ++d) {
      const vq kv = kt[d];
#pragma GCC unroll 16
      for (int r = 0; r < RB; ++r) acc[r] = q_dot_bcast(acc[r], kv, qr[r], 4 * d, ones);
    }
    // every r < RB (acc stays in registers); rows past nr repeat row nr - 1 and store nothing
#pragma GCC unroll 16
    for (int r = 0; r < RB; ++r) {
      const int64_t rr = r0 + std::min(r, nr - 1);
      // scale[t] * mul[r] * float(sum - 64 * qsum[r]), the reference's order of operations
#if TQLM_VB == 64
      const __m512 sm = _mm512_mul_ps(sc, _mm512_set1_ps(q.mul[rr]));
      const __m512 x = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[r], _mm512_set1_epi32(64 * q.sum[rr])));
      _mm512_mask_storeu_ps(s + rr * lds, r < nr ? keep : __mmask16(0), _mm512_mul_ps(sm, x));
#else
      const __m256 sm = _mm256_mul_ps(sc, _mm256_set1_ps(q.mul[rr]));
      const __m256 x = _mm256_cvtepi32_ps(_mm256_sub_epi32(acc[r], _mm256_set1_epi32(64 * q.sum[rr])));
      const __m256 v = _mm256_mul_ps(sm, x);
      if (r >= nr) continue;
      if (nk == 8) {
        _mm256_storeu_ps(s + rr * lds, v);
      } else {
        float tmp[8];
        _mm256_storeu_ps(tmp, v);
        for (int k = 0; k < nk; ++k) s[rr * lds + k] = tmp[k];
      }
#endif
    }
  }
}

void scores_q8(const KVRowFormat& f, const uint8_t* codes, const float* scale, int64_t n, const KVQueryQ8& q,
               int64_t R, float* s, int64_t lds) {
  if (!f.lut_u7 || f.dim % 64 != 0) return kv_scores_q8_ref(f, codes, scale, n, q, R, s, lds);
  const vq table = q_bcast128(f.lut_u7);
  const vq ones = q_set16(1);
  const int64_t blocks = f.dim / 64;
  constexpr int64_t kMaxBlocks = 8;         // dim <= 512
  static const uint8_t zero_row[256] = {};  // stands in for missing keys of the last group
  if (blocks > kMaxBlocks) return kv_scores_q8_ref(f, codes, scale, n, q, R, s, lds);
  int64_t t = 0;
  constexpr int kScoreRows = TQLM_VB == 64 ? 8 : 4;  // accumulators: 32 / 16 vector registers
  if (R > 4)                                         // many rows (prefill): kTK keys at a time, key-major
    for (; t < n; t += kTK) {
      const int nk = int(std::min<int64_t>(kTK, n - t));
      const uint8_t* keys[kTK];
      for (int k = 0; k < kTK; ++k) keys[k] = k < nk ? codes + (t + k) * f.row_bytes : zero_row;
      vq kt[16 * kMaxBlocks];  // [block][dword]: kTK keys per vector
      q_keys_t(keys, blocks, table, kt);
      q_scores_t<kScoreRows>(kt, blocks, scale + t, nk, q, R, s + t, lds, ones);
    }
  for (; t < n; t += kQKeys) {
    const int nk = int(std::min<int64_t>(kQKeys, n - t));
    const uint8_t* keys[kQKeys];
    for (int k = 0; k < kQKeys; ++k) keys[k] = k < nk ? codes + (t + k) * f.row_bytes : zero_row;
    vq ch[kMaxBlocks][4];  // the group's looked-up keys, once for all rows
    for (int64_t b = 0; b < blocks; ++b) q_key_chunks(keys, b, table, ch[b]);
    for (int64_t r0 = 0; r0 < R; r0 += 4) {
      const int nr = int(std::min<int64_t>(4, R - r0));
      vq acc[4] = {};
      for (int64_t b = 0; b < blocks; ++b) {
        for (int r = 0; r < nr; ++r) {
          const int8_t* qr = q.q + (r0 + r) * q.ldq + 64 * b;
          for (int c = 0; c < 4; ++c) acc[r] = q_dot(acc[r], ch[b][c], q_bcast128(qr + 16 * c), ones);
        }
      }
      // per lane k: acc[r] holds 4 partial sums of key k; reduce the four rows together
      const vq a01 = q_add32(q_unpacklo32(acc[0], acc[1]), q_unpackhi32(acc[0], acc[1]));
      const vq a23 = q_add32(q_unpacklo32(acc[2], acc[3]), q_unpackhi32(acc[2], acc[3]));
      const vq sums = q_add32(q_unpacklo64(a01, a23), q_unpackhi64(a01, a23));  // lane k: rows 0..3
      // lane 4k + r: scale[t + k] * mul[r] * float(sum - 64 * qsum[r]) (the reference's order of operations)
      float out[4 * kQKeys];
      q_finish(sums, scale + t, nk, q.mul + r0, q.sum + r0, nr, out);
      for (int r = 0; r < nr; ++r)
        for (int k = 0; k < nk; ++k) s[(r0 + r) * lds + t + k] = out[4 * k + r];
    }
  }
}

#pragma GCC diagnostic pop

#else

void scores_q8(const KVRowFormat& f, const uint8_t* codes, const float* scale, int64_t n, const KVQueryQ8& q,
               int64_t R, float* s, int64_t lds) {
  kv_scores_q8_ref(f, codes, scale, n, q, R, s, lds);
}

#endif
