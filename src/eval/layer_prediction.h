// A full model's speed predicted from measurements of a few of its layers (`tqlm bench --synthetic`): the
// time inside the layers, timed in the same run, separates the time per layer from the fixed time
// (embedding, LM head, sampling); the full
// model's decode time is the fixed time plus its layers' bytes read at the rate the measured layers reach,
// and on another machine each part runs at the same share of that machine's bandwidth.
#pragma once

#include <cstdint>
#include <vector>

#include "quant/plan.h"

namespace tqlm {

// Bytes one decoded token reads of a planned model, counted as active_weight_bytes (eval/bench.h) counts
// them for a loaded one: every 2-D weight of a layer, top_k / E of each stacked expert tensor, one row of
// the embedding and the whole LM head; norms and other 1-D tensors are not counted.
struct PlanReads {
  std::vector<double> layer;  // [n_layers]
  double fixed = 0;           // the embedding row and the LM head
  double layers() const;      // sum over the layers
};
PlanReads plan_reads(const std::vector<PlannedTensor>& tensors, int64_t n_layers, int64_t top_k);

// One measurement: a model of `layers` decoder layers took `seconds` per token, `layer_seconds` of them
// inside its layers (timed in the same run: Model::set_layer_clock), reading `bytes` per token,
// `layer_bytes` of them in its layers, while the read bandwidth measured beside it was `gbps` (0: not
// measured).
struct LayerSample {
  int layers = 0;
  double seconds = 0, layer_seconds = 0;
  double bytes = 0, layer_bytes = 0;
  double gbps = 0;
};

// A layer's and the fixed part's (embedding, LM head, sampling) time and bytes per token from one or more
// samples: a layer = the samples' layer time / their layer count (all layers of a synthetic model are alike),
// the fixed part = the mean of each sample's remainder. Each part is timed directly, so a noisy machine
// cannot make the split fail, as a difference of two runs' totals could.
struct LayerSplit {
  double layer_seconds = 0, fixed_seconds = 0;
  double layer_bytes = 0, fixed_bytes = 0;
  // The shares of the measured bandwidth each part reaches: bytes / seconds / gbps (0 when the bandwidth
  // was not measured).
  double layer_share = 0, fixed_share = 0;
  double gbps = 0;  // the mean of the samples' bandwidths (0 if any was not measured)
  bool separates() const { return layer_seconds > 0 && fixed_seconds > 0; }
};
LayerSplit split_layers(const std::vector<LayerSample>& samples);

struct DecodePrediction {
  double bytes = 0;             // read per token: fixed + the full model's layers
  double seconds = 0, tps = 0;  // on this machine: fixed time + layer bytes at the measured layers' rate
  // On a machine of target_gbps, each part at the share of bandwidth it reaches here (0 when this machine's
  // bandwidth was not measured), and with every byte at 70% of target_gbps.
  double target_tps = 0, target_tps_at_70 = 0;
};
// full_layer_bytes: what all layers of the full model read per token (weights and KV cache); "here" is
// at s.gbps.
DecodePrediction predict_decode(const LayerSplit& s, double full_layer_bytes, double target_gbps);

}  // namespace tqlm
