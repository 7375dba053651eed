#include "quant/affine.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"

namespace tqlm {

bool affine_bits_supported(int bits) {
  return bits == 2 || bits == 3 || bits == 4 || bits == 5 || bits == 6 || bits == 8;
}
bool affine_group_size_supported(int gs) {
  return gs == 32 || gs == 64 || gs == 128;
}

void affine_check(int bits, int group_size, int64_t cols, const char* what) {
  if (!affine_bits_supported(bits))
    fail("{}: affine bits must be one of 2, 3, 4, 5, 6, 8 (got {})", what, bits);
  if (!affine_group_size_supported(group_size))
    fail("{}: affine group size must be 32, 64 or 128 (got {})", what, group_size);
  if (cols % group_size != 0)
    fail("{}: input dimension {} is not a multiple of the group size {}", what, cols, group_size);
}

namespace {

template <typename Load>
void quantize_rows(Load load, int64_t rows, int64_t cols, int bits, int gs, uint32_t* wq, float* s_out,
                   float* b_out) {
  const int64_t groups = cols / gs;
  const int64_t words_per_row = cols * bits / 32;
  std::vector<uint8_t> q(static_cast<size_t>(cols));
  std::vector<float> w(static_cast<size_t>(gs));  // [gs] one group
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      for (int j = 0; j < gs; ++j) w[size_t(j)] = load(r * cols + g * gs + j);
      affine_rtn_group(w.data(), gs, bits, &s_out[r * groups + g], &b_out[r * groups + g],
                       &q[size_t(g * gs)]);
    }
    affine_pack_row(q.data(), cols, bits, wq + r * words_per_row);
  }
}

}  // namespace

void affine_store_floats(const float* src, DType t, int64_t n, void* dst) {
  switch (t) {
    case DType::F32:
      std::copy(src, src + n, static_cast<float*>(dst));
      break;
    case DType::F16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = f32_to_f16(src[i]);
      break;
    }
    case DType::BF16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = f32_to_bf16(src[i]);
      break;
    }
    default:
      fail("affine: unsupported float dtype {}", dtype_name(t));
  }
}

namespace {

// Rounds an f32 to dtype t and back (the value an MLX op of that dtype would produce).
inline float round_to(float v, DType t) {
  if (t == DType::BF16) return bf16_to_f32(f32_to_bf16(v));
  if (t == DType::F16) return f16_to_f32(f32_to_f16(v));
  return v;
}

}  // namespace

void affine_rtn_group(const float* w, int gs, int bits, float* scale_out, float* bias_out, uint8_t* q) {
  const float n_bins = float((1 << bits) - 1);
  const float eps = 1e-7f;
  float w_min = std::numeric_limits<float>::infinity();
  float w_max = -w_min;
  for (int j = 0; j < gs; ++j) {
    w_max = std::max(w_max, w[j]);
    w_min = std::min(w_min, w[j]);
  }
  // Anchor the group at its larger-magnitude end; the scale is negative when that end is the max.
  const bool use_min = std::abs(w_min) > std::abs(w_max);
  float scale = std::max((w_max - w_min) / n_bins, eps);
  scale = use_min ? scale : -scale;
  const float edge = use_min ? w_min : w_max;
  const float q0 = std::rint(edge / scale);
  float bias = 0;
  if (q0 != 0) {  // rescale so that 0.0 falls exactly on the grid
    scale = edge / q0;
    bias = edge;
  }
  for (int j = 0; j < gs; ++j) {
    float v = std::rint((w[j] - bias) / scale);
    v = std::min(std::max(v, 0.0f), n_bins);
    q[j] = v == v ? uint8_t(v) : 0;  // NaN input -> code 0
  }
  *scale_out = scale;
  *bias_out = bias;
}

void affine_pack_row(const uint8_t* q, int64_t cols, int bits, uint32_t* out) {
  // every 32 elements fill exactly `bits` words
  for (int64_t blk = 0; blk < cols / 32; ++blk) {
    uint64_t acc = 0;
    int nacc = 0;
    for (int j = 0; j < 32; ++j) {
      acc |= uint64_t(q[blk * 32 + j]) << nacc;
      nacc += bits;
      if (nacc >= 32) {
        *out++ = uint32_t(acc);
        acc >>= 32;
        nacc -= 32;
      }
    }
  }
}

void affine_unpack_row(const uint32_t* wq_row, int64_t cols, int bits, uint8_t* q) {
  const uint32_t mask = (1u << bits) - 1;
  for (int64_t blk = 0; blk < cols / 32; ++blk) {
    const uint32_t* w = wq_row + blk * bits;
    uint64_t acc = 0;
    int nacc = 0;
    for (int j = 0; j < 32; ++j) {
      if (nacc < bits) {
        acc |= uint64_t(load_u32(w++)) << nacc;
        nacc += 32;
      }
      q[blk * 32 + j] = uint8_t(acc & mask);
      acc >>= bits;
      nacc -= bits;
    }
  }
}

void affine_quantize(const void* w, DType dtype, int64_t rows, int64_t cols, int bits, int group_size,
                     uint32_t* wq, void* scales, void* biases) {
  affine_check(bits, group_size, cols, "affine_quantize");
  const int64_t ngroups = rows * (cols / group_size);
  std::vector<float> s(static_cast<size_t>(ngroups)), b(static_cast<size_t>(ngroups));
  switch (dtype) {
    case DType::F32: {
      const auto* p = static_cast<const float*>(w);
      quantize_rows([p](int64_t i) { return p[i]; }, rows, cols, bits, group_size, wq, s.data(), b.data());
      break;
    }
    case DType::F16: {
      const auto* p = static_cast<const uint16_t*>(w);
      quantize_rows([p](int64_t i) { return f16_to_f32(p[i]); }, rows, cols, bits, group_size, wq, s.data(),
                    b.data());
      break;
    }
    case DType::BF16: {
      const auto* p = static_cast<const uint16_t*>(w);
      quantize_rows([p](int64_t i) { return bf16_to_f32(p[i]); }, rows, cols, bits, group_size, wq, s.data(),
                    b.data());
      break;
    }
    default:
      fail("affine_quantize: input must be F32, F16 or BF16, got {}", dtype_name(dtype));
  }
  affine_store_floats(s.data(), dtype, ngroups, scales);
  affine_store_floats(b.data(), dtype, ngroups, biases);
}

void affine_dequantize(const uint32_t* wq, const void* scales, const void* biases, DType dtype, int64_t rows,
                       int64_t cols, int bits, int group_size, void* out) {
  affine_check(bits, group_size, cols, "affine_dequantize");
  const int64_t groups = cols / group_size, words = cols * bits / 32;
  std::vector<uint8_t> q(static_cast<size_t>(cols));
  std::vector<float> row(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    affine_unpack_row(wq + r * words, cols, bits, q.data());
    for (int64_t g = 0; g < groups; ++g) {
      const float s = load_as_f32(scales, dtype, size_t(r * groups + g));
      const float b = load_as_f32(biases, dtype, size_t(r * groups + g));
      for (int j = 0; j < group_size; ++j) {
        const int64_t k = g * group_size + j;
        row[size_t(k)] = round_to(round_to(s * float(q[size_t(k)]), dtype) + b, dtype);
      }
    }
    affine_store_floats(row.data(), dtype, cols,
                        static_cast<uint8_t*>(out) + size_t(r * cols) * dtype_size(dtype));
  }
}

void affine_dequantize_f32(const uint32_t* wq, const void* scales, const void* biases, DType sdtype,
                           int64_t rows, int64_t cols, int bits, int group_size, float* out) {
  affine_check(bits, group_size, cols, "affine_dequantize_f32");
  const int64_t groups = cols / group_size, words = cols * bits / 32;
  std::vector<uint8_t> q(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    affine_unpack_row(wq + r * words, cols, bits, q.data());
    for (int64_t g = 0; g < groups; ++g) {
      const float s = load_as_f32(scales, sdtype, size_t(r * groups + g));
      const float b = load_as_f32(biases, sdtype, size_t(r * groups + g));
      for (int j = 0; j < group_size; ++j) {
        const int64_t k = g * group_size + j;
        out[r * cols + k] = s * float(q[size_t(k)]) + b;
      }
    }
  }
}

}  // namespace tqlm
