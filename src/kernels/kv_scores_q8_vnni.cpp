// The integer key scores of kv_scores_q8.h and value sums of kv_values_q8.h for CPUs with AVX-512 VNNI: one
// vpdpbusd per 64 products in place of vpmaddubsw + vpmaddwd + vpaddd. The same integers, so the same scores
// bit for bit; kv_kernels() puts it into the avx512 family when the CPU has VNNI (family name "avx512vnni").
#include <immintrin.h>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/kv_kernels.h"

#define TQLM_VB 64

namespace tqlm::isa_avx512vnni_kv {

#include "kernels/kv_scores_q8.h"
#include "kernels/kv_values_q8.h"

}  // namespace tqlm::isa_avx512vnni_kv
