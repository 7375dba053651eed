#include "quant/fp8.h"

#include "core/error.h"

namespace tqlm {

void fp8_block_dequantize(const TensorView& w, const TensorView& s, DType out_dtype, void* out) {
  if (w.dtype != DType::F8_E4M3 && w.dtype != DType::F8_E5M2)
    fail("'{}': expected an F8_E4M3 or F8_E5M2 weight, got {}", w.name, dtype_name(w.dtype));
  if (w.shape.size() != 2)
    fail("'{}': FP8 block dequantization needs a 2-D weight, got {}", w.name, shape_str(w.shape));
  const int64_t rows = w.shape[0], cols = w.shape[1];
  const int64_t br = (rows + kFp8Block - 1) / kFp8Block, bc = (cols + kFp8Block - 1) / kFp8Block;
  if (s.shape != Shape{br, bc})
    fail("'{}': block scales must have shape {} for weight {}, got {}", s.name, shape_str({br, bc}),
         shape_str(w.shape), shape_str(s.shape));
  if (!dtype_is_float(s.dtype))
    fail("'{}': block scales must be a float type, got {}", s.name, dtype_name(s.dtype));
  if (out_dtype != DType::F32 && out_dtype != DType::BF16 && out_dtype != DType::F16)
    fail("fp8_block_dequantize: output dtype {} unsupported", dtype_name(out_dtype));
  float lut[256];
  for (int i = 0; i < 256; ++i)
    lut[i] = w.dtype == DType::F8_E4M3 ? fp8_e4m3_to_f32(uint8_t(i)) : fp8_e5m2_to_f32(uint8_t(i));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      const float scale = load_as_f32(s.data, s.dtype, size_t((i / kFp8Block) * bc + j / kFp8Block));
      const float v = lut[w.data[i * cols + j]] * scale;
      const size_t k = size_t(i * cols + j);
      if (out_dtype == DType::F32)
        static_cast<float*>(out)[k] = v;
      else if (out_dtype == DType::BF16)
        static_cast<uint16_t*>(out)[k] = f32_to_bf16(v);
      else
        static_cast<uint16_t*>(out)[k] = f32_to_f16(v);
    }
}

}  // namespace tqlm
