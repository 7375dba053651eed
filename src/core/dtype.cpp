#include "core/dtype.h"

#include <cmath>
#include <cstring>

#include "core/error.h"

namespace tqlm {

namespace {
struct DTypeInfo {
  DType t;
  std::string_view name;
  size_t size;
  bool is_float;
};
constexpr DTypeInfo kInfo[] = {
    {DType::F64, "F64", 8, true},         {DType::F32, "F32", 4, true},
    {DType::F16, "F16", 2, true},         {DType::BF16, "BF16", 2, true},
    {DType::F8_E4M3, "F8_E4M3", 1, true}, {DType::F8_E5M2, "F8_E5M2", 1, true},
    {DType::I64, "I64", 8, false},        {DType::I32, "I32", 4, false},
    {DType::I16, "I16", 2, false},        {DType::I8, "I8", 1, false},
    {DType::U64, "U64", 8, false},        {DType::U32, "U32", 4, false},
    {DType::U16, "U16", 2, false},        {DType::U8, "U8", 1, false},
    {DType::BOOL, "BOOL", 1, false},
};
const DTypeInfo& info(DType t) {
  return kInfo[static_cast<size_t>(t)];
}
}  // namespace

size_t dtype_size(DType t) {
  return info(t).size;
}
std::string_view dtype_name(DType t) {
  return info(t).name;
}
bool dtype_is_float(DType t) {
  return info(t).is_float;
}

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& i : kInfo)
    if (i.name == name) return i.t;
  return std::nullopt;
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t man = h & 0x3ff;
  if (exp == 0x1f) return bits_to_f32(sign | 0x7f800000u | (man << 13));  // inf / nan
  if (exp == 0) {
    // zero or subnormal: man * 2^-24, exact in f32
    float v = float(man) * 0x1p-24f;
    return sign ? -v : v;
  }
  return bits_to_f32(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t f32_to_f16(float f) {
  uint32_t u = f32_to_bits(f);
  uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return uint16_t(sign | 0x7e00u | ((a >> 13) & 0x3ffu));  // quiet NaN
  if (a >= 0x477ff000u) return uint16_t(sign | 0x7c00u);                        // rounds to >= 65520 -> inf
  if (a < 0x38800000u) {
    // result is subnormal or zero: round a * 2^24 to an integer, ties to even
    float v = bits_to_f32(a) * 0x1p24f;  // exact: scaling by a power of two
    float r = std::nearbyint(v);         // default rounding mode: nearest even
    return uint16_t(sign | uint16_t(r));
  }
  // normal: rebias exponent, round mantissa from 23 to 10 bits, ties to even
  uint32_t m = a + 0xfffu + ((a >> 13) & 1u);
  return uint16_t(sign | ((m - 0x38000000u) >> 13));
}

float fp8_e4m3_to_f32(uint8_t v) {
  uint32_t sign = v & 0x80u;
  uint32_t exp = (v >> 3) & 0xf;
  uint32_t man = v & 0x7;
  float r;
  if (exp == 0xf && man == 0x7) {
    r = std::nanf("");
  } else if (exp == 0) {
    r = float(man) * 0x1p-9f;  // subnormal: man/8 * 2^-6
  } else {
    r = bits_to_f32(((exp + 120) << 23) | (man << 20));
  }
  return sign ? -r : r;
}

float fp8_e5m2_to_f32(uint8_t v) {
  return f16_to_f32(uint16_t(v) << 8);
}

float load_as_f32(const void* data, DType t, size_t i) {
  const auto* p = static_cast<const uint8_t*>(data);
  switch (t) {
    case DType::F32: {
      float f;
      std::memcpy(&f, p + 4 * i, 4);
      return f;
    }
    case DType::F64: {
      double d;
      std::memcpy(&d, p + 8 * i, 8);
      return float(d);
    }
    case DType::F16: {
      uint16_t h;
      std::memcpy(&h, p + 2 * i, 2);
      return f16_to_f32(h);
    }
    case DType::BF16: {
      uint16_t h;
      std::memcpy(&h, p + 2 * i, 2);
      return bf16_to_f32(h);
    }
    case DType::F8_E4M3:
      return fp8_e4m3_to_f32(p[i]);
    case DType::F8_E5M2:
      return fp8_e5m2_to_f32(p[i]);
    default:
      fail("load_as_f32: {} is not a float type", dtype_name(t));
  }
}

size_t count_nonfinite(const void* data, DType t, size_t n, size_t* first) {
  // all-ones exponent: F32 0x7f800000, F16 0x7c00, BF16 0x7f80 (sign ignored)
  auto count = [&](auto word, auto mask) {
    using W = decltype(word);
    size_t c = 0;
    const W* w = static_cast<const W*>(data);
    for (size_t i = 0; i < n; ++i) {
      W x;
      std::memcpy(&x, w + i, sizeof x);
      if ((x & mask) == mask && c++ == 0) *first = i;
    }
    return c;
  };
  switch (t) {
    case DType::F32:
      return count(uint32_t{}, uint32_t{0x7f800000u});
    case DType::F16:
      return count(uint16_t{}, uint16_t{0x7c00u});
    case DType::BF16:
      return count(uint16_t{}, uint16_t{0x7f80u});
    default:
      return 0;
  }
}

}  // namespace tqlm
