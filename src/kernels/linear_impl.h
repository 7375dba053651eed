// Linear-layer kernels written once with GCC vector extensions, compiled per instruction set by
// linear_{sse2,avx2,avx512}.cpp, which define TQLM_VB (vector bytes) and TQLM_ISA_NS before including.
//
// Decode (T < 4): y[r] = sum_g s_g * <q_g, x_g> + b_g * sum(x_g), codes expanded to floats in registers.
// Prefill (T >= 4): each weight row is expanded once to f32 and multiplied with 4 token rows at a time.
#include <algorithm>
#include <cstring>
#include <immintrin.h>

#include "core/dtype.h"
#include "kernels/linear_kernels.h"
#include "quant/affine.h"

namespace tqlm::TQLM_ISA_NS {

constexpr int W = TQLM_VB / 4;  // f32 lanes
typedef float vf __attribute__((vector_size(TQLM_VB)));
typedef uint32_t vu __attribute__((vector_size(TQLM_VB)));
typedef int32_t vi __attribute__((vector_size(TQLM_VB)));

inline vf load(const float* p) {
  vf v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline float hsum(vf v) {
  float s = 0;
  for (int i = 0; i < W; ++i) s += v[i];
  return s;
}

// Lane i of a block of W codes starting at element e0 (a multiple of W) of a row packed at BITS in {2,4,8}:
// word (e0+i)/per_word shifted right by ((e0+i)%per_word)*BITS. Words are broadcast/shuffled into lanes,
// then one variable shift and a mask extract every code.
template <int BITS>
struct Unpack {
  static constexpr int per_word = 32 / BITS;
  vu word_idx, shift;
  Unpack() {
    for (int i = 0; i < W; ++i) {
      word_idx[i] = uint32_t(W <= per_word ? 0 : i / per_word);
      shift[i] = uint32_t((i % per_word) * BITS);
    }
  }
  vf operator()(const uint32_t* row, int64_t e0_signed) const {
    const uint64_t e0 = uint64_t(e0_signed);  // unsigned: / and % by powers of two become shifts and masks
    const uint32_t* wp = row + e0 / per_word;
    vu words;
    if constexpr (W <= per_word) {
      words = vu{} + wp[0];
    } else {
      vu raw = {};
      for (int k = 0; k < W / per_word; ++k) raw[k] = wp[k];
      words = __builtin_shuffle(raw, word_idx);
    }
    const vu sh = shift + uint32_t((W <= per_word ? e0 % per_word : 0) * BITS);
    return __builtin_convertvector((vi)((words >> sh) & ((1u << BITS) - 1u)), vf);
  }
};

// Scales/biases in their stored dtype, converted inline (F16C when the family has it).
template <DType SD>
inline float half_at(const void* p, int64_t i) {
  if constexpr (SD == DType::F32) {
    return static_cast<const float*>(p)[i];
  } else if constexpr (SD == DType::BF16) {
    return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
  } else {
#ifdef __F16C__
    return _cvtsh_ss(static_cast<const uint16_t*>(p)[i]);
#else
    return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
#endif
  }
}
inline float scale_at(const Linear& w, int64_t g) { return load_as_f32(w.scales, w.sdtype, size_t(g)); }
inline float bias_at(const Linear& w, int64_t g) { return load_as_f32(w.biases, w.sdtype, size_t(g)); }

// One quantized row (power-of-two bits) against one activation row with precomputed group sums.
template <int BITS, DType SD>
float dot_q_pow2(const Linear& w, int64_t r, const float* x, const float* xsum) {
  const int64_t in = w.in, gs = w.group_size, groups = in / gs;
  const uint32_t* row = w.wq + r * (in * BITS / 32);
  static const Unpack<BITS> codes;
  vf acc = {};
  float bacc = 0.0f;
  for (int64_t g = 0; g < groups; ++g) {
    vf gacc = {};
    for (int64_t e = g * gs; e < (g + 1) * gs; e += W) gacc += codes(row, e) * load(x + e);
    acc += gacc * half_at<SD>(w.scales, r * groups + g);
    bacc += half_at<SD>(w.biases, r * groups + g) * xsum[g];
  }
  return hsum(acc) + bacc;
}

// Any bit width: unpack the row's codes (scalar bit stream), then vector dot per group.
float dot_q_generic(const Linear& w, int64_t r, const float* x, const float* xsum, float* tmp) {
  const int64_t in = w.in, gs = w.group_size, groups = in / gs;
  uint8_t* q = reinterpret_cast<uint8_t*>(tmp);
  affine_unpack_row(w.wq + r * (in * w.bits / 32), in, w.bits, q);
  vf acc = {};
  float bacc = 0.0f;
  for (int64_t g = 0; g < groups; ++g) {
    vf gacc = {};
    for (int64_t e = g * gs; e < (g + 1) * gs; e += W) {
      vf c;
      for (int i = 0; i < W; ++i) c[i] = float(q[e + i]);
      gacc += c * load(x + e);
    }
    acc += gacc * scale_at(w, r * groups + g);
    bacc += bias_at(w, r * groups + g) * xsum[g];
  }
  return hsum(acc) + bacc;
}

template <int BITS>
void expand_q_pow2(const Linear& w, int64_t r, float* out) {
  static const Unpack<BITS> codes;
  const int64_t in = w.in, gs = w.group_size, groups = in / gs;
  const uint32_t* row = w.wq + r * (in * BITS / 32);
  for (int64_t g = 0; g < groups; ++g) {
    const vf s = vf{} + scale_at(w, r * groups + g), b = vf{} + bias_at(w, r * groups + g);
    for (int64_t e = g * gs; e < (g + 1) * gs; e += W) {
      const vf v = codes(row, e) * s + b;
      std::memcpy(out + e, &v, sizeof v);
    }
  }
}

// Row r expanded to f32 (scale * q + bias, or the float weight).
void expand_row(const Linear& w, int64_t r, float* out, float* tmp) {
  const int64_t in = w.in;
  const bool vec = w.quantized() && w.group_size % W == 0;
  if (vec && w.bits == 4) return expand_q_pow2<4>(w, r, out);
  if (vec && w.bits == 2) return expand_q_pow2<2>(w, r, out);
  if (vec && w.bits == 8) return expand_q_pow2<8>(w, r, out);
  if (w.quantized()) {
    const int64_t gs = w.group_size, groups = in / gs;
    uint8_t* q = reinterpret_cast<uint8_t*>(tmp);
    affine_unpack_row(w.wq + r * (in * w.bits / 32), in, w.bits, q);
    for (int64_t g = 0; g < groups; ++g) {
      const float s = scale_at(w, r * groups + g), b = bias_at(w, r * groups + g);
      for (int64_t e = g * gs; e < (g + 1) * gs; ++e) out[e] = s * float(q[e]) + b;
    }
  } else if (w.wdtype == DType::F32) {
    std::memcpy(out, static_cast<const float*>(w.w) + r * in, size_t(in) * 4);
  } else if (w.wdtype == DType::BF16) {
    const uint16_t* s = static_cast<const uint16_t*>(w.w) + r * in;
    for (int64_t j = 0; j < in; ++j) out[j] = bf16_to_f32(s[j]);
  } else {
    const uint16_t* s = static_cast<const uint16_t*>(w.w) + r * in;
    for (int64_t j = 0; j < in; ++j) out[j] = f16_to_f32(s[j]);
  }
}

float dot_f(const float* a, const float* b, int64_t n) {
  vf acc0 = {}, acc1 = {};
  int64_t j = 0;
  for (; j + 2 * W <= n; j += 2 * W) {
    acc0 += load(a + j) * load(b + j);
    acc1 += load(a + j + W) * load(b + j + W);
  }
  for (; j + W <= n; j += W) acc0 += load(a + j) * load(b + j);
  float s = hsum(acc0 + acc1);
  for (; j < n; ++j) s += a[j] * b[j];
  return s;
}

using DotFn = float (*)(const Linear&, int64_t, const float*, const float*);
template <int BITS>
DotFn dot_fn_bits(DType sd) {
  switch (sd) {
    case DType::F16: return dot_q_pow2<BITS, DType::F16>;
    case DType::BF16: return dot_q_pow2<BITS, DType::BF16>;
    case DType::F32: return dot_q_pow2<BITS, DType::F32>;
    default: return nullptr;
  }
}
DotFn dot_fn(const Linear& w) {
  switch (w.bits) {
    case 2: return dot_fn_bits<2>(w.sdtype);
    case 4: return dot_fn_bits<4>(w.sdtype);
    case 8: return dot_fn_bits<8>(w.sdtype);
    default: return nullptr;
  }
}

void rows(const Linear& w, const float* x, int64_t T, float* y, int64_t r0, int64_t r1, float* scratch) {
  const int64_t in = w.in, out = w.out;
  float* rowbuf = scratch;           // [in]
  float* tmp = scratch + in;         // [in] bytes of codes (as floats: plenty)
  float* xsum = scratch + 2 * in;    // [in / 32]
  const bool vec_ok = in % W == 0 && (!w.quantized() || w.group_size % W == 0);
  if (T < 4 && w.quantized() && vec_ok) {
    const int64_t gs = w.group_size, groups = in / gs;
    for (int64_t t = 0; t < T; ++t) {
      const float* xt = x + t * in;
      for (int64_t g = 0; g < groups; ++g) {
        float s = 0;
        for (int64_t e = g * gs; e < (g + 1) * gs; ++e) s += xt[e];
        xsum[g] = s;
      }
      auto fn = dot_fn(w);
      for (int64_t r = r0; r < r1; ++r) {
        const float v = fn ? fn(w, r, xt, xsum) : dot_q_generic(w, r, xt, xsum, tmp);
        y[t * out + r] = v + (w.bias ? load_as_f32(w.bias, w.bias_dtype, size_t(r)) : 0.0f);
      }
    }
    return;
  }
  // Prefill: expand 4 weight rows at a time, then a 4 rows x 4 tokens register tile (16 accumulators).
  float* rb = scratch + 3 * in;  // [4, in] expanded rows
  int64_t r = r0;
  if (in % W == 0) {
    for (; r + 4 <= r1; r += 4) {
      for (int i = 0; i < 4; ++i) expand_row(w, r + i, rb + i * in, tmp);
      float b[4];
      for (int i = 0; i < 4; ++i) b[i] = w.bias ? load_as_f32(w.bias, w.bias_dtype, size_t(r + i)) : 0.0f;
      int64_t t = 0;
      for (; t + 4 <= T; t += 4) {
        vf a[4][4] = {};
        const float* xt = x + t * in;
        for (int64_t j = 0; j < in; j += W) {
          const vf w0 = load(rb + j), w1 = load(rb + in + j), w2 = load(rb + 2 * in + j), w3 = load(rb + 3 * in + j);
          for (int k = 0; k < 4; ++k) {
            const vf xv = load(xt + k * in + j);
            a[0][k] += w0 * xv;
            a[1][k] += w1 * xv;
            a[2][k] += w2 * xv;
            a[3][k] += w3 * xv;
          }
        }
        for (int i = 0; i < 4; ++i)
          for (int k = 0; k < 4; ++k) y[(t + k) * out + r + i] = hsum(a[i][k]) + b[i];
      }
      for (; t < T; ++t)
        for (int i = 0; i < 4; ++i) y[t * out + r + i] = dot_f(rb + i * in, x + t * in, in) + b[i];
    }
  }
  for (; r < r1; ++r) {
    expand_row(w, r, rowbuf, tmp);
    const float b = w.bias ? load_as_f32(w.bias, w.bias_dtype, size_t(r)) : 0.0f;
    for (int64_t t = 0; t < T; ++t) y[t * out + r] = dot_f(rowbuf, x + t * in, in) + b;
  }
}

const LinearKernels kernels = {TQLM_ISA_NAME, rows};

}  // namespace tqlm::TQLM_ISA_NS
