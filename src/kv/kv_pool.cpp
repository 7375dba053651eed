#include "kv/kv_pool.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "kv/kv_calib.h"

namespace tqlm {

namespace {
constexpr int32_t kMaxMirrorBlocks = 1 << 24;  // 4G tokens: more is a corrupt message, not a cache
}

KVPool::KVPool(const KVSpec& spec, const KVShape& shape, uint64_t budget_bytes, LayerRange local)
    : L_(kv_layout(spec, shape)), shape_(shape), local_(local), budget_(budget_bytes) {
  if (shape.layers <= 0 || shape.kv_heads <= 0 || shape.head_dim <= 0 || shape.heads % shape.kv_heads != 0)
    fail("KV cache: invalid shape (layers {}, heads {}, kv heads {}, head dim {})", shape.layers, shape.heads,
         shape.kv_heads, shape.head_dim);
  if (local.begin < 0 || local.begin >= local.end_of(shape.layers) ||
      local.end_of(shape.layers) > shape.layers)
    fail("KV cache: layer range [{}, {}) is not inside the model's {} layers", local.begin, local.end,
         shape.layers);
  int64_t off = 0, full = 0;
  for (int64_t l = 0; l < shape.layers; ++l)
    for (int side = 0; side < 2; ++side) {
      const KVSideFormat& f = side == 0 ? L_.k[size_t(l)] : L_.v[size_t(l)];
      codecs_.emplace_back(f, shape.head_dim, side == 0 ? kTurboKeySeed : kTurboValueSeed,
                           f.centred ? kv_centre_vector(*L_.calib, l, side) : std::vector<float>{});
      const int64_t page = shape.kv_heads * kPageTokens * f.vector_bytes();  // a multiple of 256: aligned
      full += page;
      if (!local.contains(l)) {
        offsets_.push_back(-1);
        continue;
      }
      offsets_.push_back(off);
      off += page;
    }
  // then the sink copies: bf16 [KV][dim] per compressed layer side, the area rounded up to 256 bytes
  const int64_t pages = off, full_pages = full;
  for (int64_t l = 0; l < shape.layers; ++l)
    for (int side = 0; side < 2; ++side) {
      const KVSideFormat& f = side == 0 ? L_.k[size_t(l)] : L_.v[size_t(l)];
      const bool s = L_.sink && (f.codes == KVCodes::Q8 || f.codes == KVCodes::TURBO);
      const int64_t bytes = s ? shape.kv_heads * f.dim * 2 : 0;
      full += bytes;
      sink_offs_.push_back(s && local.contains(l) ? off : -1);
      off += s && local.contains(l) ? bytes : 0;
    }
  block_bytes_ =
      uint64_t(pages + (off - pages + 255) / 256 * 256);  // = 256 * layout bytes per token (all layers)
  full_block_bytes_ = uint64_t(full_pages + (full - full_pages + 255) / 256 * 256);
}

KVPool::~KVPool() {
  for (Block& b : blocks_)
    if (b.mem) munmap(b.mem, block_bytes_);
}

int64_t KVPool::capacity_blocks() const {
  return budget_ == 0 ? std::numeric_limits<int64_t>::max() : int64_t(budget_ / full_block_bytes_);
}

int32_t KVPool::new_block() {
  if (mirror_) fail("KV cache: a pipeline mirror pool cannot allocate blocks (a bug)");
  if (mapped_ >= capacity_blocks()) return -1;
  void* mem = mmap(nullptr, block_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED)
    fail("KV cache: the system refused {} bytes for a KV block ({} blocks, {} bytes held)", block_bytes_,
         mapped_, uint64_t(mapped_) * block_bytes_);
  int32_t id;
  if (!free_ids_.empty()) {
    id = free_ids_.back();
    free_ids_.pop_back();
  } else {
    if (blocks_.size() >= size_t(std::numeric_limits<int32_t>::max())) fail("KV cache: too many blocks");
    id = int32_t(blocks_.size());
    blocks_.emplace_back();
  }
  blocks_[size_t(id)] = Block{};
  blocks_[size_t(id)].mem = static_cast<uint8_t*>(mem);
  ++mapped_;
  return id;
}

void KVPool::release(int32_t id) {
  Block& b = blocks_[size_t(id)];
  if (b.published) {
    auto& sib = children_of(b.parent);
    sib.erase(std::find(sib.begin(), sib.end(), id));
  }
  munmap(b.mem, block_bytes_);
  b = Block{};
  free_ids_.push_back(id);
  --mapped_;
  if (record_) ops_.push_back({KVPoolOp::kFree, id, -1});
}

uint8_t* KVPool::mirror_block(int32_t id) {
  if (id < 0 || id >= kMaxMirrorBlocks) fail("KV cache: pipeline block id {} out of range", id);
  if (!mirror_ && mapped_ > 0) fail("KV cache: a pool that allocates cannot be a mirror (a bug)");
  mirror_ = true;
  if (size_t(id) >= blocks_.size()) blocks_.resize(size_t(id) + 1);
  Block& b = blocks_[size_t(id)];
  if (!b.mem) {
    void* mem = mmap(nullptr, block_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
      fail("KV cache: the system refused {} bytes for a KV block ({} blocks held)", block_bytes_, mapped_);
    b.mem = static_cast<uint8_t*>(mem);
    b.refs = 1;
    ++mapped_;
  }
  return b.mem;
}

void KVPool::apply(const KVPoolOp& op) {
  if (op.kind == KVPoolOp::kCopy) {
    if (op.src == op.dst) fail("KV cache: pipeline op copies block {} onto itself", op.src);
    const uint8_t* src = mirror_block(op.src);
    std::memcpy(mirror_block(op.dst), src, block_bytes_);
  } else if (op.kind == KVPoolOp::kFree) {
    if (op.src < 0 || size_t(op.src) >= blocks_.size() || !blocks_[size_t(op.src)].mem) return;
    munmap(blocks_[size_t(op.src)].mem, block_bytes_);
    blocks_[size_t(op.src)] = Block{};
    --mapped_;
  } else {
    fail("KV cache: unknown pipeline op {}", op.kind);
  }
}

bool KVPool::evict_one() {
  int32_t victim = -1;
  for (size_t i = 0; i < blocks_.size(); ++i) {
    const Block& b = blocks_[i];
    if (b.mem && b.published && b.refs == 0 && b.children.empty() &&
        (victim < 0 || b.last_use < blocks_[size_t(victim)].last_use))
      victim = int32_t(i);
  }
  if (victim < 0) return false;
  release(victim);
  ++evictions_;
  return true;
}

int32_t KVPool::alloc() {
  int32_t id = new_block();
  while (id < 0 && evict_one()) id = new_block();
  if (id >= 0) {
    blocks_[size_t(id)].refs = 1;
    blocks_[size_t(id)].last_use = ++tick_;
  }
  return id;
}

void KVPool::ref(int32_t id) {
  Block& b = blocks_[size_t(id)];
  ++b.refs;
  b.last_use = ++tick_;
}

void KVPool::unref(int32_t id) {
  Block& b = blocks_[size_t(id)];
  if (b.refs <= 0) fail("KV cache: block {} released twice", id);
  if (--b.refs == 0 && !b.published) release(id);
}

int64_t KVPool::match(const int32_t* tokens, int64_t n, int64_t max_tokens, std::vector<int32_t>& table) {
  int64_t used = 0;
  int32_t parent = -1;
  const int64_t limit = std::min(n, max_tokens);
  while (used < limit) {
    const int64_t want = std::min<int64_t>(kPageTokens, limit - used);
    int32_t best = -1;
    int64_t best_len = 0;
    for (int32_t c : children_of(parent)) {
      const auto& ct = blocks_[size_t(c)].tokens;
      const int64_t m = std::min<int64_t>(want, int64_t(ct.size()));
      int64_t k = 0;
      while (k < m && ct[size_t(k)] == tokens[used + k]) ++k;
      if (k > best_len) best = c, best_len = k;
    }
    if (best < 0) break;
    if (best_len == kPageTokens) {  // a whole block: shared
      ref(best);
      table.push_back(best);
      used += kPageTokens;
      parent = best;
      continue;
    }
    // part of a block: copy it into a private one (the sequence writes after position used + best_len)
    ref(best);  // keep the source alive while a block is found (alloc may evict)
    const int32_t b = alloc();
    if (b >= 0) {
      std::memcpy(data(b), data(best), block_bytes_);
      if (record_) ops_.push_back({KVPoolOp::kCopy, best, b});
      table.push_back(b);
      used += best_len;
    }
    unref(best);
    break;
  }
  if (used > 0) ++hits_, hit_tokens_ += used;
  return used;
}

void KVPool::publish(const std::vector<int32_t>& table, const int32_t* tokens, int64_t n, bool final) {
  int32_t parent = -1;
  for (size_t i = 0; i < table.size(); ++i) {
    const int64_t t0 = int64_t(i) * kPageTokens, len = std::min<int64_t>(kPageTokens, n - t0);
    if (len <= 0) break;
    const int32_t id = table[i];
    Block& b = blocks_[size_t(id)];
    if (!b.published) {
      if (len < kPageTokens && !final) break;
      bool dup = false;  // the same tokens under the same parent: another sequence computed this block
      for (int32_t c : children_of(parent)) {
        const auto& ct = blocks_[size_t(c)].tokens;
        if (int64_t(ct.size()) == len && std::equal(ct.begin(), ct.end(), tokens + t0)) dup = true;
      }
      if (dup) break;  // later blocks of this sequence hang off a private block: keep them private too
      b.published = true;
      b.parent = parent;
      b.tokens.assign(tokens + t0, tokens + t0 + len);
      children_of(parent).push_back(id);
    } else if (b.parent != parent) {
      break;
    }
    if (len < kPageTokens) break;
    parent = id;
  }
}

KVPoolStats KVPool::stats() const {
  KVPoolStats s;
  s.budget = budget_;
  s.block_bytes = block_bytes_;
  for (const Block& b : blocks_) {
    if (!b.mem) continue;
    if (b.refs > 0) ++s.blocks_used;
    if (b.refs > 1) ++s.blocks_shared;
    if (b.refs == 0 && b.published) ++s.blocks_cached;
  }
  s.prefix_hits = hits_;
  s.prefix_tokens = hit_tokens_;
  s.evictions = evictions_;
  return s;
}

}  // namespace tqlm
