// KV-cache attention kernels written once with GCC vector extensions; included by linear_{sse2,avx2,
// avx512}.cpp after linear_impl.h (same namespace, vector types and Unpack).
//
// decode: codes -> f32 rows. TurboQuant indices are unpacked in registers (2/4/8 bits: one variable shift
// per lane; 3 bits: scalar bit stream) and looked up in the codebook with a lane permute when it fits one or
// two vectors (2^bits <= 2W), else lane by lane.
#include "kernels/kv_kernels.h"

namespace tqlm::TQLM_ISA_NS {

namespace kv {

typedef uint16_t vh __attribute__((vector_size(TQLM_VB / 2)));  // W x u16
typedef int8_t vb __attribute__((vector_size(TQLM_VB / 4)));     // W x i8

inline void store(float* p, vf v) { std::memcpy(p, &v, sizeof v); }

// Codebook lookup of W indices.
template <int BITS>
inline vf lookup(const float* lut, vi idx) {
  constexpr int levels = 1 << BITS;
  if constexpr (levels <= W) {
    vf tab = {};
    for (int i = 0; i < levels; ++i) tab[i] = lut[i];
    return __builtin_shuffle(tab, idx);
  } else if constexpr (levels == 2 * W) {
    vf lo, hi;
    std::memcpy(&lo, lut, sizeof lo);
    std::memcpy(&hi, lut + W, sizeof hi);
    return __builtin_shuffle(lo, hi, idx);
  } else {
    vf r;
    for (int i = 0; i < W; ++i) r[i] = lut[idx[i]];
    return r;
  }
}

template <int BITS>
void decode_turbo_pow2(const KVRowFormat& f, const uint8_t* codes, int64_t n, float* out) {
  static const Unpack<BITS> unpack;
  for (int64_t t = 0; t < n; ++t) {
    const uint32_t* row = reinterpret_cast<const uint32_t*>(codes + t * f.row_bytes);
    for (int64_t e = 0; e < f.dim; e += W) {
      const vf c = unpack(row, e);  // codes as floats
      store(out + t * f.dim + e, lookup<BITS>(f.lut, __builtin_convertvector(c, vi)));
    }
  }
}

void decode_turbo3(const KVRowFormat& f, const uint8_t* codes, int64_t n, float* out) {
  for (int64_t t = 0; t < n; ++t) {
    const uint8_t* row = codes + t * f.row_bytes;
    for (int64_t e = 0; e < f.dim; e += 8) {  // 8 codes = 3 bytes
      const uint8_t* b = row + e / 8 * 3;
      const uint32_t bits24 = uint32_t(b[0]) | uint32_t(b[1]) << 8 | uint32_t(b[2]) << 16;
      for (int i = 0; i < 8; ++i) out[t * f.dim + e + i] = f.lut[(bits24 >> (3 * i)) & 7u];
    }
  }
}

void decode(const KVRowFormat& f, const uint8_t* codes, int64_t n, float* out) {
  const int64_t total = n * f.dim;
  switch (f.codes) {
    case KVCodes::F32: std::memcpy(out, codes, size_t(total) * 4); return;
    case KVCodes::BF16: {  // bf16 -> f32: the 16 bits become the high half of the f32
      const uint16_t* s = reinterpret_cast<const uint16_t*>(codes);
      int64_t i = 0;
      for (; i + W <= total; i += W) {
        vh h;
        std::memcpy(&h, s + i, sizeof h);
        const vu u = __builtin_convertvector(h, vu) << 16;
        std::memcpy(out + i, &u, sizeof u);
      }
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
      for (; i + W <= total; i += W) {
        vb b;
        std::memcpy(&b, s + i, sizeof b);
        store(out + i, __builtin_convertvector(b, vf));
      }
      for (; i < total; ++i) out[i] = float(s[i]);
      return;
    }
    case KVCodes::TURBO:
      if (f.dim % W != 0 || f.dim % 8 != 0) return kv_decode_ref(f, codes, n, out);
      switch (f.bits) {
        case 2: return decode_turbo_pow2<2>(f, codes, n, out);
        case 3: return decode_turbo3(f, codes, n, out);
        case 4: return decode_turbo_pow2<4>(f, codes, n, out);
        case 8: return decode_turbo_pow2<8>(f, codes, n, out);
        default: return kv_decode_ref(f, codes, n, out);
      }
  }
}

void scores(const float* q, int64_t R, int64_t ldq, const float* k, const float* scale, int64_t n, int64_t dim,
            float* s, int64_t lds) {
  if (dim % W != 0) return kv_scores_ref(q, R, ldq, k, scale, n, dim, s, lds);
  for (int64_t t = 0; t < n; ++t) {
    const float* kt = k + t * dim;
    for (int64_t r = 0; r < R; ++r) {
      const float* qr = q + r * ldq;
      vf a0 = {}, a1 = {};
      int64_t j = 0;
      for (; j + 2 * W <= dim; j += 2 * W) {
        a0 += load(qr + j) * load(kt + j);
        a1 += load(qr + j + W) * load(kt + j + W);
      }
      for (; j < dim; j += W) a0 += load(qr + j) * load(kt + j);
      s[r * lds + t] = scale[t] * hsum(a0 + a1);
    }
  }
}

// Register tile: 4 vectors (4W coordinates) of one output row kept in registers across all n rows of v.
void accumulate(const float* p, int64_t R, int64_t ldp, const float* v, const float* scale, int64_t n, int64_t dim,
                float* o, int64_t ldo) {
  if (dim % (4 * W) != 0) return kv_accumulate_ref(p, R, ldp, v, scale, n, dim, o, ldo);
  for (int64_t r = 0; r < R; ++r) {
    const float* pr = p + r * ldp;
    float* orow = o + r * ldo;
    for (int64_t j = 0; j < dim; j += 4 * W) {
      vf a0 = load(orow + j), a1 = load(orow + j + W), a2 = load(orow + j + 2 * W), a3 = load(orow + j + 3 * W);
      for (int64_t t = 0; t < n; ++t) {
        const float w = pr[t] * scale[t];
        if (w == 0.0f) continue;
        const float* vt = v + t * dim + j;
        a0 += w * load(vt);
        a1 += w * load(vt + W);
        a2 += w * load(vt + 2 * W);
        a3 += w * load(vt + 3 * W);
      }
      store(orow + j, a0);
      store(orow + j + W, a1);
      store(orow + j + 2 * W, a2);
      store(orow + j + 3 * W, a3);
    }
  }
}

}  // namespace kv

const KVKernels kv_kernels = {TQLM_ISA_NAME, kv::decode, kv::scores, kv::accumulate};

}  // namespace tqlm::TQLM_ISA_NS
