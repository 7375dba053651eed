// The KV cache interface. One implementation (kv_paged.cpp) serves every mode of kv_spec.h: memory grows with
// the context in pages of 256 tokens; nothing is preallocated for the maximum context.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kv/kv_spec.h"
#include "model/config.h"

namespace tqlm {

class KVCache {
 public:
  virtual ~KVCache() = default;

  // Stores keys and values k, v [T, KV, hd] (f32) of `layer` for positions [pos, pos + T).
  virtual void write(int64_t layer, int64_t pos, int64_t T, const float* k, const float* v) = 0;

  // out[T, H, hd] = causal attention of queries q [T, H, hd] at positions [pos, pos + T) over the cached
  // keys/values [0, pos + t] of `layer` (GQA: query head h reads kv head h / (H / KV)).
  virtual void attend(int64_t layer, int64_t pos, int64_t T, const float* q, float* out,
                      ThreadPool& pool) = 0;

  // Explicit dequantization of the stored key and value of (layer, position, kv head): k, v [hd]. For tests
  // and tools; attention never does this.
  virtual void dequantize(int64_t layer, int64_t pos, int64_t kv_head, float* k, float* v) const = 0;

  // Bytes actually held (allocated pages, codes and scales).
  virtual uint64_t bytes() const = 0;
  // Real bytes per token across all layers for this mode (norms and bf16 boundary layers included).
  virtual double bytes_per_token() const = 0;
  virtual const KVLayout& layout() const = 0;
  virtual std::string mode() const = 0;

  int64_t length() const { return length_; }   // tokens cached (all layers)
  void set_length(int64_t n) { length_ = n; }  // after a forward; truncation keeps pages
  virtual void clear() { length_ = 0; }

 protected:
  int64_t length_ = 0;
};

// Any mode of kv_spec.h. Throws listing the supported modes for anything else.
std::unique_ptr<KVCache> make_kv_cache(const KVSpec& spec, const ModelConfig& cfg);

}  // namespace tqlm
