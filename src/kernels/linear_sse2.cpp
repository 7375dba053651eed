// Linear-layer and KV-attention kernels for the scalar family (see linear_impl.h; compile flags set in
// CMakeLists.txt).
#define TQLM_VB 16
#define TQLM_ISA_NS isa_sse2
#define TQLM_ISA_NAME "scalar"
#include "kernels/linear_impl.h"
// after linear_impl.h: uses its vector types
#include "kernels/kv_impl.h"
