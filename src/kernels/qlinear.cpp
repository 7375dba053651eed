#include "kernels/qlinear.h"

#include <cpuid.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <vector>

#include "core/error.h"
#include "kernels/linear.h"
#include "kernels/linear_kernels.h"
#include "kernels/qlinear_kernels.h"

namespace tqlm {

namespace {
bool cpu_has_avx_vnni() {  // CPUID.(EAX=7, ECX=1):EAX bit 4; asked directly (older compilers lack the name)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return false;
  return (a >> 4) & 1u;
}

std::atomic<int> g_path{-1};  // -1: not read from the environment yet
// Tiles per chunk of a parallel loop, at most: a chunk's first tile starts cold (the kernels prefetch the
// next tile while they work, but a thread's next chunk is elsewhere), so chunks are long; about 4 per thread
// remain for balance. 8 -> 32 took 2-bit expert matrices from 22 to 29 GB/s at 2 threads
// (bench/kernel_bench.cpp).
constexpr int64_t kGrain = 32;
}  // namespace

const QLinearKernels* qlinear_kernels_for(const std::string& isa) {
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
  if (isa == "scalar") return &qisa_ref::kernels;
  if (isa == "avx2") return avx2 ? &qisa_avx2::kernels : nullptr;
  if (isa == "avxvnni") return avx2 && cpu_has_avx_vnni() ? &qisa_avxvnni::kernels : nullptr;
  const bool vnni512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                       __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
  if (isa == "avx512vnni") return vnni512 ? &qisa_avx512vnni::kernels : nullptr;
  if (isa == "avx512vbmi")
    return vnni512 && __builtin_cpu_supports("avx512vbmi") ? &qisa_avx512vbmi::kernels : nullptr;
  return nullptr;
}

// TQLM_INT8_ISA names a family; otherwise TQLM_ISA=scalar|avx2 (the f32 families) forces the same level
// here (avx2: without VNNI), and the best family this CPU has is used.
const QLinearKernels& qlinear_kernels() {
  static const QLinearKernels* k = [] {
    if (const char* env = std::getenv("TQLM_INT8_ISA")) {
      const QLinearKernels* f = qlinear_kernels_for(env);
      if (!f)
        fail("TQLM_INT8_ISA={} is not available on this CPU (scalar, avx2, avxvnni, avx512vnni, avx512vbmi)",
             env);
      return f;
    }
    const std::string forced = linear_kernels().isa;
    if (forced == "scalar") return &qisa_ref::kernels;
    if (forced == "avx2" && std::getenv("TQLM_ISA")) return &qisa_avx2::kernels;
    for (const char* isa : {"avx512vbmi", "avx512vnni", "avxvnni", "avx2"})
      if (const QLinearKernels* f = qlinear_kernels_for(isa)) return f;
    return &qisa_ref::kernels;
  }();
  return *k;
}

LinearPath parse_linear_path(const std::string& s) {
  if (s == "int8") return LinearPath::int8;
  if (s == "f32") return LinearPath::f32;
  fail("linear path '{}' is not one of int8, f32", s);
}

const char* linear_path_name(LinearPath p) {
  return p == LinearPath::int8 ? "int8" : "f32";
}

LinearPath linear_path() {
  int p = g_path.load();
  if (p < 0) {
    const char* env = std::getenv("TQLM_LINEAR");
    const std::string v = env ? env : "";
    if (!v.empty() && v != "int8" && v != "f32") fail("TQLM_LINEAR={} is not one of int8, f32", v);
    p = int(v.empty() ? LinearPath::int8 : parse_linear_path(v));
    g_path.store(p);
  }
  return LinearPath(p);
}

void set_linear_path(LinearPath p) {
  g_path.store(int(p));
}

std::string linear_kernel_family() {
  if (linear_path() == LinearPath::f32) return std::string("f32 ") + linear_kernels().isa;
  return std::string("int8 ") + qlinear_kernels().isa +
         (qlinear_packing() ? ", packed" : "");
}

bool qlinear_packing() {
  static const bool on = [] {
    const char* env = std::getenv("TQLM_PACK");
    const std::string v = env ? env : "";
    if (!v.empty() && v != "0" && v != "1") fail("TQLM_PACK={} is not one of 0, 1", v);
    return v != "0" && qlinear_kernels().packed_rows != nullptr;
  }();
  return on;
}

namespace {

// Rows per tile of w for family k: 16 where it reads the packed layout, else 8.
int64_t tile_rows(const Linear& w, const QLinearKernels& k) {
  return w.packed && k.packed_rows ? 16 : 8;
}

// Rows [r0, r1) of w against xa through k, packed where it can.
void run_rows(const QLinearKernels& k, const Linear& w, const QActs& xa, float* y, int64_t r0, int64_t r1,
              float* scratch) {
  if (w.packed && k.packed_rows) return k.packed_rows(w, xa, y, r0, r1);
  k.rows(w, xa, y, r0, r1, scratch);
}

}  // namespace

void linear_q8(const Linear& w, const QActs& xa, float* y, ThreadPool& pool) {
  linear_q8_grouped({{&w, &xa, y}}, pool);
}

void linear_q8_grouped(const std::vector<QLinearJob>& jobs, ThreadPool& pool) {
  const QLinearKernels& k = qlinear_kernels();
  std::vector<int64_t> first(jobs.size() + 1, 0);  // first[j]: job j's first tile in the joint numbering
  int64_t need = 0, rows8 = 0;
  for (size_t j = 0; j < jobs.size(); ++j) {
    const Linear& w = *jobs[j].w;
    if (!w.quantized() || w.parts || w.n_experts != 1 || jobs[j].xa->in != w.in)
      fail("linear_q8: {} is not a quantized single matrix of width {}", w.name, jobs[j].xa->in);
    const int64_t tr = tile_rows(w, k);
    first[j + 1] = first[j] + (w.out + tr - 1) / tr;
    rows8 += (w.out + 7) / 8;
    need = std::max(need, qlinear_scratch_floats(w));
  }
  const int64_t tiles = first.back();
  // kGrain is in 8-row tiles; a chunk of 16-row tiles covers as many rows with half as many
  const int64_t grain_rows = std::max<int64_t>(1, std::min<int64_t>(kGrain, rows8 / (4 * pool.size())));
  const int64_t grain = std::max<int64_t>(1, grain_rows * tiles / std::max<int64_t>(1, rows8));
  pool.parallel_for(tiles, grain, [&](int64_t t0, int64_t t1, int) {
    thread_local std::vector<float> scratch;
    if (scratch.size() < size_t(need)) scratch.resize(size_t(need));
    size_t j = size_t(std::upper_bound(first.begin(), first.end(), t0) - first.begin()) - 1;
    for (; t0 < t1; ++j) {  // the chunk's tiles, job by job
      const int64_t e = std::min(t1, first[j + 1]);
      const Linear& w = *jobs[j].w;
      const int64_t tr = tile_rows(w, k);
      run_rows(k, w, *jobs[j].xa, jobs[j].y, (t0 - first[j]) * tr, std::min(w.out, (e - first[j]) * tr),
               scratch.data());
      t0 = e;
    }
  });
}

void linear_many(const std::vector<LinearOut>& outs, LinearInput& x, ThreadPool& pool) {
  bool grouped = linear_path() == LinearPath::int8;
  for (const LinearOut& o : outs) grouped = grouped && o.w->quantized() && !o.w->parts && o.w->n_experts == 1;
  if (!grouped) {
    for (const LinearOut& o : outs) linear(*o.w, x, o.y, pool);
    return;
  }
  if (!x.quantized) {
    quantize_acts_q8(x.x, x.T, x.in, *x.qa, &pool);
    x.quantized = true;
  }
  std::vector<QLinearJob> jobs;
  for (const LinearOut& o : outs) jobs.push_back({o.w, x.qa, o.y});
  linear_q8_grouped(jobs, pool);
}

void linear(const Linear& w, LinearInput& x, float* y, ThreadPool& pool) {
  if (linear_path() == LinearPath::f32 || !w.quantized()) return linear_f32(w, x.x, x.T, y, pool);
  if (!x.quantized) {
    quantize_acts_q8(x.x, x.T, x.in, *x.qa, &pool);
    x.quantized = true;
  }
  linear_q8(w, *x.qa, y, pool);
}

}  // namespace tqlm
