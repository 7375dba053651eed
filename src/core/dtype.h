// Element types of tensors on disk and in memory, and scalar conversions between them.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace tqlm {

enum class DType : uint8_t {
  F64,
  F32,
  F16,
  BF16,
  F8_E4M3,
  F8_E5M2,
  I64,
  I32,
  I16,
  I8,
  U64,
  U32,
  U16,
  U8,
  BOOL
};

// Bytes per element.
size_t dtype_size(DType t);
// The safetensors spelling ("BF16", "F8_E4M3", ...).
std::string_view dtype_name(DType t);
std::optional<DType> dtype_from_name(std::string_view name);
bool dtype_is_float(DType t);

// ---- element i of a tensor that may sit at any address ----
// Checkpoint tensors are read in place from the mapped file, and a file may put them at any byte offset
// (mx.save_safetensors does: data at byte 6 mod 8), so weight data is only ever read through these (one plain
// load on x86; a typed pointer dereference at a misaligned address would be undefined behaviour).
inline uint16_t load_u16(const void* p, size_t i = 0) {
  uint16_t v;
  std::memcpy(&v, static_cast<const uint8_t*>(p) + 2 * i, 2);
  return v;
}
inline uint32_t load_u32(const void* p, size_t i = 0) {
  uint32_t v;
  std::memcpy(&v, static_cast<const uint8_t*>(p) + 4 * i, 4);
  return v;
}
inline float load_f32(const void* p, size_t i = 0) {
  float v;
  std::memcpy(&v, static_cast<const uint8_t*>(p) + 4 * i, 4);
  return v;
}

// ---- scalar conversions (bit-exact, round-to-nearest-even where narrowing) ----

inline float bits_to_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint32_t f32_to_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

inline float bf16_to_f32(uint16_t h) {
  return bits_to_f32(uint32_t(h) << 16);
}
// Round to nearest even; NaN stays a quiet NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u = f32_to_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// OCP FP8: e4m3fn (bias 7, no infinities, S.1111.111 is NaN, max 448) and e5m2 (bias 15, IEEE-like).
float fp8_e4m3_to_f32(uint8_t v);
float fp8_e5m2_to_f32(uint8_t v);

// Reads element i of a float tensor of type t as f32 (F32, F16, BF16, F64, F8_*).
float load_as_f32(const void* data, DType t, size_t i);

// NaN and infinite values among n elements of an F32, F16 or BF16 buffer (0 for other dtypes); *first gets
// the index of the first one.
size_t count_nonfinite(const void* data, DType t, size_t n, size_t* first);

}  // namespace tqlm
