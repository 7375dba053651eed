// Integer linear kernels, avxvnni family (see qlinear_impl.h; compile flags set in CMakeLists.txt).
#define QL_NS qisa_avxvnni
#define QL_NAME "avxvnni"
#define QL_DOT 1
#include "kernels/qlinear_impl.h"
