// Linear-layer kernels written once with GCC vector extensions, compiled per instruction set by
// linear_{sse2,avx2,avx512}.cpp, which define TQLM_VB (vector bytes) and TQLM_ISA_NS before including.
//
// Every path computes the same sums in the same order (see tile_expanded): weights expanded to f32
// (scale * q + bias), one vector accumulator per (row, token). Decode (T < 4) expands power-of-two-bit codes
// in registers; otherwise 4 rows are expanded once into memory and multiplied with 4 token rows at a time.
#include <immintrin.h>
#include <algorithm>
#include <cstring>

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
// Horizontal sum as a tree (lane i += lane i + h for h = W/2 .. 1): log2(W) permutes and adds instead of a
// serial chain of W scalar adds.
constexpr int kHsumSteps = W == 16 ? 4 : W == 8 ? 3 : 2;
struct HsumMasks {
  vi m[kHsumSteps];
  HsumMasks() {
    for (int k = 0, h = W / 2; k < kHsumSteps; ++k, h /= 2)
      for (int i = 0; i < W; ++i) m[k][i] = (i + h) % W;
  }
};
inline const HsumMasks hsum_masks;
inline float hsum(vf v) {
  for (int k = 0; k < kHsumSteps; ++k) v += __builtin_shuffle(v, hsum_masks.m[k]);
  return v[0];
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
    return __builtin_convertvector(codes(row, e0_signed), vf);
  }
  // The codes themselves, as integers.
  vi codes(const uint32_t* row, int64_t e0_signed) const {
    const uint64_t e0 = uint64_t(e0_signed);  // unsigned: / and % by powers of two become shifts and masks
    const uint32_t* wp = row + e0 / per_word;
    vu words;
    if constexpr (W <= per_word) {
      words = vu{} + load_u32(wp);
    } else {
      vu raw = {};
      for (int k = 0; k < W / per_word; ++k) raw[k] = load_u32(wp + k);
      words = __builtin_shuffle(raw, word_idx);
    }
    const vu sh = shift + uint32_t((W <= per_word ? e0 % per_word : 0) * BITS);
    return (vi)((words >> sh) & ((1u << BITS) - 1u));
  }
};

// Scales/biases in their stored dtype, converted inline (F16C when the family has it).
template <DType SD>
inline float half_at(const void* p, int64_t i) {
  if constexpr (SD == DType::F32) {
    return load_f32(p, size_t(i));
  } else if constexpr (SD == DType::BF16) {
    return bf16_to_f32(load_u16(p, size_t(i)));
  } else {
#ifdef __F16C__
    return _cvtsh_ss(load_u16(p, size_t(i)));
#else
    return f16_to_f32(load_u16(p, size_t(i)));
#endif
  }
}
inline float scale_at(const Linear& w, int64_t g) {
  return load_as_f32(w.scales, w.sdtype, size_t(g));
}
inline float bias_at(const Linear& w, int64_t g) {
  return load_as_f32(w.biases, w.sdtype, size_t(g));
}

// W expanded weights of a power-of-two-bit row at element e: codes * scale + bias. The single expression
// every path uses, so expanded values are the same whether they stay in registers or go through memory.
template <int BITS>
inline vf expand_chunk(const Unpack<BITS>& codes, const uint32_t* row, int64_t e, vf s, vf b) {
  return codes(row, e) * s + b;
}

template <int BITS>
void expand_q_pow2(const Linear& w, int64_t r, float* out) {
  static const Unpack<BITS> codes;
  const int64_t in = w.in, gs = w.group_size, groups = in / gs;
  const uint32_t* row = w.wq + r * (in * BITS / 32);
  for (int64_t g = 0; g < groups; ++g) {
    const vf s = vf{} + scale_at(w, r * groups + g), b = vf{} + bias_at(w, r * groups + g);
    for (int64_t e = g * gs; e < (g + 1) * gs; e += W) {
      const vf v = expand_chunk<BITS>(codes, row, e, s, b);
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
    std::memcpy(out, static_cast<const uint8_t*>(w.w) + r * in * 4, size_t(in) * 4);
  } else if (w.wdtype == DType::BF16) {
    const uint8_t* s = static_cast<const uint8_t*>(w.w) + r * in * 2;
    for (int64_t j = 0; j < in; ++j) out[j] = bf16_to_f32(load_u16(s, size_t(j)));
  } else {
    const uint8_t* s = static_cast<const uint8_t*>(w.w) + r * in * 2;
    int64_t j = 0;
#ifdef __F16C__  // 8 at a time (exact, as f16_to_f32): f16 routers are converted for every token
    for (; j + 8 <= in; j += 8)
      _mm256_storeu_ps(out + j,
                       _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 2 * j))));
#endif
    for (; j < in; ++j) out[j] = half_at<DType::F16>(s, j);
  }
}

// The canonical product every path computes: y[t, r] = hsum(acc) + bias[r], acc = sum over chunks j (in
// order) of wexp[r, j:j+W] * x[t, j:j+W] with one vector accumulator per (row, token). A row's result thus
// does not depend on T or on the tile it falls in, so prefill logits equal token-by-token decode logits bit
// for bit (tests/oracle/test_kv_modes.py). Tiles of NR rows x NT tokens keep NR * NT chains in flight.
template <int NR, int NT>
void tile_expanded(const float* rb, int64_t in, const float* x, int64_t t, float* y, int64_t out, int64_t r,
                   const float* b) {
  vf a[NR][NT] = {};
  for (int64_t j = 0; j < in; j += W) {
    vf wv[NR];
    for (int i = 0; i < NR; ++i) wv[i] = load(rb + i * in + j);
    for (int k = 0; k < NT; ++k) {
      const vf xv = load(x + (t + k) * in + j);
      for (int i = 0; i < NR; ++i) a[i][k] += wv[i] * xv;
    }
  }
  for (int i = 0; i < NR; ++i)
    for (int k = 0; k < NT; ++k) y[(t + k) * out + r + i] = hsum(a[i][k]) + b[i];
}

template <int NR>
void tile_rows(const float* rb, int64_t in, const float* x, int64_t T, float* y, int64_t out, int64_t r,
               const float* b) {
  int64_t t = 0;
  for (; t + 4 <= T; t += 4) tile_expanded<NR, 4>(rb, in, x, t, y, out, r, b);
  switch (T - t) {
    case 3:
      return tile_expanded<NR, 3>(rb, in, x, t, y, out, r, b);
    case 2:
      return tile_expanded<NR, 2>(rb, in, x, t, y, out, r, b);
    case 1:
      return tile_expanded<NR, 1>(rb, in, x, t, y, out, r, b);
    default:
      return;
  }
}

// Decode (T < 4) of power-of-two-bit rows: the same sums with the weights expanded in registers
// (expand_chunk), 4 rows at a time, never stored.
template <int BITS, int NT, DType SD>
void rows_q_pow2_decode(const Linear& w, const float* x, float* y, int64_t r0, int64_t r1) {
  static const Unpack<BITS> codes;
  const int64_t in = w.in, out = w.out, gs = w.group_size, groups = in / gs, words = in * BITS / 32;
  int64_t r = r0;
  for (; r < r1; r += 4) {
    const int nr = int(std::min<int64_t>(4, r1 - r));
    vf a[4][NT] = {};
    for (int64_t g = 0; g < groups; ++g) {
      vf s[4], bb[4];
      for (int i = 0; i < 4; ++i) {
        const int64_t ri = r + std::min(i, nr - 1);
        s[i] = vf{} + half_at<SD>(w.scales, ri * groups + g);
        bb[i] = vf{} + half_at<SD>(w.biases, ri * groups + g);
      }
      for (int64_t e = g * gs; e < (g + 1) * gs; e += W) {
        vf xv[NT];
        for (int k = 0; k < NT; ++k) xv[k] = load(x + k * in + e);
        for (int i = 0; i < 4; ++i) {
          const vf wv = expand_chunk<BITS>(codes, w.wq + (r + std::min(i, nr - 1)) * words, e, s[i], bb[i]);
          for (int k = 0; k < NT; ++k) a[i][k] += wv * xv[k];
        }
      }
    }
    for (int i = 0; i < nr; ++i) {
      const float b = w.bias ? load_as_f32(w.bias, w.bias_dtype, size_t(r + i)) : 0.0f;
      for (int k = 0; k < NT; ++k) y[k * out + r + i] = hsum(a[i][k]) + b;
    }
  }
}

template <int BITS, DType SD>
bool rows_decode_t(const Linear& w, const float* x, int64_t T, float* y, int64_t r0, int64_t r1) {
  switch (T) {
    case 1:
      rows_q_pow2_decode<BITS, 1, SD>(w, x, y, r0, r1);
      return true;
    case 2:
      rows_q_pow2_decode<BITS, 2, SD>(w, x, y, r0, r1);
      return true;
    case 3:
      rows_q_pow2_decode<BITS, 3, SD>(w, x, y, r0, r1);
      return true;
    default:
      return false;
  }
}
template <int BITS>
bool rows_decode_bits(const Linear& w, const float* x, int64_t T, float* y, int64_t r0, int64_t r1) {
  switch (w.sdtype) {
    case DType::F16:
      return rows_decode_t<BITS, DType::F16>(w, x, T, y, r0, r1);
    case DType::BF16:
      return rows_decode_t<BITS, DType::BF16>(w, x, T, y, r0, r1);
    case DType::F32:
      return rows_decode_t<BITS, DType::F32>(w, x, T, y, r0, r1);
    default:
      return false;
  }
}

void rows(const Linear& w, const float* x, int64_t T, float* y, int64_t r0, int64_t r1, float* scratch) {
  const int64_t in = w.in, out = w.out;
  float* tmp = scratch;      // [in] bytes of codes (as floats: plenty)
  float* rb = scratch + in;  // [4, in] expanded rows
  if (in % W != 0) {         // odd widths: the scalar reference order, identical for every T
    for (int64_t r = r0; r < r1; ++r) {
      expand_row(w, r, rb, tmp);
      const float b = w.bias ? load_as_f32(w.bias, w.bias_dtype, size_t(r)) : 0.0f;
      for (int64_t t = 0; t < T; ++t) {
        float s = 0;
        for (int64_t j = 0; j < in; ++j) s += rb[j] * x[t * in + j];
        y[t * out + r] = s + b;
      }
    }
    return;
  }
  if (T < 4 && w.quantized() && w.group_size % W == 0) {
    if (w.bits == 4 && rows_decode_bits<4>(w, x, T, y, r0, r1)) return;
    if (w.bits == 2 && rows_decode_bits<2>(w, x, T, y, r0, r1)) return;
    if (w.bits == 8 && rows_decode_bits<8>(w, x, T, y, r0, r1)) return;
  }
  for (int64_t r = r0; r < r1; r += 4) {
    const int nr = int(std::min<int64_t>(4, r1 - r));
    float b[4];
    for (int i = 0; i < nr; ++i) {
      expand_row(w, r + i, rb + i * in, tmp);
      b[i] = w.bias ? load_as_f32(w.bias, w.bias_dtype, size_t(r + i)) : 0.0f;
    }
    switch (nr) {
      case 4:
        tile_rows<4>(rb, in, x, T, y, out, r, b);
        break;
      case 3:
        tile_rows<3>(rb, in, x, T, y, out, r, b);
        break;
      case 2:
        tile_rows<2>(rb, in, x, T, y, out, r, b);
        break;
      default:
        tile_rows<1>(rb, in, x, T, y, out, r, b);
        break;
    }
  }
}

const LinearKernels kernels = {TQLM_ISA_NAME, rows};

}  // namespace tqlm::TQLM_ISA_NS
