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
// key).
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

// Looked-up bytes of 64 coordinates [64 b, 64 b + 64) of each key of a group, transposed into chunk vectors:
// ch[c] (c < 4) lane k = key k's coordinates [64 b + 16 c, 64 b + 16 c + 16).
inline void q_key_chunks(const uint8_t* const* keys, int64_t b, vq table, vq* ch) {
#if TQLM_VB == 64
  vq u[4];
  for (int k = 0; k < 4; ++k) u[k] = q_shuffle(table, q_indices(q_zext_u8_u16(keys[k] + 32 * b)));
  q_transpose(u, ch);
#else
  vq u[2][2];  // [key][half]: half h = coordinates [32 h, 32 h + 32) (two 16-byte lanes)
  for (int k = 0; k < 2; ++k)
    for (int h = 0; h < 2; ++h) {
      const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(keys[k] + 32 * b + 16 * h));
      u[k][h] = q_shuffle(table, q_indices(_mm256_cvtepu8_epi16(c)));
    }
  for (int h = 0; h < 2; ++h) {
    ch[2 * h] = _mm256_permute2x128_si256(u[0][h], u[1][h], 0x20);
    ch[2 * h + 1] = _mm256_permute2x128_si256(u[0][h], u[1][h], 0x31);
  }
#endif
}

#if TQLM_VB == 64
// Scores of nk <= 16 keys against every row, 4 rows at a time (prefill): kc holds the 4 groups of 4 keys
// looked up once (kc[(g * blocks + b) * 4 + c] = chunk c of block b of group g). Each query chunk is loaded
// once for the 4 groups and each key chunk serves 4 rows; each group's 4 x 4 (key, row) sums are reduced as
// above, then the 4 groups' sums are transposed so that one vector holds one row's 16 scores, finished with
// q_finish's f32 operations and stored with one masked store per row. The 4-key path below spends a scalar
// finish and 16 scalar stores per 4 x 4 block, as much time as its dot products.
inline void q_scores16(const vq* kc, int64_t blocks, const float* scale, int nk, const KVQueryQ8& q,
                       int64_t R, float* s, int64_t lds, vq ones) {
  // lane j of level-1 pair a (rows 0, 1) / b (rows 2, 3) of groups 2p, 2p + 1: group 2p + j / 8, key (j % 8)
  // / 2, row j % 2 (+ 2); level 2: row r's lane 4g + k from pair a/b of groups 0-1 (g < 2) or 2-3.
  const __m512i pa = _mm512_setr_epi32(0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29);
  const __m512i pb = _mm512_add_epi32(pa, _mm512_set1_epi32(2));
  const __m512i v0 = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i v1 = _mm512_add_epi32(v0, _mm512_set1_epi32(1));
  const __mmask16 keep = __mmask16((1u << nk) - 1);
  const __m512 sc = _mm512_maskz_loadu_ps(keep, scale);
  for (int64_t r0 = 0; r0 < R; r0 += 4) {
    const int nr = int(std::min<int64_t>(4, R - r0));
    const int8_t* qr[4];
    for (int r = 0; r < 4; ++r) qr[r] = q.q + (r0 + std::min(r, nr - 1)) * q.ldq;
    // acc[g][r] lane k: 4 partial sums of key 4g + k against row r; each query chunk is loaded once and
    // feeds the 4 groups, each key chunk feeds the 4 rows
    vq acc[4][4] = {};
    for (int64_t b = 0; b < blocks; ++b)
      for (int c = 0; c < 4; ++c) {
        vq qv[4];
        for (int r = 0; r < 4; ++r) qv[r] = q_bcast128(qr[r] + 64 * b + 16 * c);
        for (int g = 0; g < 4; ++g) {
          const vq kv = kc[(g * blocks + b) * 4 + c];
          for (int r = 0; r < 4; ++r) acc[g][r] = q_dot(acc[g][r], kv, qv[r], ones);
        }
      }
    vq sums[4];  // group g: lane 4k + r = key 4g + k, row r
    for (int g = 0; g < 4; ++g) {
      const vq a01 = q_add32(q_unpacklo32(acc[g][0], acc[g][1]), q_unpackhi32(acc[g][0], acc[g][1]));
      const vq a23 = q_add32(q_unpacklo32(acc[g][2], acc[g][3]), q_unpackhi32(acc[g][2], acc[g][3]));
      sums[g] = q_add32(q_unpacklo64(a01, a23), q_unpackhi64(a01, a23));
    }
    const vq a01 = _mm512_permutex2var_epi32(sums[0], pa, sums[1]);
    const vq b01 = _mm512_permutex2var_epi32(sums[0], pb, sums[1]);
    const vq a23 = _mm512_permutex2var_epi32(sums[2], pa, sums[3]);
    const vq b23 = _mm512_permutex2var_epi32(sums[2], pb, sums[3]);
    const vq rows[4] = {_mm512_permutex2var_epi32(a01, v0, a23), _mm512_permutex2var_epi32(a01, v1, a23),
                        _mm512_permutex2var_epi32(b01, v0, b23), _mm512_permutex2var_epi32(b01, v1, b23)};
    for (int r = 0; r < nr; ++r) {
      // scale[t] * mul[r] * float(sum - 64 * qsum[r]), the reference's order of operations
      const __m512 sm = _mm512_mul_ps(sc, _mm512_set1_ps(q.mul[r0 + r]));
      const __m512 x = _mm512_cvtepi32_ps(_mm512_sub_epi32(rows[r], _mm512_set1_epi32(64 * q.sum[r0 + r])));
      _mm512_mask_storeu_ps(s + (r0 + r) * lds, keep, _mm512_mul_ps(sm, x));
    }
  }
}
#endif

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
#if TQLM_VB == 64
  if (R > 4)  // many rows (prefill): 16 keys at a time
    for (; t < n; t += 16) {
      const int nk = int(std::min<int64_t>(16, n - t));
      vq kc[4 * kMaxBlocks * 4];  // [group][block][chunk]
      for (int g = 0; g < 4; ++g) {
        const uint8_t* keys[4];
        for (int k = 0; k < 4; ++k)
          keys[k] = 4 * g + k < nk ? codes + (t + 4 * g + k) * f.row_bytes : zero_row;
        for (int64_t b = 0; b < blocks; ++b) q_key_chunks(keys, b, table, kc + (g * blocks + b) * 4);
      }
      q_scores16(kc, blocks, scale + t, nk, q, R, s + t, lds, ones);
    }
#endif
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
