// Integer linear kernels, avx512vnni family (see qlinear_impl.h; compile flags set in CMakeLists.txt).
#define QL_NS qisa_avx512vnni
#define QL_NAME "avx512vnni"
#define QL_DOT 2
#include "kernels/qlinear_impl.h"
