// The pieces of the pipeline that run without MPI: the layer split plan, the message reader's bounds, a stage
// mapping only the shards it needs, and mirror KV pools replaying the first stage's copies and frees. The
// pipeline itself (several processes, bit-identical logits) is tests/oracle/test_pipeline.py.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <vector>

#include "core/error.h"
#include "dist/wire.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "kv/kv_cache.h"
#include "kv/kv_pool.h"
#include "model/layer_split.h"

using namespace tqlm;
namespace fs = std::filesystem;

namespace {

ModelBytes bytes(uint64_t head, std::vector<uint64_t> layers) {
  ModelBytes mb;
  mb.head = head;
  mb.layers = std::move(layers);
  return mb;
}

int64_t count(const StagePlan& s) {
  return s.layers.end - s.layers.begin;
}

}  // namespace

TEST(LayerSplit, FollowsMemoryCoversEveryLayerOnceAndFitsEveryRank) {
  const ModelBytes mb = bytes(100, std::vector<uint64_t>(60, 10));  // 700 bytes
  const std::vector<uint64_t> kv(60, 0);
  const SplitPlan even = plan_layer_split(mb, {1000, 1000}, kv);
  ASSERT_EQ(even.stages.size(), 2u);
  EXPECT_EQ(even.stages[0].layers.begin, 0);
  EXPECT_EQ(even.stages[0].layers.end, even.stages[1].layers.begin);
  EXPECT_EQ(even.stages[1].layers.end, 60);
  EXPECT_EQ(count(even.stages[0]), 25);  // 100 + 25 * 10 = 350 = half of 700
  EXPECT_EQ(even.stages[0].weights, 350u);
  const SplitPlan two_to_one = plan_layer_split(mb, {2000, 1000}, kv);
  EXPECT_EQ(two_to_one.stages[0].weights + two_to_one.stages[1].weights, 700u);
  EXPECT_NEAR(double(two_to_one.stages[0].weights), 700.0 * 2 / 3, 10.0);
  // the KV reserve counts as memory too
  const SplitPlan with_kv = plan_layer_split(mb, {1000, 1000}, std::vector<uint64_t>(60, 10));
  EXPECT_EQ(with_kv.stages[0].need(), 100u + 20u * count(with_kv.stages[0]));
  for (const StagePlan& s : with_kv.stages) EXPECT_TRUE(s.fits());
}

TEST(LayerSplit, MinimisesTheLargestShareAndErrorsWhenNothingFits) {
  const ModelBytes mb = bytes(0, {10, 4, 10, 10});
  const std::vector<uint64_t> kv(4, 0);
  // only {10, 4} | {10, 10} fits 14 + 21 bytes (14/14 and 20/21); {10} | {4, 10, 10} overflows rank 1
  const SplitPlan p = plan_layer_split(mb, {14, 21}, kv);
  EXPECT_EQ(p.how.rfind("balanced by memory", 0), 0u) << p.how;
  EXPECT_EQ(count(p.stages[0]), 2);
  for (const StagePlan& s : p.stages) EXPECT_TRUE(s.fits());
  // equal capacity, equal layers: halves
  const SplitPlan even =
      plan_layer_split(bytes(0, std::vector<uint64_t>(8, 5)), {100, 100}, std::vector<uint64_t>(8, 0));
  EXPECT_EQ(count(even.stages[0]), 4);
  try {
    plan_layer_split(mb, {13, 21}, kv);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not fit"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("DOES NOT FIT"), std::string::npos) << e.what();
  }
  EXPECT_THROW(plan_layer_split(mb, {1, 1, 1, 1, 1}, kv), Error);  // more ranks than layers
}

TEST(LayerSplit, ExplicitCountsAreChecked) {
  const ModelBytes mb = bytes(0, std::vector<uint64_t>(6, 1));
  const std::vector<uint64_t> kv(6, 0);
  const SplitPlan p = plan_layer_split(mb, {0, 0}, kv, parse_layer_split("1,5"));
  EXPECT_EQ(count(p.stages[0]), 1);
  EXPECT_EQ(p.how, "--layer-split");
  EXPECT_THROW(plan_layer_split(mb, {0, 0}, kv, {3, 2}), Error);  // 5 layers, not 6
  EXPECT_THROW(plan_layer_split(mb, {0, 0}, kv, {6}), Error);     // 1 count, 2 ranks
  EXPECT_THROW(plan_layer_split(mb, {0, 0}, kv, {0, 6}), Error);  // an empty rank
  for (const char* bad : {"", "1,", ",1", "1;2", "-1,7", "1,2x", "9999999"})
    EXPECT_THROW(parse_layer_split(bad), Error) << bad;
}

TEST(Wire, RoundTripsAndRefusesShortOrOversizedArrays) {
  WireWriter w;
  w.put<int32_t>(7);
  const std::vector<float> x = {1.5f, -2.0f, 3.25f};
  w.put_array(x.data(), x.size());
  w.put_string("abc");
  const std::vector<uint8_t> m = w.take();
  WireReader r(m);
  EXPECT_EQ(r.get<int32_t>(), 7);
  EXPECT_EQ(r.get_array<float>(16), x);
  EXPECT_EQ(r.get_string(), "abc");
  EXPECT_EQ(r.left(), 0u);
  EXPECT_THROW(r.get<int32_t>(), Error);
  for (size_t cut = 0; cut < m.size(); ++cut) {  // every truncation is an Error, never a read past the end
    WireReader t(m.data(), cut);
    EXPECT_THROW(
        {
          t.get<int32_t>();
          t.get_array<float>(16);
          t.get_string();
        },
        Error)
        << cut;
  }
  WireReader small(m);
  small.get<int32_t>();
  EXPECT_THROW(small.get_array<float>(2), Error);  // 3 items over a limit of 2
}

TEST(TensorStore, AStageMapsOnlyTheShardsWithItsTensorsButListsAll) {
  const fs::path d = fs::temp_directory_path() / ("tqlm_unit_stage_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  {
    CheckpointWriter w(d.string(), {{"format", "mlx"}}, 200);  // one 150-byte tensor per shard
    const std::vector<std::string> names = {"model.embed_tokens.weight", "model.layers.0.w",
                                            "model.layers.1.w", "model.layers.2.w"};
    const std::vector<uint8_t> data(150, 1);
    for (const auto& n : names) w.declare(n, DType::U8, {150});
    for (const auto& n : names) w.write(n, data.data(), data.size());
    w.finish();
  }
  const TensorStore all(d.string());
  EXPECT_EQ(all.shard_paths().size(), 4u);
  const TensorStore stage(d.string(), [](const std::string& n) { return n == "model.layers.1.w"; });
  EXPECT_EQ(stage.shard_paths().size(), 1u);
  EXPECT_TRUE(stage.has("model.layers.1.w"));
  EXPECT_FALSE(stage.has("model.layers.0.w"));
  EXPECT_TRUE(stage.listed("model.layers.0.w"));
  EXPECT_EQ(stage.names().size(), 4u);
  fs::remove_all(d);
}

TEST(KVPoolMirror, ReplayedCopiesAndFreesKeepTheSameBlocksAndBytes) {
  const KVShape shape{4, 4, 2, 64};
  // first stage: layers [0, 2), records; second stage: layers [2, 4), a mirror
  auto head = std::make_shared<KVPool>(KVSpec("turbo4v2", 1), shape, 0, LayerRange{0, 2});
  auto tail = std::make_shared<KVPool>(KVSpec("turbo4v2", 1), shape, 0, LayerRange{2, 4});
  const KVPool whole(KVSpec("turbo4v2", 1), shape);
  EXPECT_EQ(head->block_bytes() + tail->block_bytes(), whole.block_bytes());
  EXPECT_EQ(head->full_block_bytes(), whole.block_bytes());
  EXPECT_EQ(head->page_offset(2, 0), -1);
  EXPECT_EQ(tail->page_offset(2, 0), 0);
  head->record_ops(true);
  std::vector<int32_t> t(300);
  std::iota(t.begin(), t.end(), 1);
  std::vector<float> k(size_t(300 * 2 * 64)), v(k.size());
  for (size_t i = 0; i < k.size(); ++i) k[i] = std::sin(float(i)), v[i] = std::cos(float(i));
  auto mirror_write = [&](const KVCache& src, int64_t len, int64_t pos, int64_t n) {
    KVCache view(tail);
    view.view(src.blocks().data(), int64_t(src.blocks().size()), len);
    view.write(2, pos, n, &k[size_t(pos * 128)], &v[size_t(pos * 128)]);
    view.write(3, pos, n, &k[size_t(pos * 128)], &v[size_t(pos * 128)]);
  };
  {
    KVCache a(head);
    a.write(0, 0, 300, k.data(), v.data());
    a.write(1, 0, 300, k.data(), v.data());
    for (const KVPoolOp& op : head->take_ops()) tail->apply(op);
    mirror_write(a, 0, 0, 300);
    a.set_length(300);
    a.publish(t.data(), true);
  }
  KVCache b(head);  // reuses 299 tokens: block 0 shared, block 1 (44 tokens) copied into a new block
  EXPECT_EQ(b.attach_prefix(t.data(), 300, 299), 299);
  const std::vector<KVPoolOp> ops = head->take_ops();
  ASSERT_EQ(ops.size(), 1u);
  EXPECT_EQ(ops[0].kind, KVPoolOp::kCopy);
  EXPECT_EQ(ops[0].dst, b.blocks()[1]);
  for (const KVPoolOp& op : ops) tail->apply(op);
  KVCache view(tail);
  view.view(b.blocks().data(), int64_t(b.blocks().size()), 299);
  std::vector<float> k1(64), v1(64);
  for (int64_t pos : {0, 255, 256, 298}) {  // layer 3 is a bf16 boundary layer: the values come back
    view.dequantize(3, pos, 1, k1.data(), v1.data());
    for (int j = 0; j < 64; ++j) {
      EXPECT_NEAR(k1[size_t(j)], k[size_t(pos * 128 + 64 + j)], 0.01f) << pos;
      EXPECT_NEAR(v1[size_t(j)], v[size_t(pos * 128 + 64 + j)], 0.01f) << pos;
    }
  }
  EXPECT_THROW(view.reserve(600), Error);  // a view never allocates
  b.release();
  for (const KVPoolOp& op : head->take_ops()) tail->apply(op);  // frees (if any) replay without error
}
