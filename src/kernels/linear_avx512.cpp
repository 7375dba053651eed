// Linear-layer and KV-attention kernels for the avx512 family (see linear_impl.h; compile flags set in
// CMakeLists.txt).
#define TQLM_VB 64
#define TQLM_ISA_NS isa_avx512
#define TQLM_ISA_NAME "avx512"
#include "kernels/linear_impl.h"
// after linear_impl.h: uses its vector types
#include "kernels/kv_impl.h"
