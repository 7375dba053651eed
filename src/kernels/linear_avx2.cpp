// Linear-layer and KV-attention kernels for the avx2 family (see linear_impl.h; compile flags set in
// CMakeLists.txt).
#define TQLM_VB 32
#define TQLM_ISA_NS isa_avx2
#define TQLM_ISA_NAME "avx2"
#include "kernels/linear_impl.h"
// after linear_impl.h: uses its vector types
#include "kernels/kv_impl.h"
