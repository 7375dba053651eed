// Integer linear kernels, avx2 family (see qlinear_impl.h; compile flags set in CMakeLists.txt).
#define QL_NS qisa_avx2
#define QL_NAME "avx2"
#define QL_DOT 0
#include "kernels/qlinear_impl.h"
