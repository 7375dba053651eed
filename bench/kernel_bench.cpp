// Decode speed of the integer linear kernels alone: y = W x for one token (or --tokens T) over stacks of MLX
// affine matrices larger than the caches, for each bit width and every int8 family this CPU has, single
// thread. Prints GB/s of weight bytes (codes + scales + biases) read per second.
//
//   build/tqlm_kernel_bench [--in 3072] [--out 1536] [--mb 512] [--reps 3] [--tokens 1] [--gs 64] [--offset
//   0]
// --offset B puts every tensor B bytes past a 64-byte boundary (mx.save_safetensors files: 6).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "kernels/qact.h"
#include "kernels/qlinear.h"
#include "kernels/qlinear_kernels.h"
#include "kernels/qlinear_pack.h"

using namespace tqlm;

int main(int argc, char** argv) {
  int64_t in = 3072, out = 1536, mb = 512, reps = 3, T = 1, gs = 64, offset = 0, only_bits = 0, threads = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const int64_t v = std::atoll(argv[i + 1]);
    int64_t* opt = a == "--in"        ? &in
                   : a == "--out"     ? &out
                   : a == "--mb"      ? &mb
                   : a == "--reps"    ? &reps
                   : a == "--tokens"  ? &T
                   : a == "--gs"      ? &gs
                   : a == "--offset"  ? &offset
                   : a == "--bits"    ? &only_bits
                   : a == "--threads" ? &threads
                                      : nullptr;
    if (!opt) {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
    *opt = v;
  }
  std::mt19937 rng(1);
  std::vector<float> x(size_t(T * in));
  std::normal_distribution<float> nd;
  for (auto& v : x) v = nd(rng);
  QActs xa;
  quantize_acts_q8(x.data(), T, in, xa);
  std::unique_ptr<ThreadPool> pool = threads > 1 ? std::make_unique<ThreadPool>(int(threads)) : nullptr;
  std::printf("in %ld out %ld group %ld tokens %ld offset %ld, ~%ld MB of weights per width, %ld thread(s)\n",
              long(in), long(out), long(gs), long(T), long(offset), long(mb), long(threads));
  std::printf("%5s %12s %10s %8s\n", "bits", "family", "GB/s", "ms/mat");
  for (int bits : {2, 3, 4, 5, 6, 8}) {
    if (only_bits && bits != only_bits) continue;
    const int64_t code_bytes = out * in * bits / 8, sb_bytes = 2 * 2 * out * (in / gs);
    const int64_t n = std::max<int64_t>(1, mb * 1000000 / (code_bytes + sb_bytes));
    std::vector<uint8_t> codes_store(size_t(n * code_bytes + 192)), sb_store(size_t(n * sb_bytes + 128));
    uint8_t* codes_p =
        codes_store.data() + (64 - reinterpret_cast<uintptr_t>(codes_store.data()) % 64) % 64 + offset;
    uint8_t* sb_p = sb_store.data() + (64 - reinterpret_cast<uintptr_t>(sb_store.data()) % 64) % 64 + offset;
    const size_t codes_n = size_t(n * code_bytes), sb_n = size_t(n * sb_bytes);
    for (size_t i = 0; i < codes_n; i += 8) {
      const uint64_t r = (uint64_t(rng()) << 32) | rng();
      std::memcpy(codes_p + i, &r, std::min<size_t>(8, codes_n - i));
    }
    for (size_t i = 0; i < sb_n; i += 2) {
      const uint16_t h = f32_to_bf16(nd(rng) * 0.01f);
      std::memcpy(sb_p + i, &h, 2);
    }
    std::vector<Linear> mats(static_cast<size_t>(n));
    for (int64_t m = 0; m < n; ++m) {
      Linear& l = mats[size_t(m)];
      l.name = "bench";
      l.out = out, l.in = in, l.bits = bits, l.group_size = int(gs), l.sdtype = DType::BF16;
      l.wq = reinterpret_cast<const uint32_t*>(codes_p + m * code_bytes);
      l.scales = sb_p + m * sb_bytes;
      l.biases = sb_p + m * sb_bytes + sb_bytes / 2;
    }
    std::vector<float> y(size_t(T * out)), scratch(size_t(qlinear_scratch_floats(mats[0])));
    for (const char* isa : {"scalar", "avx2", "avxvnni", "avx512vnni", "avx512vbmi"}) {
      const QLinearKernels* k = qlinear_kernels_for(isa);
      if (!k || std::string(isa) == "scalar") continue;
      if (threads > 1 && k != &qlinear_kernels()) continue;  // linear_q8 runs the dispatched family
      double best = 1e30;
      for (int64_t rep = 0; rep < reps; ++rep) {
        const auto t0 = std::chrono::steady_clock::now();
        if (threads > 1)
          for (const Linear& l : mats) linear_q8(l, xa, y.data(), *pool);
        else
          for (const Linear& l : mats) k->rows(l, xa, y.data(), 0, out, scratch.data());
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
      std::printf("%5d %12s %10.2f %8.3f\n", bits, isa, double(n * (code_bytes + sb_bytes)) / best / 1e9,
                  1e3 * best / double(n));
    }
    // The packed 16-row tile layout (qlinear_pack.h), for every family with a kernel for it.
    if (!qlinear_packable(mats[0])) continue;
    std::vector<Linear> packed;
    for (const char* isa : {"avx2", "avxvnni", "avx512vnni", "avx512vbmi"}) {
      const QLinearKernels* k = qlinear_kernels_for(isa);
      if (!k || !k->packed_rows) continue;
      if (threads > 1 && k != &qlinear_kernels()) continue;  // linear_q8 runs the dispatched family
      if (packed.empty())
        for (const Linear& l : mats) packed.push_back(qlinear_pack(l));
      double best = 1e30;
      for (int64_t rep = 0; rep < reps; ++rep) {
        const auto t0 = std::chrono::steady_clock::now();
        if (threads > 1)
          for (const Linear& l : packed) linear_q8(l, xa, y.data(), *pool);
        else
          for (const Linear& l : packed) k->packed_rows(l, xa, y.data(), 0, out);
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
      std::printf("%5d %12s %10.2f %8.3f\n", bits, (std::string(isa) + "+p16").c_str(),
                  double(n * (code_bytes + sb_bytes)) / best / 1e9, 1e3 * best / double(n));
    }
  }
  return 0;
}
