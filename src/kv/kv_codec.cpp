#include "kv/kv_codec.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/dtype.h"
#include "core/error.h"
#include "kv/hadamard.h"

namespace tqlm {

namespace {

// b-bit index j into an LSB-first bit stream (bytes zeroed beforehand).
void put_bits(uint8_t* row, int64_t j, int bits, uint32_t v) {
  const int64_t bit = j * bits;
  for (int i = 0; i < bits; ++i)
    if (v >> i & 1u) row[(bit + i) / 8] |= uint8_t(1u << ((bit + i) % 8));
}
uint32_t get_bits(const uint8_t* row, int64_t j, int bits) {
  const int64_t bit = j * bits;
  uint32_t v = 0;
  for (int i = 0; i < bits; ++i) v |= uint32_t(row[(bit + i) / 8] >> ((bit + i) % 8) & 1u) << i;
  return v;
}

}  // namespace

KVSideCodec::KVSideCodec(const KVSideFormat& f, int64_t head_dim, uint64_t seed, std::vector<float> mean)
    : f_(f), hd_(head_dim), mean_(std::move(mean)) {
  if (!mean_.empty() && mean_.size() % size_t(hd_) != 0) fail("KV codec: mean of {} floats", mean_.size());
  row_.codes = f.codes;
  row_.bits = f.bits;
  row_.dim = f.dim;
  row_.row_bytes = f.code_bytes();
  if (f.codes == KVCodes::TURBO) {
    signs_ = hadamard_signs(int(f.dim), seed);
    cb_ = &lloyd_max_codebook(int(f.dim), f.bits);
    row_.lut = cb_->centroids.data();
    if ((f.bits == 2 || f.bits == 4) && f.dim % 64 == 0) {  // integer scores (4-bit keys) and value sums
      row_.lut_u7 = cb_->u7.data();
      row_.lut_step = cb_->u7_step;
    }
    if (const char* e = std::getenv("TQLM_KV_NORM")) {
      const std::string v = e;
      if (v != "raw" && v != "corrected") fail("TQLM_KV_NORM={}: use raw or corrected", v);
      norm_corrected_ = v == "corrected";
    }
  }
}

void KVSideCodec::encode(const float* x, uint8_t* codes, uint16_t* scale) const {
  switch (f_.codes) {
    case KVCodes::F32:
      std::memcpy(codes, x, size_t(hd_) * 4);
      return;
    case KVCodes::BF16: {
      uint16_t* c = reinterpret_cast<uint16_t*>(codes);
      for (int64_t i = 0; i < hd_; ++i) c[i] = f32_to_bf16(x[i]);
      return;
    }
    case KVCodes::F16: {
      uint16_t* c = reinterpret_cast<uint16_t*>(codes);
      for (int64_t i = 0; i < hd_; ++i) c[i] = f32_to_f16(x[i]);
      return;
    }
    case KVCodes::Q8: {
      float amax = 0;
      for (int64_t i = 0; i < hd_; ++i) amax = std::max(amax, std::fabs(x[i]));
      *scale = f32_to_f16(amax / 127.0f);
      const float s = f16_to_f32(*scale);
      int8_t* c = reinterpret_cast<int8_t*>(codes);
      for (int64_t i = 0; i < hd_; ++i)
        c[i] = s > 0 ? int8_t(std::clamp(std::nearbyint(x[i] / s), -127.0f, 127.0f)) : int8_t(0);
      return;
    }
    case KVCodes::TURBO: {
      const int64_t d = f_.dim;
      thread_local std::vector<float> y;  // [dim] padded copy, rotated in place
      y.assign(size_t(d), 0.0f);
      double nn = 0;
      for (int64_t i = 0; i < hd_; ++i) nn += double(x[i]) * x[i];
      const float norm = float(std::sqrt(nn));
      std::memset(codes, 0, size_t(f_.code_bytes()));
      if (norm == 0.0f) {
        *scale = 0;
        return;
      }
      for (int64_t i = 0; i < hd_; ++i) y[size_t(i)] = x[i] / norm;
      hadamard_rotate_f32(y.data(), int(d), signs_.data());
      double cc = 0;
      for (int64_t j = 0; j < d; ++j) {
        const int idx = cb_->quantize(y[size_t(j)]);
        const double c = cb_->centroids[size_t(idx)];
        cc += c * c;
        put_bits(codes, j, f_.bits, uint32_t(idx));
      }
      *scale = f32_to_f16(norm_corrected_ ? float(norm / std::sqrt(cc)) : norm);
      return;
    }
  }
}

void KVSideCodec::encode_head(const float* x, int64_t h, uint8_t* codes, uint16_t* scale) const {
  if (mean_.empty()) return encode(x, codes, scale);
  thread_local std::vector<float> c;  // [head_dim] centred copy
  c.resize(size_t(hd_));
  const float* m = &mean_[size_t(h * hd_)];
  for (int64_t i = 0; i < hd_; ++i) c[size_t(i)] = x[i] - m[i];
  encode(c.data(), codes, scale);
}

void KVSideCodec::encode_sink(const float* x, int64_t h, uint16_t* out) const {
  thread_local std::vector<float> c, y;  // [head_dim] centred, [dim] in the stored basis
  c.assign(x, x + hd_);
  if (!mean_.empty())
    for (int64_t i = 0; i < hd_; ++i) c[size_t(i)] -= mean_[size_t(h * hd_ + i)];
  y.resize(size_t(f_.dim));
  to_stored_basis(c.data(), 1.0f, y.data());
  for (int64_t i = 0; i < f_.dim; ++i) out[i] = f32_to_bf16(y[size_t(i)]);
}

void KVSideCodec::add_mean(int64_t h, float* out) const {
  if (mean_.empty()) return;
  const float* m = &mean_[size_t(h * hd_)];
  for (int64_t i = 0; i < hd_; ++i) out[i] += m[i];
}

float KVSideCodec::scale_value(uint16_t s) const {
  return f_.scale_bytes() ? f16_to_f32(s) : 1.0f;
}

void KVSideCodec::to_stored_basis(const float* x, float mul, float* out) const {
  for (int64_t i = 0; i < f_.dim; ++i) out[i] = i < hd_ ? x[i] * mul : 0.0f;
  if (f_.rotated()) hadamard_rotate_f32(out, int(f_.dim), signs_.data());
}

void KVSideCodec::from_stored_basis(float* y, float* out) const {
  if (f_.rotated()) hadamard_unrotate_f32(y, int(f_.dim), signs_.data());
  std::memcpy(out, y, size_t(hd_) * 4);
}

void KVSideCodec::dequantize(const uint8_t* codes, uint16_t scale, float* out) const {
  std::vector<float> y(size_t(f_.dim));
  kv_decode_ref(row_, codes, 1, y.data());
  const float s = scale_value(scale);
  for (float& v : y) v *= s;
  from_stored_basis(y.data(), out);
}

// ---- scalar references of the KV kernels (kernels/kv_kernels.h) ----

void kv_decode_ref(const KVRowFormat& f, const uint8_t* codes, int64_t n, float* out) {
  for (int64_t t = 0; t < n; ++t) {
    const uint8_t* row = codes + t * f.row_bytes;
    float* o = out + t * f.dim;
    for (int64_t i = 0; i < f.dim; ++i) {
      switch (f.codes) {
        case KVCodes::F32:
          std::memcpy(&o[i], row + 4 * i, 4);
          break;
        case KVCodes::BF16:
          o[i] = bf16_to_f32(uint16_t(row[2 * i] | row[2 * i + 1] << 8));
          break;
        case KVCodes::F16:
          o[i] = f16_to_f32(uint16_t(row[2 * i] | row[2 * i + 1] << 8));
          break;
        case KVCodes::Q8:
          o[i] = float(int8_t(row[i]));
          break;
        case KVCodes::TURBO:
          o[i] = f.lut[get_bits(row, i, f.bits)];
          break;
      }
    }
  }
}

void kv_scores_ref(const float* q, int64_t R, int64_t ldq, const float* k, const float* scale, int64_t n,
                   int64_t dim, float* s, int64_t lds) {
  for (int64_t r = 0; r < R; ++r)
    for (int64_t t = 0; t < n; ++t) {
      float acc = 0;
      for (int64_t j = 0; j < dim; ++j) acc += q[r * ldq + j] * k[t * dim + j];
      s[r * lds + t] = scale[t] * acc;
    }
}

void kv_scores_q8_ref(const KVRowFormat& f, const uint8_t* codes, const float* scale, int64_t n,
                      const KVQueryQ8& q, int64_t R, float* s, int64_t lds) {
  for (int64_t r = 0; r < R; ++r)
    for (int64_t t = 0; t < n; ++t) {
      const uint8_t* row = codes + t * f.row_bytes;
      int32_t acc = 0;
      for (int64_t j = 0; j < f.dim; ++j)
        acc += int32_t(f.lut_u7[(row[j / 2] >> (4 * (j % 2))) & 15]) * q.q[r * q.ldq + j];
      s[r * lds + t] = scale[t] * q.mul[r] * float(acc - 64 * q.sum[r]);
    }
}

float kv_row_max_ref(const float* s, int64_t n) {
  float m = s[0];
  for (int64_t t = 1; t < n; ++t) m = std::max(m, s[t]);
  return m;
}

float kv_exp_sum_ref(float* s, int64_t n, float m) {
  float sum = 0;
  for (int64_t t = 0; t < n; ++t) sum += (s[t] = std::exp(s[t] - m));
  return sum;
}

void kv_accumulate_ref(const float* p, int64_t R, int64_t ldp, const float* v, const float* scale, int64_t n,
                       int64_t dim, float* o, int64_t ldo) {
  for (int64_t r = 0; r < R; ++r)
    for (int64_t t = 0; t < n; ++t) {
      const float w = p[r * ldp + t] * scale[t];
      for (int64_t j = 0; j < dim; ++j) o[r * ldo + j] += w * v[t * dim + j];
    }
}

void kv_scores_codes_ref(const KVRowFormat& f, const uint8_t* codes, const float* q, int64_t R, int64_t ldq,
                         const float* scale, int64_t n, float* s, int64_t lds) {
  std::vector<float> k(size_t(n * f.dim));
  kv_decode_ref(f, codes, n, k.data());
  kv_scores_ref(q, R, ldq, k.data(), scale, n, f.dim, s, lds);
}

void kv_accumulate_codes_ref(const KVRowFormat& f, const uint8_t* codes, const float* p, int64_t R,
                             int64_t ldp, const float* scale, int64_t n, float* o, int64_t ldo) {
  std::vector<float> v(size_t(n * f.dim));
  kv_decode_ref(f, codes, n, v.data());
  kv_accumulate_ref(p, R, ldp, v.data(), scale, n, f.dim, o, ldo);
}

void kv_accumulate_q8_ref(const KVRowFormat& f, const uint8_t* codes, const float* p, int64_t R, int64_t ldp,
                          const float* scale, int64_t n, float* o, int64_t ldo) {
  if (n > 512) fail("kv_accumulate_q8_ref: {} tokens in one call; at most 512 keep the sums in int32", n);
  std::vector<int32_t> u(static_cast<size_t>(n));
  std::vector<int32_t> acc(static_cast<size_t>(f.dim));
  const int per_byte = 8 / f.bits, mask = (1 << f.bits) - 1;
  for (int64_t r = 0; r < R; ++r) {
    const float* pr = p + r * ldp;
    float m = 0;
    for (int64_t t = 0; t < n; ++t) {
      const float w = pr[t] * scale[t];
      m = w > m ? w : m;
    }
    if (!(m > 0.0f) || std::isinf(m)) continue;
    const float inv = 65535.0f / m;
    for (int64_t t = 0; t < n; ++t) {
      float x = pr[t] * scale[t] * inv;
      x = x > 0.0f ? x : 0.0f;  // NaN -> 0
      x = x < 65535.0f ? x : 65535.0f;
      u[size_t(t)] = int32_t(std::nearbyint(x));
    }
    std::fill(acc.begin(), acc.end(), 0);
    for (int64_t t = 0; t < n; ++t) {
      const uint8_t* row = codes + t * f.row_bytes;
      for (int64_t j = 0; j < f.dim; ++j) {
        const int idx = (row[j / per_byte] >> (f.bits * (j % per_byte))) & mask;
        acc[size_t(j)] += u[size_t(t)] * (int32_t(f.lut_u7[idx]) - 64);
      }
    }
    const float factor = (m / 65535.0f) * f.lut_step;
    for (int64_t j = 0; j < f.dim; ++j)
      o[r * ldo + j] = std::fma(factor, float(acc[size_t(j)]), o[r * ldo + j]);
  }
}

}  // namespace tqlm
