// Integer linear kernels: MLX affine weight codes (unsigned, 0 .. 2^bits - 1) times int8 activations
// (qact.h), for every MLX bit width (2, 3, 4, 5, 6, 8) and group size (32, 64, 128). One family per
// instruction set, chosen at run time from CPUID:
//   avx512vbmi  decode on 512-bit vectors, codes unpacked by vpermb + vpmultishiftqb (AVX512-VBMI + VNNI);
//               longer batches as avx512vnni (qlinear_avx512vbmi.cpp)
//   avx512vnni  vpdpbusd (EVEX, AVX512-VNNI + VL) on 256-bit vectors
//   avxvnni     vpdpbusd (VEX, AVX-VNNI) for AVX2 CPUs that have it
//   avx2        vpmaddubsw + vpmaddwd
//   scalar      the plain C++ reference (qlinear_ref.cpp)
// Codes are unpacked in registers from the MLX layout (32 codes of a b-bit row = b words), or, for 2-, 3-, 4-
// and 8-bit weights that models repacked at load (qlinear_pack.h), read from 16-row tiles by packed_rows
// (every family but scalar: qlinear_packed_avx512.cpp, qlinear_packed256.h).
//
// Every family computes, for each (row r, token t), exactly this sequence of f32 operations (no FMA), so all
// families and every token count T and tiling agree bit for bit:
//   y = 0
//   for each group g in order:
//     a = 0; xs = 0
//     for each 16-block k of g in order (the activations' blocks, qact.h):
//       a = a + float(isum[r, k]) * d[t, k]     (isum: the exact integer sum of code * q over the block)
//       xs = xs + s[t, k]                       (s: float(sum of the block's q) * d, see qact.h)
//     y = y + (scale[r, g] * a + bias[r, g] * xs)
//   y = y + linear_bias[r]
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>

#include "kernels/linear_weight.h"
#include "kernels/qact.h"

namespace tqlm {

// Scratch the rows function needs, in floats.
int64_t qlinear_scratch_floats(const Linear& w);

// For the 8-row tile at row r (nr <= 8 real rows, the last repeated): each row's codes and Linear bias (0
// when none). The matrix's last row is copied to `last` (row bytes + 64) and read from there, so kernels may
// load up to 64 bytes from any block's start. (Plain C++, shared by the families: no ISA flags.)
void qlinear_tile_rows(const Linear& w, int64_t r, int nr, uint8_t* last, const uint8_t* cp[8],
                       float lbias[8]);

struct QLinearKernels {
  const char* isa;
  // y[t, r] (row stride w.out) for every token t < xa.T and r in [r0, r1): a quantized single-expert Linear
  // against xa (xa.in == w.in). r0 is a multiple of 8. scratch: qlinear_scratch_floats(w) floats.
  void (*rows)(const Linear& w, const QActs& xa, float* y, int64_t r0, int64_t r1, float* scratch);
  // quantize_rows_q8_ref in this instruction set (bit-identical to it).
  void (*quantize)(const float* x, int64_t t0, int64_t t1, QActs& out);
  // As rows, reading w.packed (qlinear_pack.h; r0 a multiple of 16), or nullptr where the family has no
  // kernel for that layout (then weights are not packed for it). Same results as rows, bit for bit.
  void (*packed_rows)(const Linear& w, const QActs& xa, float* y, int64_t r0, int64_t r1) = nullptr;
};

// Calls fn(std::integral_constant<int, B>{}) for the MLX bit width B = bits (2, 3, 4, 5, 6; anything else:
// 8), so each family instantiates its kernels once per width from one switch.
template <class Fn>
inline void with_mlx_bits(int bits, Fn&& fn) {
  switch (bits) {
    case 2:
      return fn(std::integral_constant<int, 2>{});
    case 3:
      return fn(std::integral_constant<int, 3>{});
    case 4:
      return fn(std::integral_constant<int, 4>{});
    case 5:
      return fn(std::integral_constant<int, 5>{});
    case 6:
      return fn(std::integral_constant<int, 6>{});
    default:
      return fn(std::integral_constant<int, 8>{});
  }
}

// Calls fn(std::integral_constant<int, B>{}, std::integral_constant<DType, D>{}) for a packed weight's bit
// width B = bits (2, 3, 4; anything else: 8) and scale type D = sdtype (f32, f16; anything else: bf16), so
// the packed kernels instantiate once per kind from one switch.
template <class Fn>
inline void with_packed_kind(int bits, DType sdtype, Fn&& fn) {
  auto by_bits = [&](auto dt) {
    switch (bits) {
      case 2:
        return fn(std::integral_constant<int, 2>{}, dt);
      case 3:
        return fn(std::integral_constant<int, 3>{}, dt);
      case 4:
        return fn(std::integral_constant<int, 4>{}, dt);
      default:
        return fn(std::integral_constant<int, 8>{}, dt);
    }
  };
  switch (sdtype) {
    case DType::F32:
      return by_bits(std::integral_constant<DType, DType::F32>{});
    case DType::F16:
      return by_bits(std::integral_constant<DType, DType::F16>{});
    default:
      return by_bits(std::integral_constant<DType, DType::BF16>{});
  }
}

// Calls fn(std::integral_constant<int, 4>{}, t) for t = 0, 4, 8, ... while 4 tokens are left, then
// fn(std::integral_constant<int, N>{}, t) once for the N = 1..3 left: kernels that share each unpacked tile
// across a run of up to 4 tokens.
template <class Fn>
inline void for_token_runs(int64_t T, Fn&& fn) {
  int64_t t = 0;
  for (; t + 4 <= T; t += 4) fn(std::integral_constant<int, 4>{}, t);
  switch (T - t) {
    case 3:
      return fn(std::integral_constant<int, 3>{}, t);
    case 2:
      return fn(std::integral_constant<int, 2>{}, t);
    case 1:
      return fn(std::integral_constant<int, 1>{}, t);
    default:
      return;
  }
}

const QLinearKernels& qlinear_kernels();  // the dispatched family
// "avx512vbmi", "avx512vnni", "avxvnni", "avx2", "scalar"; nullptr if this CPU lacks it.
const QLinearKernels* qlinear_kernels_for(const std::string& isa);

namespace qisa_ref {
extern const QLinearKernels kernels;
}
namespace qisa_avx2 {
extern const QLinearKernels kernels;
}
namespace qisa_avxvnni {
extern const QLinearKernels kernels;
}
namespace qisa_avx512vnni {
extern const QLinearKernels kernels;
}
namespace qisa_avx512vbmi {
extern const QLinearKernels kernels;
}
namespace qisa_packed512 {  // the packed-layout kernel of both AVX-512 families (qlinear_packed_avx512.cpp)
void rows(const Linear& w, const QActs& xa, float* y, int64_t r0, int64_t r1);
}

}  // namespace tqlm
