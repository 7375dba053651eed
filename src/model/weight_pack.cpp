// pack_weights: the load-time repack of quantized Linears into the int8 kernels' tile layout.
#include <chrono>
#include <vector>

#include "core/dtype.h"
#include "core/mapped_file.h"
#include "kernels/qlinear.h"
#include "kernels/qlinear_pack.h"
#include "model/weights.h"

namespace tqlm {

namespace {
// The original bytes of a packed Linear leave the resident set (MLX layout still readable: the f32 path, the
// embedding rows of a tied head, a scalar fallback read it back from the page cache), so packing does not
// double the memory a model holds.
void release_original(const Linear& l) {
  if (l.parts) {
    for (const Linear& p : *l.parts) release_original(p);
    return;
  }
  const int64_t n = l.out * l.n_experts, groups = l.in / l.group_size;
  release_mapped_pages(l.wq, size_t(n * l.in * l.bits / 8));
  release_mapped_pages(l.scales, size_t(n * groups) * dtype_size(l.sdtype));
  release_mapped_pages(l.biases, size_t(n * groups) * dtype_size(l.sdtype));
}

PackProgress& pack_progress() {
  static PackProgress fn;
  return fn;
}
}  // namespace

void set_pack_progress(PackProgress fn) {
  pack_progress() = std::move(fn);
}

void pack_weights(ModelWeights& w, ThreadPool& pool) {
  if (!qlinear_packing()) return;
  std::vector<Linear*> todo;
  for (LayerWeights& lw : w.layers)
    for (Linear* l : {&lw.q, &lw.k, &lw.v, &lw.o, &lw.gate, &lw.up, &lw.down, &lw.router, &lw.exp_gate,
                      &lw.exp_up, &lw.exp_down})
      if (l->present() && qlinear_packable(*l)) todo.push_back(l);
  if (w.lm_head.present() && qlinear_packable(w.lm_head)) todo.push_back(&w.lm_head);
  auto code_bytes = [](const Linear& l) { return double(l.out * l.n_experts) * double(l.in * l.bits / 8); };
  double total = 0, done = 0;
  for (const Linear* l : todo) total += code_bytes(*l);
  const auto t0 = std::chrono::steady_clock::now();
  for (Linear* l : todo) {
    *l = qlinear_pack(*l, &pool);
    release_original(*l);
    done += code_bytes(*l);
    if (pack_progress())
      pack_progress()(done, total,
                      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
}

}  // namespace tqlm
