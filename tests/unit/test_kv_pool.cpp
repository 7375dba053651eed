// The KV pool: block geometry, the byte budget, reference counts, the prefix tree (whole blocks shared, a
// partly matched block copied, exact token comparison) and LRU eviction of unreferenced cached blocks.
#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <vector>

#include "kv/kv_cache.h"
#include "kv/kv_pool.h"

using namespace tqlm;

namespace {
const KVShape kShape{4, 4, 2, 64};

std::vector<int32_t> seq(int64_t n, int32_t start) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), start);
  return v;
}
}  // namespace

TEST(KVPool, BlocksAreTheLayoutTimes256AndTheBudgetHolds) {
  KVPool pool({"turbo4v2", 1}, kShape, 0);
  EXPECT_EQ(pool.block_bytes(), uint64_t(256 * pool.layout().bytes_per_token()));
  for (int64_t l = 0; l < kShape.layers; ++l)
    for (int side = 0; side < 2; ++side) EXPECT_EQ(pool.page_offset(l, side) % 256, 0);
  KVPool small({"bf16"}, kShape, 3 * 256 * 4 * 2 * 2 * 64 * 2);  // exactly 3 bf16 blocks
  EXPECT_EQ(small.capacity_blocks(), 3);
  const int32_t a = small.alloc(), b = small.alloc(), c = small.alloc();
  EXPECT_GE(a, 0);
  EXPECT_GE(c, 0);
  EXPECT_EQ(small.alloc(), -1);  // over budget, nothing evictable
  small.unref(b);
  EXPECT_GE(small.alloc(), 0);  // freed memory is reusable
  EXPECT_EQ(small.stats().blocks_used, 3);
}

TEST(KVPool, PrefixTreeSharesWholeBlocksCopiesPartialOnesAndEvictsLeavesFirst) {
  auto pool = std::make_shared<KVPool>(KVSpec("bf16"), kShape, 0);
  const std::vector<int32_t> t = seq(600, 10);  // two full blocks + 88 tokens
  {
    KVCache a(pool);
    ASSERT_TRUE(a.reserve(600));
    std::memset(pool->data(a.blocks()[2]), 7, pool->block_bytes());
    a.set_length(600);
    a.publish(t.data(), /*final=*/true);
  }  // a's blocks stay cached (published, unreferenced)
  EXPECT_EQ(pool->stats().blocks_cached, 3);
  KVCache b(pool);
  std::vector<int32_t> u = t;
  u[550] = 1;  // diverges inside the third block
  EXPECT_EQ(b.attach_prefix(u.data(), int64_t(u.size()), int64_t(u.size()) - 1), 550);
  ASSERT_EQ(b.blocks().size(), 3u);
  EXPECT_TRUE(pool->is_published(b.blocks()[0]) && pool->is_published(b.blocks()[1]));  // shared
  EXPECT_FALSE(pool->is_published(b.blocks()[2]));                                      // a private copy
  EXPECT_EQ(pool->data(b.blocks()[2])[12345], 7);
  // never more than max_tokens, and an exact token match only
  KVCache c(pool);
  std::vector<int32_t> w = t;
  w[3] = 99999;
  EXPECT_EQ(c.attach_prefix(w.data(), 600, 599), 3);
  // eviction: only unreferenced leaves go, the least recently used first; a parent never before its child
  b.release();
  c.release();
  KVPool tiny({"bf16"}, kShape, 2 * pool->block_bytes());
  {
    KVCache x(std::shared_ptr<KVPool>(&tiny, [](KVPool*) {}));
    ASSERT_TRUE(x.reserve(512));
    x.set_length(512);
    const std::vector<int32_t> tt = seq(512, 1);
    x.publish(tt.data(), false);
  }
  EXPECT_EQ(tiny.stats().blocks_cached, 2);
  EXPECT_GE(tiny.alloc(), 0);  // evicts the leaf (the second block), never the first while it has a child
  EXPECT_EQ(tiny.stats().evictions, 1);
  EXPECT_EQ(tiny.stats().blocks_cached, 1);
}
