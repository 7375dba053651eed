// The arithmetic of `tqlm bench --synthetic`: a full model's speed from timed layers
// (eval/layer_prediction.h), and the synthetic plan it measures (eval/synthetic_model.h; the checkpoint
// itself: test_bench_synthetic.py).
#include <gtest/gtest.h>

#include "eval/layer_prediction.h"
#include "eval/synthetic_model.h"

using namespace tqlm;

TEST(LayerPrediction, SplitsTimeAndBytesIntoLayerAndFixed) {
  // fixed: 10 ms for 650 MB; a layer: 2 ms for 68 MB; measured with 4 layers at 50 GB/s
  const LayerSample a{4, 0.018, 0.008, 922e6, 272e6, 50};
  const LayerSplit s = split_layers({a});
  EXPECT_TRUE(s.separates());
  EXPECT_NEAR(s.layer_seconds, 0.002, 1e-12);
  EXPECT_NEAR(s.fixed_seconds, 0.010, 1e-12);
  EXPECT_NEAR(s.layer_bytes, 68e6, 1e-3);
  EXPECT_NEAR(s.fixed_bytes, 650e6, 1e-3);
  EXPECT_NEAR(s.layer_share, 68e6 / 0.002 / 50e9, 1e-12);   // 68%
  EXPECT_NEAR(s.fixed_share, 650e6 / 0.010 / 50e9, 1e-12);  // 130%: the LM head streams well
  EXPECT_EQ(s.gbps, 50);
  LayerSample u = a;
  u.gbps = 0;
  EXPECT_EQ(split_layers({u}).layer_share, 0);  // bandwidth not measured
}

TEST(LayerPrediction, PoolsTwoRuns) {
  // 1 layer in 2.4 ms + 11 ms fixed at 40 GB/s, 4 layers in 7.6 ms + 9 ms fixed at 60 GB/s: a layer is
  // (2.4 + 7.6) / 5 = 2 ms, the fixed part the mean 10 ms, the bandwidth the mean 50 GB/s
  const LayerSplit s =
      split_layers({{1, 0.0134, 0.0024, 718e6, 68e6, 40}, {4, 0.0166, 0.0076, 922e6, 272e6, 60}});
  EXPECT_NEAR(s.layer_seconds, 0.002, 1e-12);
  EXPECT_NEAR(s.fixed_seconds, 0.010, 1e-12);
  EXPECT_NEAR(s.layer_bytes, 68e6, 1e-3);
  EXPECT_NEAR(s.fixed_bytes, 650e6, 1e-3);
  EXPECT_EQ(s.gbps, 50);
  EXPECT_EQ(split_layers({{1, 0.0134, 0.0024, 718e6, 68e6, 40}, {4, 0.0166, 0.0076, 922e6, 272e6, 0}}).gbps,
            0);
}

TEST(LayerPrediction, PredictsTheFullModelHereAndOnAnotherMachine) {
  const LayerSplit s = split_layers({{4, 0.018, 0.008, 922e6, 272e6, 50}});
  const double layers = 62 * 68e6;
  const DecodePrediction p = predict_decode(s, layers, 400);
  EXPECT_NEAR(p.bytes, 650e6 + layers, 1e-3);
  EXPECT_NEAR(p.seconds, 0.010 + 62 * 0.002, 1e-12);
  EXPECT_NEAR(p.tps, 1 / 0.134, 1e-9);
  // each part at its share of 400 GB/s: the time here scaled by 50 / 400
  EXPECT_NEAR(p.target_tps, 400.0 / 50.0 / 0.134, 1e-9);
  EXPECT_NEAR(p.target_tps_at_70, 0.7 * 400e9 / (650e6 + layers), 1e-9);
  // no bandwidth measured: no shares
  const DecodePrediction q = predict_decode(split_layers({{4, 0.018, 0.008, 922e6, 272e6, 0}}), layers, 400);
  EXPECT_EQ(q.target_tps, 0);
  EXPECT_NEAR(q.tps, p.tps, 1e-12);
  EXPECT_NEAR(q.target_tps_at_70, p.target_tps_at_70, 1e-9);
}

TEST(LayerPrediction, NoLayerTimeNoPrediction) {
  const LayerSplit s = split_layers({{4, 0.018, 0, 922e6, 272e6, 50}});
  EXPECT_FALSE(s.separates());
  EXPECT_EQ(predict_decode(s, 62 * 68e6, 400).tps, 0);
  EXPECT_FALSE(split_layers({}).separates());
}

TEST(SyntheticModel, PlansMiddleLayersOfMiniMaxM2UnderConfigI) {
  const SyntheticPlan p = plan_synthetic({"minimax-m2", "config-i", 2, 0, 0});
  EXPECT_EQ(p.full.n_layers, 62);
  EXPECT_EQ(p.full.hidden, 3072);
  EXPECT_EQ(p.full.n_experts, 256);
  EXPECT_EQ(p.full.top_k, 8);
  EXPECT_EQ(p.full.moe_intermediate, 1536);
  EXPECT_EQ(p.first_layer, 31);
  EXPECT_EQ(p.config["num_hidden_layers"], 2);
  EXPECT_EQ(p.config["attn_type_list"].size(), 2u);
  EXPECT_EQ(p.config["quantization"], p.config["quantization_config"]);
  // layers 31 and 32 renumbered 0 and 1, as the full plan decides them (2-bit expert gate, not the boundary's
  // 8)
  int layer_tensors = 0;
  for (const auto& t : p.tensors) {
    EXPECT_LT(t.layer, 2) << t.module;
    if (t.layer >= 0) ++layer_tensors;
    if (t.module == "model.layers.1.block_sparse_moe.switch_mlp.gate_proj") {
      EXPECT_EQ(t.decision.bits, 2);
    }
  }
  int full_layer_tensors = 0;
  for (const auto& t : p.full_plan.tensors) full_layer_tensors += t.layer == 31 || t.layer == 32;
  EXPECT_EQ(layer_tensors, full_layer_tensors);
  EXPECT_EQ(p.config["quantization"]["model.layers.1.block_sparse_moe.switch_mlp.down_proj"]["bits"], 3);

  // what a token reads: 8 of 256 experts, one embedding row, the whole LM head
  const PlanReads r = plan_reads(p.tensors, 2, p.full.top_k);
  uint64_t head = 0, embed = 0;
  for (const auto& t : p.tensors) {
    if (t.role == Role::lm_head) head = t.bytes;
    if (t.role == Role::embed) embed = t.bytes;
  }
  EXPECT_DOUBLE_EQ(r.fixed, double(head) + double(embed) / 200064);
  ASSERT_EQ(r.layer.size(), 2u);
  EXPECT_DOUBLE_EQ(r.layer[0], r.layer[1]);
  EXPECT_GT(r.layer[0], 60e6);  // attention at 4 bits + 8 experts at 2/2/3 bits: ~68 MB
  EXPECT_LT(r.layer[0], 75e6);
  const PlanReads full = plan_reads(p.full_plan.tensors, 62, 8);
  EXPECT_DOUBLE_EQ(full.layer[31], r.layer[0]);
  EXPECT_GT(full.layer[0], 2 * full.layer[31]);  // the boundary layers are 8-bit
}

TEST(SyntheticModel, ScalesDownAndRefuses) {
  const SyntheticPlan p = plan_synthetic({"minimax-m2", "config-i", 1, 16, 8192});
  EXPECT_EQ(p.full.n_experts, 16);
  EXPECT_EQ(p.full.vocab, 8192);
  const SyntheticPlan full = plan_synthetic({"minimax-m2", "config-i", 1, 0, 0});
  // the same active widths: a layer reads as much with 16 experts as with 256, but for the router (f16 [E,
  // D])
  EXPECT_DOUBLE_EQ(plan_reads(full.tensors, 1, 8).layer[0] - plan_reads(p.tensors, 1, 8).layer[0],
                   (256 - 16) * 3072 * 2);
  EXPECT_LT(p.bytes, full.bytes / 10);
  EXPECT_NE(p.marker(), full.marker());
  EXPECT_THROW(plan_synthetic({"minimax-m2", "config-i", 32, 0, 0}), Error);  // 31 + 32 > 62
  EXPECT_THROW(plan_synthetic({"minimax-m2", "config-i", 0, 0, 0}), Error);
  EXPECT_THROW(plan_synthetic({"minimax-m2", "config-i", 1, 4, 0}), Error);  // fewer experts than top-8
  EXPECT_THROW(plan_synthetic({"llama-7b", "config-i", 1, 0, 0}), Error);
  EXPECT_THROW(plan_synthetic({"minimax-m2", "no-such-policy", 1, 0, 0}), Error);
}
