#include "quant/source.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include "core/error.h"
#include "quant/affine.h"
#include "quant/fp8.h"

namespace tqlm {

namespace {

// Drops the source pages of [p, p + n) from this process's resident set once they have been read (they
// stay in the page cache): keeps RSS bounded by a few tensors however large the checkpoint is.
void release(const void* p, size_t n) {
  const uintptr_t page = uintptr_t(::sysconf(_SC_PAGESIZE));
  uintptr_t a = (uintptr_t(p) + page - 1) & ~(page - 1), b = (uintptr_t(p) + n) & ~(page - 1);
  if (b > a) ::madvise(reinterpret_cast<void*>(a), b - a, MADV_DONTNEED);
}

}  // namespace

const TensorView* Source::find_expert(const std::string& module, int64_t e, std::string* mod_out) const {
  const size_t p = module.find(".switch_mlp.");
  const std::string prefix = module.substr(0, p), proj = module.substr(p + 12);
  const char* hf = proj == "gate_proj" ? "w1" : proj == "up_proj" ? "w3" : "w2";
  for (const std::string& leaf : {proj, std::string(hf)}) {
    std::string m = prefix + ".experts." + std::to_string(e) + "." + leaf;
    if (const TensorView* t = ck_.tensors().find(m + ".weight")) {
      *mod_out = m;
      return t;
    }
  }
  return nullptr;
}

void Source::read(const std::string& module, int64_t e, int64_t r0, int64_t nr, int64_t rows, int64_t cols,
                  DType out_dtype, std::vector<uint8_t>& buf) {
  std::string mod = module;
  int64_t slice = -1;  // expert index inside a stacked source tensor
  if (e >= 0) {
    if (ck_.tensors().has(module + ".weight"))
      slice = e;  // already stacked (MLX, or HF pre-stacked)
    else if (!find_expert(module, e, &mod))
      fail("{}: no tensor for expert {} of '{}'", ck_.path(), e, module);
  }
  const size_t n = size_t(nr * cols);
  buf.resize(n * dtype_size(out_dtype));
  const int64_t first_row = (slice >= 0 ? slice * rows : 0) + r0;  // in the source's flattened rows
  if (ck_.is_quantized(mod)) {
    QuantizedWeight q = ck_.quantized(mod);
    requantized = true;
    const int64_t words = cols * q.bits / 32, groups = cols / q.group_size;
    const auto* wq =
        static_cast<const uint32_t*>(static_cast<const void*>(q.weight->data)) + first_row * words;
    const size_t ss = dtype_size(q.scales->dtype);
    const uint8_t* s = q.scales->data + size_t(first_row * groups) * ss;
    const uint8_t* b = q.biases->data + size_t(first_row * groups) * ss;
    std::vector<float> f(n);
    affine_dequantize_f32(wq, s, b, q.scales->dtype, nr, cols, q.bits, q.group_size, f.data());
    release(wq, size_t(nr * words * 4));
    store(f, out_dtype, buf);
    return;
  }
  const TensorView& t = ck_.tensors().get(mod + ".weight");
  const size_t off = size_t(first_row * cols);
  if (shape_numel(t.shape) < int64_t(off + n))
    fail("{}: '{}' has shape {}, too small", ck_.path(), t.name, shape_str(t.shape));
  if (t.dtype == DType::F8_E4M3 || t.dtype == DType::F8_E5M2) {
    if (slice >= 0 || r0 % kFp8Block)
      fail("{}: '{}': stacked FP8 experts are not supported", ck_.path(), t.name);
    const TensorView& si = ck_.tensors().get(mod + ".weight_scale_inv");
    // the rows' slice of the weight and of its block scales (r0 is a multiple of 128)
    TensorView wv = t, sv = si;
    wv.shape = {nr, cols};
    wv.data = t.data + off;
    wv.nbytes = n;
    const int64_t bc = (cols + kFp8Block - 1) / kFp8Block;
    sv.shape = {(nr + kFp8Block - 1) / kFp8Block, bc};
    if (si.shape.size() != 2 || si.shape[1] != bc || (r0 / kFp8Block + sv.shape[0]) > si.shape[0])
      fail("{}: '{}' has shape {}, which does not match weight {}", ck_.path(), si.name, shape_str(si.shape),
           shape_str(t.shape));
    sv.data = si.data + size_t((r0 / kFp8Block) * bc) * dtype_size(si.dtype);
    std::vector<uint16_t> bf(n);
    fp8_block_dequantize(wv, sv, DType::BF16, bf.data());  // mlx_lm: product in f32, rounded to bf16
    release(wv.data, n);
    std::vector<float> f(n);
    for (size_t i = 0; i < n; ++i) f[i] = bf16_to_f32(bf[i]);
    store(f, out_dtype, buf);
    return;
  }
  if (!dtype_is_float(t.dtype))
    fail("{}: '{}' has non-float dtype {}", ck_.path(), t.name, dtype_name(t.dtype));
  const uint8_t* first = t.data + off * dtype_size(t.dtype);
  if (t.dtype == out_dtype) {
    std::memcpy(buf.data(), first, n * dtype_size(t.dtype));
  } else {
    std::vector<float> f(n);
    for (size_t i = 0; i < n; ++i) f[i] = load_as_f32(t.data, t.dtype, off + i);
    store(f, out_dtype, buf);
  }
  release(first, n * dtype_size(t.dtype));
}

void Source::store(const std::vector<float>& f, DType t, std::vector<uint8_t>& buf) {
  buf.resize(f.size() * dtype_size(t));
  for (size_t i = 0; i < f.size(); ++i) {
    if (t == DType::F32)
      std::memcpy(&buf[i * 4], &f[i], 4);
    else {
      const uint16_t h = t == DType::BF16 ? f32_to_bf16(f[i]) : f32_to_f16(f[i]);
      std::memcpy(&buf[i * 2], &h, 2);
    }
  }
}

}  // namespace tqlm
