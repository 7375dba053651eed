// Instruction-set specific kernels for linear layers, chosen once at run time from CPUID; TQLM_ISA=
// scalar|avx2|avx512 forces a family. Every family computes the same thing as the scalar reference
// (linear_rows_f32 in linear.cpp) up to summation order.
#pragma once

#include <cstdint>
#include <string>

#include "kernels/linear_weight.h"

namespace tqlm {

struct LinearKernels {
  const char* isa;
  // y[t, r] for t < T, r in [r0, r1): rows of a single-expert Linear against f32 activations x [T, in].
  // scratch: at least 7 * in + 64 floats.
  void (*rows)(const Linear& w, const float* x, int64_t T, float* y, int64_t r0, int64_t r1, float* scratch);
};

const LinearKernels& linear_kernels();                            // the dispatched family
const LinearKernels* linear_kernels_for(const std::string& isa);  // nullptr if this CPU lacks it

namespace isa_sse2 {
extern const LinearKernels kernels;
}
namespace isa_avx2 {
extern const LinearKernels kernels;
}
namespace isa_avx512 {
extern const LinearKernels kernels;
}

}  // namespace tqlm
