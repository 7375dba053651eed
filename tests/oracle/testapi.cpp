// C entry points for the Python oracle tests (loaded with ctypes): they run tqlm's own code on buffers
// that the tests also hand to mlx / numpy, so results are compared in memory. Returns 0 on success;
// on failure -1 and the message from tqlm_last_error().
#include <cstdint>
#include <cstdlib>
#include <string>

#include <algorithm>
#include <cstring>
#include "core/dtype.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "kernels/qlinear.h"
#include "kv/codebook.h"
#include "model/model.h"
#include "quant/affine.h"
#include "quant/fp8.h"
#include "runtime/scheduler.h"

namespace {
thread_local std::string g_err;

tqlm::DType parse_dtype(const char* name) {
  auto t = tqlm::dtype_from_name(name ? name : "");
  if (!t) tqlm::fail("unknown dtype '{}'", name ? name : "(null)");
  return *t;
}

template <typename F>
int guarded(F f) {
  try {
    f();
    return 0;
  } catch (const std::exception& e) {
    g_err = e.what();
    return -1;
  }
}
}  // namespace

extern "C" {

const char* tqlm_last_error() {
  return g_err.c_str();
}

int tqlm_affine_quantize(const void* w, const char* dtype, int64_t rows, int64_t cols, int bits,
                         int group_size, uint32_t* wq, void* scales, void* biases) {
  return guarded([&] {
    tqlm::affine_quantize(w, parse_dtype(dtype), rows, cols, bits, group_size, wq, scales, biases);
  });
}

int tqlm_affine_dequantize(const uint32_t* wq, const void* scales, const void* biases, const char* dtype,
                           int64_t rows, int64_t cols, int bits, int group_size, void* out) {
  return guarded([&] {
    tqlm::affine_dequantize(wq, scales, biases, parse_dtype(dtype), rows, cols, bits, group_size, out);
  });
}

// f32 -> F16 / BF16 bit patterns (uint16) with round-to-nearest-even.
int tqlm_f32_to_half(const float* in, int64_t n, const char* dtype, uint16_t* out) {
  return guarded([&] {
    tqlm::DType t = parse_dtype(dtype);
    for (int64_t i = 0; i < n; ++i)
      out[i] = t == tqlm::DType::BF16 ? tqlm::f32_to_bf16(in[i]) : tqlm::f32_to_f16(in[i]);
  });
}

// Decodes n elements of a float dtype (F16, BF16, F8_E4M3, F8_E5M2, F64, F32) to f32.
int tqlm_decode_f32(const void* in, int64_t n, const char* dtype, float* out) {
  return guarded([&] {
    tqlm::DType t = parse_dtype(dtype);
    for (int64_t i = 0; i < n; ++i) out[i] = tqlm::load_as_f32(in, t, size_t(i));
  });
}

int tqlm_fp8_block_dequantize(const uint8_t* w, int64_t rows, int64_t cols, const void* scale_inv,
                              const char* scale_dtype, const char* out_dtype, void* out) {
  return guarded([&] {
    tqlm::TensorView wv{"w", tqlm::DType::F8_E4M3, {rows, cols}, w, size_t(rows * cols)};
    tqlm::DType sd = parse_dtype(scale_dtype);
    int64_t br = (rows + 127) / 128, bc = (cols + 127) / 128;
    tqlm::TensorView sv{"scale_inv",
                        sd,
                        {br, bc},
                        static_cast<const uint8_t*>(scale_inv),
                        size_t(br * bc) * tqlm::dtype_size(sd)};
    tqlm::fp8_block_dequantize(wv, sv, parse_dtype(out_dtype), out);
  });
}

}  // extern "C"

extern "C" {
// Copies tensor `name` of the checkpoint at `path` (file or directory) into out (capacity bytes).
// Returns the tensor's byte size, or -1 on error.
int64_t tqlm_read_tensor(const char* path, const char* name, void* out, int64_t capacity) {
  int64_t n = -1;
  int rc = guarded([&] {
    tqlm::TensorStore store(path);
    const tqlm::TensorView& t = store.get(name);
    if (int64_t(t.nbytes) > capacity)
      tqlm::fail("tensor '{}' has {} bytes, buffer {}", name, t.nbytes, capacity);
    std::memcpy(out, t.data, t.nbytes);
    n = int64_t(t.nbytes);
  });
  return rc == 0 ? n : -1;
}
}

extern "C" {
// A model and its KV cache, for parity tests against mlx_lm.
struct TqlmModel {
  std::unique_ptr<tqlm::Model> model;
  std::unique_ptr<tqlm::KVCache> cache;
  tqlm::KVSpec kv;
};

// kv_mode: any --kv mode; kv_boundary: layers kept bf16 at each end in the compressed modes. Centred and auto
// modes read the calibration file named by TQLM_KV_CALIB.
void* tqlm_model_open(const char* path, const char* kv_mode, int kv_boundary, int threads) {
  TqlmModel* m = nullptr;
  guarded([&] {
    auto h = std::make_unique<TqlmModel>();
    h->model = std::make_unique<tqlm::Model>(path, threads);
    const char* calib = std::getenv("TQLM_KV_CALIB");
    h->kv = tqlm::KVSpec(kv_mode, kv_boundary, calib ? calib : "");
    h->cache = h->model->new_cache(h->kv);
    m = h.release();
  });
  return m;
}

void tqlm_model_close(void* h) {
  delete static_cast<TqlmModel*>(h);
}

int64_t tqlm_model_vocab(void* h) {
  return static_cast<TqlmModel*>(h)->model->config().vocab;
}

// Appends tokens[0..n) to the model's cache; logits [n, vocab] if all_logits else [1, vocab].
int tqlm_model_forward(void* h, const int32_t* tokens, int64_t n, int all_logits, float* logits) {
  return guarded([&] {
    auto* m = static_cast<TqlmModel*>(h);
    m->model->forward(tokens, n, *m->cache, logits, all_logits != 0);
  });
}

// The process-wide linear path ("int8" or "f32", as --linear); returns the previous one.
const char* tqlm_set_linear_path(const char* path) {
  const char* prev = tqlm::linear_path_name(tqlm::linear_path());
  if (guarded([&] { tqlm::set_linear_path(tqlm::parse_linear_path(path)); }) != 0) return nullptr;
  return prev;
}

void tqlm_model_reset(void* h) {
  static_cast<TqlmModel*>(h)->cache->clear();
}

// Greedy generation of n prompts through the scheduler, in one fresh KV pool of kv_mem bytes (0: no limit):
// prompt i = tokens[offsets[i], offsets[i + 1]), submitted in order, at most max_seqs running at once, step_tokens
// per forward step. Writes out_tokens [n, max_new], out_logits [n, max_new, vocab] (the logits each token was
// sampled from), out_cached [n] (prompt tokens reused from the prefix cache) and out_preempt [n]. With
// `sequential`, each prompt runs to completion before the next is submitted (the pool, and so its prefix
// cache, is shared). Sequence `cancel_seq` (-1: none) is cancelled once it has `cancel_after` tokens. At the
// end out_state [2] = blocks still referenced in the pool, number of cancelled sequences.
int tqlm_sched_greedy(void* h, const int32_t* tokens, const int64_t* offsets, int n, int max_new, int max_seqs,
                      int step_tokens, int64_t kv_mem, int reuse_prefix, int sequential, int cancel_seq,
                      int cancel_after, int32_t* out_tokens, float* out_logits, int64_t* out_cached,
                      int64_t* out_preempt, int64_t* out_state) {
  return guarded([&] {
    auto* m = static_cast<TqlmModel*>(h);
    const int64_t vocab = m->model->config().vocab;
    auto pool = std::make_shared<tqlm::KVPool>(m->kv, m->model->config().kv_shape(), uint64_t(kv_mem));
    tqlm::SchedulerOptions so;
    so.max_seqs = max_seqs;
    so.step_tokens = step_tokens;
    tqlm::Scheduler sched(*m->model, pool, nullptr, so);
    std::vector<int64_t> ids(static_cast<size_t>(n)), count(static_cast<size_t>(n), 0);
    auto submit = [&](int i) {
      tqlm::RequestParams rp;
      rp.sampling.temperature = 0;
      rp.max_tokens = max_new;
      rp.ignore_eos = true;
      rp.reuse_prefix = reuse_prefix != 0;
      rp.on_sample_logits = [&, i](const float* lg, int32_t) {
        std::copy(lg, lg + vocab, out_logits + (int64_t(i) * max_new + count[size_t(i)]) * vocab);
      };
      ids[size_t(i)] = sched.submit(std::vector<int32_t>(tokens + offsets[i], tokens + offsets[i + 1]), rp);
    };
    auto drain = [&] {
      while (!sched.idle())
        for (const auto& e : sched.step()) {
          const int i = int(std::find(ids.begin(), ids.end(), e.id) - ids.begin());
          if (e.token >= 0) out_tokens[int64_t(i) * max_new + count[size_t(i)]++] = e.token;
          if (i == cancel_seq && count[size_t(i)] == cancel_after && !e.finished) sched.cancel(e.id);
          if (e.finished && e.finish_reason == "cancelled") {
            ++out_state[1];
            continue;
          }
          if (e.finished && e.finish_reason != "length")
            tqlm::fail("sequence {} ended: {} {}", i, e.finish_reason, e.error);
        }
    };
    for (int i = 0; i < n; ++i) {
      submit(i);
      if (sequential) drain();
    }
    drain();
    for (int i = 0; i < n; ++i) {
      out_cached[i] = sched.stats(ids[size_t(i)]).cached_tokens;
      out_preempt[i] = sched.stats(ids[size_t(i)]).preemptions;
    }
    out_state[0] = pool->stats().blocks_used;
  });
}
}

extern "C" {
// Lloyd-Max codebook for one coordinate of a random unit vector in R^dim: centroids [2^bits], per-coordinate
// MSE.
int tqlm_codebook(int dim, int bits, float* centroids, double* mse) {
  return guarded([&] {
    const tqlm::Codebook& cb = tqlm::lloyd_max_codebook(dim, bits);
    std::copy(cb.centroids.begin(), cb.centroids.end(), centroids);
    *mse = cb.mse;
  });
}
}
