// One memory pool for the KV caches of every sequence of a model, in one KV mode, under a byte budget, with a
// content-addressed prefix cache.
//
// The unit is a block: kPageTokens (256) consecutive positions of one sequence, all layers, keys and values,
// laid out as one page per (layer, side): block bytes = 256 * layout.bytes_per_token() exactly (every page is
// a multiple of 256 bytes, so every page starts 256-byte aligned). Blocks are mapped from the OS when needed
// and unmapped when no one needs them, so the pool's bytes are real memory.
//
// Prefix cache: a sequence publishes each block once it is full (and its last, partial block when it ends).
// Published blocks form a tree: a block's parent is the block before it in its sequence, so a node stands for
// one exact token prefix (its ancestors' tokens + its own) at fixed positions. A new sequence walks the tree
// with its prompt: a full block it matches completely is shared (reference counted, never written again); a
// block it matches only in part (a partial block, or a divergence inside a block) is copied into a private
// block. Tokens are compared exactly (no hash collisions), and a block's keys and values depend only on the
// tokens up to it, so reuse is bit-exact. Unreferenced published blocks stay cached until memory is needed;
// then the least recently used leaf goes first.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "kv/kv_codec.h"
#include "kv/kv_spec.h"

namespace tqlm {

constexpr int64_t kPageTokens = 256;

// A change to block memory that a pipeline's other stages must repeat on their mirror pools (same block
// ids, their own layers): a prefix copy, or a block whose memory went back to the OS.
struct KVPoolOp {
  enum Kind : int32_t { kCopy = 0, kFree = 1 };
  int32_t kind = kCopy;
  int32_t src = -1, dst = -1;  // kCopy: src -> dst; kFree: src
};

struct KVPoolStats {
  uint64_t budget = 0;        // bytes
  uint64_t block_bytes = 0;   // bytes of one block (256 tokens)
  int64_t blocks_used = 0;    // referenced by at least one sequence
  int64_t blocks_cached = 0;  // published, unreferenced (evictable)
  int64_t blocks_shared = 0;  // referenced by two or more sequences
  int64_t prefix_hits = 0;    // sequences that reused at least one token
  int64_t prefix_tokens = 0;  // tokens reused, over all sequences
  int64_t evictions = 0;
  uint64_t bytes() const { return uint64_t(blocks_used + blocks_cached) * block_bytes; }
};

class KVPool {
 public:
  // budget_bytes = 0: no limit (one-off caches, tests). `local`: the layers this process stores (a pipeline
  // stage; the others take no memory). The budget always counts blocks of every layer, so that all stages
  // of a pipeline agree on how many blocks fit: capacity = budget / full_block_bytes().
  KVPool(const KVSpec& spec, const KVShape& shape, uint64_t budget_bytes = 0, LayerRange local = {});
  ~KVPool();
  KVPool(const KVPool&) = delete;
  KVPool& operator=(const KVPool&) = delete;

  const KVLayout& layout() const { return L_; }
  const KVShape& shape() const { return shape_; }
  const KVSideCodec& codec(int64_t layer, int side) const { return codecs_[size_t(2 * layer + side)]; }
  // Byte offset of the page of (layer, side) inside a block; side 0 = keys, 1 = values; -1 for a layer this
  // pool does not store.
  int64_t page_offset(int64_t layer, int side) const { return offsets_[size_t(2 * layer + side)]; }
  // Byte offset of the sink copies of (layer, side) inside a block, bf16 [KV][dim] (layout.sink; used in a
  // sequence's first block), or -1 when that side has none (or this pool does not store the layer).
  int64_t sink_offset(int64_t layer, int side) const { return sink_offs_[size_t(2 * layer + side)]; }
  const LayerRange& local() const { return local_; }
  uint64_t block_bytes() const { return block_bytes_; }            // real bytes of one block here
  uint64_t full_block_bytes() const { return full_block_bytes_; }  // of one block over every layer
  uint64_t budget() const { return budget_; }
  // Blocks the budget allows at most (INT64_MAX without a budget).
  int64_t capacity_blocks() const;

  // A fresh private block (referenced once), or -1 when the budget is exhausted even after evicting every
  // unreferenced cached block.
  int32_t alloc();
  void ref(int32_t b);
  void unref(int32_t b);  // the last reference frees it, unless it is published (then it stays cached)
  uint8_t* data(int32_t b) { return blocks_[size_t(b)].mem; }
  const uint8_t* data(int32_t b) const { return blocks_[size_t(b)].mem; }
  // A published block is read-only: writing into one is a bug that write paths check for.
  bool is_published(int32_t b) const { return blocks_[size_t(b)].published; }

  // Prefix cache. match(): the longest cached prefix of tokens[0, n), at most max_tokens long; appends the
  // blocks to `table` (shared full blocks referenced, a partly matched block copied into a new private one)
  // and returns the number of tokens reused. Returns fewer than it could when the pool cannot supply a block
  // for the copy.
  int64_t match(const int32_t* tokens, int64_t n, int64_t max_tokens, std::vector<int32_t>& table);
  // Publishes the blocks of a sequence that holds tokens[0, n) in `table`: every full block not yet published
  // and, when `final`, the last partial block. Idempotent; a block identical to one already cached (another
  // sequence computed the same prefix) stays private.
  void publish(const std::vector<int32_t>& table, const int32_t* tokens, int64_t n, bool final);

  KVPoolStats stats() const;

  // Pipeline: the first stage records its copies and frees (take_ops() hands them over in order); every
  // other stage keeps a mirror: blocks mapped on first use under the first stage's ids, the ops replayed.
  void record_ops(bool on) { record_ = on; }
  std::vector<KVPoolOp> take_ops() { return std::move(ops_); }
  uint8_t* mirror_block(int32_t id);  // maps block `id` if it has no memory yet
  void apply(const KVPoolOp& op);

 private:
  struct Block {
    uint8_t* mem = nullptr;
    int32_t refs = 0;
    bool published = false;
    int32_t parent = -1;            // published: the block before it in its sequence (-1: first block)
    std::vector<int32_t> tokens;    // published: its tokens (256, or fewer for a final partial block)
    std::vector<int32_t> children;  // published blocks whose parent this is
    uint64_t last_use = 0;
  };
  int32_t new_block();  // maps memory; -1 when over budget
  bool evict_one();
  void release(int32_t b);
  std::vector<int32_t>& children_of(int32_t parent) {
    return parent < 0 ? roots_ : blocks_[size_t(parent)].children;
  }

  KVLayout L_;
  KVShape shape_;
  std::vector<KVSideCodec> codecs_;  // [layers * 2]
  std::vector<int64_t> offsets_;     // [layers * 2]
  std::vector<int64_t> sink_offs_;  // [layers * 2] (-1: no sink copy)
  LayerRange local_;
  uint64_t block_bytes_ = 0, full_block_bytes_ = 0, budget_ = 0;
  bool record_ = false, mirror_ = false;
  std::vector<KVPoolOp> ops_;
  std::vector<Block> blocks_;
  std::vector<int32_t> free_ids_;  // indices in blocks_ with no memory
  std::vector<int32_t> roots_;     // published first blocks
  int64_t mapped_ = 0;             // blocks with memory
  uint64_t tick_ = 0;
  int64_t hits_ = 0, hit_tokens_ = 0, evictions_ = 0;
};

}  // namespace tqlm
