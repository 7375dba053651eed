#include <cstdlib>
#include <string>

#include "core/error.h"
#include "kernels/kv_kernels.h"
#include "kernels/linear_kernels.h"

namespace tqlm {

const LinearKernels* linear_kernels_for(const std::string& isa) {
  __builtin_cpu_init();
  if (isa == "scalar") return &isa_sse2::kernels;
  if (isa == "avx2")
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? &isa_avx2::kernels : nullptr;
  if (isa == "avx512")
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                   __builtin_cpu_supports("avx512vl")
               ? &isa_avx512::kernels
               : nullptr;
  return nullptr;
}

const LinearKernels& linear_kernels() {
  static const LinearKernels* k = [] {
    if (const char* env = std::getenv("TQLM_ISA")) {
      const LinearKernels* f = linear_kernels_for(env);
      if (!f) fail("TQLM_ISA={} is not available on this CPU (scalar, avx2, avx512)", env);
      return f;
    }
    for (const char* isa : {"avx512", "avx2"})
      if (const LinearKernels* f = linear_kernels_for(isa)) return f;
    return &isa_sse2::kernels;
  }();
  return *k;
}

namespace {
const KVKernels kv_reference = {
    "reference",    kv_decode_ref,     kv_scores_ref,           kv_scores_q8_ref,     kv_row_max_ref,
    kv_exp_sum_ref, kv_accumulate_ref, kv_accumulate_codes_ref, kv_accumulate_q8_ref, kv_scores_codes_ref};
}

const KVKernels* kv_kernels_for(const char* isa) {
  const std::string s = isa;
  if (s == "reference") return &kv_reference;
  if (s == "sse2" || s == "scalar") return &isa_sse2::kv_kernels;
  if (s == "avx512vnni") {
    static const KVKernels vnni = [] {
      KVKernels k = isa_avx512::kv_kernels;
      k.isa = "avx512vnni";
      k.scores_q8 = isa_avx512vnni_kv::scores_q8;
      k.accumulate_q8 = isa_avx512vnni_kv::accumulate_q8;
      k.int8_values_pay = true;
      return k;
    }();
    return linear_kernels_for("avx512") && __builtin_cpu_supports("avx512vnni") ? &vnni : nullptr;
  }
  const LinearKernels* l = linear_kernels_for(s);
  if (!l) return nullptr;
  return s == "avx2" ? &isa_avx2::kv_kernels : s == "avx512" ? &isa_avx512::kv_kernels : nullptr;
}

const KVKernels& kv_kernels() {
  static const KVKernels* k = [] {
    const std::string isa = linear_kernels().isa;
    if (isa == "avx512")
      if (const KVKernels* v = kv_kernels_for("avx512vnni")) return v;
    return kv_kernels_for(isa.c_str());
  }();
  return *k;
}

}  // namespace tqlm
