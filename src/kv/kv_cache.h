// The KV cache of one sequence: a table of blocks from a KVPool (kv_pool.h), each holding 256 positions of
// every layer in the pool's mode. Memory grows with the context a block at a time; nothing is preallocated
// for the maximum context. Attention reads the stored codes directly (kv_paged.cpp).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kv/kv_pool.h"
#include "kv/kv_spec.h"

namespace tqlm {

class KVCache {
 public:
  explicit KVCache(std::shared_ptr<KVPool> pool);
  ~KVCache();  // returns its blocks to the pool
  KVCache(const KVCache&) = delete;
  KVCache& operator=(const KVCache&) = delete;

  // Stores keys and values k, v [T, KV, hd] (f32) of `layer` for positions [pos, pos + T). Blocks for
  // these positions are taken from the pool if reserve() did not already; throws when the pool is full.
  void write(int64_t layer, int64_t pos, int64_t T, const float* k, const float* v);

  // out[T, H, hd] = causal attention of queries q [T, H, hd] at positions [pos, pos + T) over the cached
  // keys/values [0, pos + t] of `layer` (GQA: query head h reads kv head h / (H / KV)).
  void attend(int64_t layer, int64_t pos, int64_t T, const float* q, float* out, ThreadPool& pool);

  // Explicit dequantization of the stored key and value of (layer, position, kv head): k, v [hd]. For tests
  // and tools; attention never does this.
  void dequantize(int64_t layer, int64_t pos, int64_t kv_head, float* k, float* v) const;

  // Blocks for positions [0, n_tokens): false (nothing taken) when the pool cannot supply them.
  bool reserve(int64_t n_tokens);
  // Reuses the longest cached prefix of tokens[0, n) (at most max_tokens) from the pool's prefix cache; the
  // cache must be empty. Returns the tokens reused (length() is set to it).
  int64_t attach_prefix(const int32_t* tokens, int64_t n, int64_t max_tokens);
  // Offers the blocks holding tokens[0, length()) to the prefix cache (full blocks; the last partial one
  // too when `final`).
  void publish(const int32_t* tokens, bool final);
  // Returns every block to the pool and empties the cache.
  void release();
  // Pipeline stages after the first: this cache becomes a view of the first stage's sequence, the blocks
  // `table` [n] of a mirror pool (mapped on first use) holding `length` tokens. A view owns no references
  // and never allocates.
  void view(const int32_t* table, int64_t n, int64_t length);

  uint64_t bytes() const;  // bytes of the blocks this sequence holds
  // Real bytes per token across all layers for this mode (norms and bf16 boundary layers included).
  double bytes_per_token() const { return double(pool_->layout().bytes_per_token()); }
  const KVLayout& layout() const { return pool_->layout(); }
  std::string mode() const { return pool_->layout().mode; }
  KVPool& pool() { return *pool_; }
  const std::vector<int32_t>& blocks() const { return table_; }

  // Scores over 4-bit key codes as integers (int8 queries; the default, TQLM_KV_SCORES=int8) or in f32 over
  // decoded keys (TQLM_KV_SCORES=f32). Other formats always score in f32.
  void set_int8_scores(bool on) { int8_scores_ = on; }
  bool int8_scores() const { return int8_scores_; }
  // Value sums over 2- and 4-bit value codes as integers (16-bit weights x 7-bit centroids, kv_kernels.h
  // accumulate_q8; TQLM_KV_VALUES=int8, the default with AVX-512 VNNI) or in f32 over decoded values
  // (TQLM_KV_VALUES=f32, the default elsewhere). Other formats always sum in f32.
  void set_int8_values(bool on) { int8_values_ = on; }
  bool int8_values() const { return int8_values_; }

  int64_t length() const { return length_; }   // tokens cached (all layers)
  void set_length(int64_t n) { length_ = n; }  // after a forward; truncation keeps blocks
  void clear() { release(); }

 private:
  uint8_t* page(int64_t layer, int side, int64_t token, bool for_write);
  const uint8_t* page(int64_t layer, int side, int64_t token) const;
  // Partial attention of R rows (queries qr [R, dim_k], rows see nvis[r] keys of this page) over page p of
  // kv head h: part [R, 2 + dim_v] = (m, l, o[dim_v]).
  // q8: the same rows quantized for integer scores over 4-bit key codes, or nullptr (f32 scores).
  void page_partial(int64_t layer, int64_t h, int64_t p, const float* qr, const KVQueryQ8* q8, int64_t R,
                    const int64_t* nvis, float* part) const;

  std::shared_ptr<KVPool> pool_;
  std::vector<int32_t> table_;  // block of positions [256 i, 256 (i + 1))
  int64_t length_ = 0;
  bool view_ = false;
  int64_t H_, KV_, hd_;
  bool int8_scores_, int8_values_;
  // attend scratch: Q_ [KV, R, dim_k] rotated queries; Acc_ [KV, R, 2 + dim_v] row states; Part_ [KV, pages,
  // R, 2 + dim_v] page partials (decode)
  std::vector<float> Q_, Acc_, Part_;
  // Q8_ [KV, R, dim_k] int8 queries with Q8sum_, Q8mul_ [KV, R] (integer scores; kv_kernels.h KVQueryQ8)
  std::vector<int8_t> Q8_;
  std::vector<int32_t> Q8sum_;
  std::vector<float> Q8mul_;
};

// A cache with a pool of its own and no byte limit (one sequence: tools and tests).
std::unique_ptr<KVCache> make_kv_cache(const KVSpec& spec, const KVShape& shape);

}  // namespace tqlm
