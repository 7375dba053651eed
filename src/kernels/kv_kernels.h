// Instruction-set specific kernels for attention over the KV cache, in the same families as the linear
// kernels (kv_impl.h is compiled once per family). The scalar references are in src/kv/kv_codec.cpp; the
// families compute the same values up to summation order (tests/unit/test_kv_kernels.cpp).
#pragma once

#include <cstdint>

#include "kv/kv_spec.h"

namespace tqlm {

// How the stored codes of one vector read back, before its per-vector scale.
struct KVRowFormat {
  KVCodes codes = KVCodes::BF16;
  int bits = 16;
  int64_t dim = 0;             // stored coordinates per vector
  int64_t row_bytes = 0;       // bytes of codes per vector (rows are contiguous)
  const float* lut = nullptr;  // TURBO: centroids [2^bits]
  // TURBO codes of 2 or 4 bits and a dim that is a multiple of 64: the centroids on a 7-bit grid, centroid i
  // ~= (lut_u7[i] - 64) * lut_step, lut_u7[i] in [1, 127] [2^bits], for integer scores (scores_q8: 4-bit
  // keys) and integer value sums (accumulate_q8); else nullptr.
  const uint8_t* lut_u7 = nullptr;
  float lut_step = 0.0f;
};

// Queries quantized for integer scores over 4-bit key codes: rows q [R, dim] int8 (row stride ldq), their
// sums and the factor that turns an integer score into a float one (the row's scale x the codebook step).
struct KVQueryQ8 {
  const int8_t* q = nullptr;
  int64_t ldq = 0;
  const int32_t* sum = nullptr;  // [R] sum_j q[r, j]
  const float* mul = nullptr;    // [R]
};

struct KVKernels {
  const char* isa;
  // out[t, :] = code values of stored row t, t < n (codes at codes + t * row_bytes). out [n, dim]
  void (*decode)(const KVRowFormat& f, const uint8_t* codes, int64_t n, float* out);
  // s[r * lds + t] = scale[t] * <q[r], k[t]>   q [R, dim] (row stride ldq), k [n, dim]
  void (*scores)(const float* q, int64_t R, int64_t ldq, const float* k, const float* scale, int64_t n,
                 int64_t dim, float* s, int64_t lds);
  // Integer scores over stored 4-bit key codes (f.lut_u7 set), read in place (codes at codes + t *
  // row_bytes): s[r * lds + t] = scale[t] * q.mul[r] * (sum_j q.q[r, j] * lut_u7[idx(t, j)] - 64 * q.sum[r]),
  // the sum exact in int32, so every family gives the same scores bit for bit.
  void (*scores_q8)(const KVRowFormat& f, const uint8_t* codes, const float* scale, int64_t n,
                    const KVQueryQ8& q, int64_t R, float* s, int64_t lds);
  // max of s[0..n), n >= 1 (exact: any order gives the same value)
  float (*row_max)(const float* s, int64_t n);
  // s[t] = exp(s[t] - m) for t < n; returns the sum (softmax numerators of one row; s[t] - m <= 0)
  float (*exp_sum)(float* s, int64_t n, float m);
  // o[r] += sum_t p[r * ldp + t] * scale[t] * v[t]   v [n, dim], o [R, dim] (row stride ldo)
  void (*accumulate)(const float* p, int64_t R, int64_t ldp, const float* v, const float* scale, int64_t n,
                     int64_t dim, float* o, int64_t ldo);
  // accumulate() over stored codes read in place (codes at codes + t * f.row_bytes, decoded as decode()
  // does): the same values in the same order, so the same bits.
  void (*accumulate_codes)(const KVRowFormat& f, const uint8_t* codes, const float* p, int64_t R, int64_t ldp,
                           const float* scale, int64_t n, float* o, int64_t ldo);
  // Integer value sums over stored 2- or 4-bit codes (f.lut_u7 set), read in place, n <= 512 (a page).
  // Per row r: w_t = p[r * ldp + t] * scale[t]; m = the largest w_t (a row with none above 0, or an
  // infinite one, adds nothing); u_t = nearbyint(min(max(w_t * (65535 / m), 0), 65535)) (16 bits); acc_j =
  // sum_t u_t * (lut_u7[idx(t, j)] - 64), exact in int32; o[r * ldo + j] = fma((m / 65535) * lut_step,
  // float(acc_j), o[r * ldo + j]). So every family gives the same bits.
  void (*accumulate_q8)(const KVRowFormat& f, const uint8_t* codes, const float* p, int64_t R, int64_t ldp,
                        const float* scale, int64_t n, float* o, int64_t ldo);
  // scores() over stored keys read in place (codes at codes + t * f.row_bytes, decoded as decode() does): the
  // same values in the same order, so the same bits. bf16 keys with few rows (decode) are converted in
  // registers; other formats are decoded a tile at a time.
  void (*scores_codes)(const KVRowFormat& f, const uint8_t* codes, const float* q, int64_t R, int64_t ldq,
                       const float* scale, int64_t n, float* s, int64_t lds);
  // Whether accumulate_q8 is faster than the f32 sums in this family, so the cache uses it by default: only
  // with AVX-512 VNNI (one vpdpbusd per 4 tokens x 16 coordinates and byte plane). Without VNNI each takes
  // vpmaddubsw + vpmaddwd + vpaddd, 6 instructions for the two planes against 4 f32 FMAs (AVX2: measured
  // slower).
  bool int8_values_pay = false;
};

const KVKernels& kv_kernels();  // the dispatched family (same choice as linear_kernels)
// nullptr if this CPU lacks it; "reference" = scalar references; "avx512vnni" = avx512 with VNNI scores.
const KVKernels* kv_kernels_for(const char* isa);

namespace isa_sse2 {
extern const KVKernels kv_kernels;
}
namespace isa_avx2 {
extern const KVKernels kv_kernels;
}
namespace isa_avx512 {
extern const KVKernels kv_kernels;
}
namespace isa_avx512vnni_kv {  // the avx512 family's integer kernels with VNNI (kv_scores_q8_vnni.cpp)
void scores_q8(const KVRowFormat& f, const uint8_t* codes, const float* scale, int64_t n, const KVQueryQ8& q,
               int64_t R, float* s, int64_t lds);
void accumulate_q8(const KVRowFormat& f, const uint8_t* codes, const float* p, int64_t R, int64_t ldp,
                   const float* scale, int64_t n, float* o, int64_t ldo);
}  // namespace isa_avx512vnni_kv

// The scalar references (src/kv/kv_codec.cpp).
void kv_decode_ref(const KVRowFormat& f, const uint8_t* codes, int64_t n, float* out);
void kv_scores_ref(const float* q, int64_t R, int64_t ldq, const float* k, const float* scale, int64_t n,
                   int64_t dim, float* s, int64_t lds);
void kv_scores_q8_ref(const KVRowFormat& f, const uint8_t* codes, const float* scale, int64_t n,
                      const KVQueryQ8& q, int64_t R, float* s, int64_t lds);
float kv_row_max_ref(const float* s, int64_t n);
float kv_exp_sum_ref(float* s, int64_t n, float m);
void kv_accumulate_ref(const float* p, int64_t R, int64_t ldp, const float* v, const float* scale, int64_t n,
                       int64_t dim, float* o, int64_t ldo);
void kv_scores_codes_ref(const KVRowFormat& f, const uint8_t* codes, const float* q, int64_t R, int64_t ldq,
                         const float* scale, int64_t n, float* s, int64_t lds);
void kv_accumulate_codes_ref(const KVRowFormat& f, const uint8_t* codes, const float* p, int64_t R,
                             int64_t ldp, const float* scale, int64_t n, float* o, int64_t ldo);
void kv_accumulate_q8_ref(const KVRowFormat& f, const uint8_t* codes, const float* p, int64_t R, int64_t ldp,
                          const float* scale, int64_t n, float* o, int64_t ldo);

}  // namespace tqlm
