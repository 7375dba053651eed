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
};

struct KVKernels {
  const char* isa;
  // out[t, :] = code values of stored row t, t < n (codes at codes + t * row_bytes). out [n, dim]
  void (*decode)(const KVRowFormat& f, const uint8_t* codes, int64_t n, float* out);
  // s[r * lds + t] = scale[t] * <q[r], k[t]>   q [R, dim] (row stride ldq), k [n, dim]
  void (*scores)(const float* q, int64_t R, int64_t ldq, const float* k, const float* scale, int64_t n,
                 int64_t dim, float* s, int64_t lds);
  // s[t] = exp(s[t] - m) for t < n; returns the sum (softmax numerators of one row; s[t] - m <= 0)
  float (*exp_sum)(float* s, int64_t n, float m);
  // o[r] += sum_t p[r * ldp + t] * scale[t] * v[t]   v [n, dim], o [R, dim] (row stride ldo)
  void (*accumulate)(const float* p, int64_t R, int64_t ldp, const float* v, const float* scale, int64_t n,
                     int64_t dim, float* o, int64_t ldo);
};

const KVKernels& kv_kernels();  // the dispatched family (same choice as linear_kernels)
const KVKernels* kv_kernels_for(
    const char* isa);  // nullptr if this CPU lacks it; "reference" = scalar references

namespace isa_sse2 {
extern const KVKernels kv_kernels;
}
namespace isa_avx2 {
extern const KVKernels kv_kernels;
}
namespace isa_avx512 {
extern const KVKernels kv_kernels;
}

// The scalar references (src/kv/kv_codec.cpp).
void kv_decode_ref(const KVRowFormat& f, const uint8_t* codes, int64_t n, float* out);
void kv_scores_ref(const float* q, int64_t R, int64_t ldq, const float* k, const float* scale, int64_t n,
                   int64_t dim, float* s, int64_t lds);
float kv_exp_sum_ref(float* s, int64_t n, float m);
void kv_accumulate_ref(const float* p, int64_t R, int64_t ldp, const float* v, const float* scale, int64_t n,
                       int64_t dim, float* o, int64_t ldo);

}  // namespace tqlm
