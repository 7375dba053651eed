// Encoding and explicit decoding of one side (keys or values) of the KV cache, one head vector at a time.
//
//   float modes  codes = the elements (f32 / bf16 / f16); no scale
//   q8           s = max|x| / 127 stored as fp16; codes = round(x / s) in [-127, 127] (int8)
//   turboB       x (zero-padded to dim, a power of two) -> u = x / |x| -> y = H D u / sqrt(dim)
//                (randomized Walsh-Hadamard, own sign vector D per side) -> idx_j = nearest Lloyd-Max
//                centroid of y_j for dimension dim at B bits -> codes = idx packed LSB-first (idx_j at bits
//                [jB, jB + B) of the row's bit stream); scale = |x| / |c(idx)| as fp16 (norm-corrected, so
//                the reconstruction has the norm of x; TQLM_KV_NORM=raw stores |x| instead, for comparison)
//
//   centred      (format.centred) the vector encoded is x - mean[kv head] (kv_calib.h); keys need nothing
//                back (softmax is shift invariant), values get mean added to the attention output
//
// A stored vector reads back as scale * code_value(idx) in the stored basis (rotated for turbo). Attention
// works in that basis: queries are rotated in with to_stored_basis, outputs rotated back with
// from_stored_basis.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/kv_kernels.h"
#include "kv/codebook.h"
#include "kv/kv_spec.h"

namespace tqlm {

// Seeds of the fixed sign vectors (splitmix64, see hadamard.h): recorded here and in docs/formats.md.
constexpr uint64_t kTurboKeySeed = 0x74716c6d2d4b0001ull;    // "tqlm-K"
constexpr uint64_t kTurboValueSeed = 0x74716c6d2d560001ull;  // "tqlm-V"

class KVSideCodec {
 public:
  // mean [kv_heads, head_dim]: subtracted before encoding (empty: not centred).
  KVSideCodec(const KVSideFormat& f, int64_t head_dim, uint64_t seed, std::vector<float> mean = {});

  const KVSideFormat& format() const { return f_; }
  const KVRowFormat& row_format() const { return row_; }
  int64_t head_dim() const { return hd_; }
  bool norm_corrected() const { return norm_corrected_; }

  // x [head_dim] -> codes [f.code_bytes()] and scale (fp16 bits; untouched when the format has none).
  void encode(const float* x, uint8_t* codes, uint16_t* scale) const;
  // encode() of x - mean of kv head h (x itself when not centred).
  void encode_head(const float* x, int64_t h, uint8_t* codes, uint16_t* scale) const;
  // The sink copy of x of kv head h: bf16 [dim] of x - mean in the stored basis (no scale).
  void encode_sink(const float* x, int64_t h, uint16_t* out) const;
  // out [head_dim] += mean of kv head h (nothing when not centred): undoes centring of a value or key.
  void add_mean(int64_t h, float* out) const;
  // Per-vector scale as f32 (1 for the float modes).
  float scale_value(uint16_t s) const;
  // out [dim] = mul * (rotation of x [head_dim], zero-padded) in the stored basis.
  void to_stored_basis(const float* x, float mul, float* out) const;
  // y [dim] in the stored basis (overwritten) -> out [head_dim].
  void from_stored_basis(float* y, float* out) const;
  // Explicit dequantization of one stored vector, with the scalar reference decoder: out [head_dim].
  void dequantize(const uint8_t* codes, uint16_t scale, float* out) const;

 private:
  KVSideFormat f_;
  KVRowFormat row_;
  int64_t hd_;
  std::vector<float> signs_;  // [dim] (turbo)
  const Codebook* cb_ = nullptr;
  bool norm_corrected_ = true;
  std::vector<float> mean_;  // [kv_heads, head_dim] or empty
};

}  // namespace tqlm
