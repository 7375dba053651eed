#include "eval/layer_prediction.h"

#include <algorithm>

namespace tqlm {

double PlanReads::layers() const {
  double s = 0;
  for (double b : layer) s += b;
  return s;
}

PlanReads plan_reads(const std::vector<PlannedTensor>& tensors, int64_t n_layers, int64_t top_k) {
  PlanReads r;
  r.layer.assign(size_t(n_layers), 0.0);
  for (const PlannedTensor& t : tensors) {
    if (t.shape.size() < 2) continue;
    double b = double(t.bytes);
    if (t.shape.size() == 3) b = b * double(top_k) / double(t.shape[0]);  // stacked experts [E, out, in]
    if (t.role == Role::embed) b /= double(t.shape[0]);                   // one row
    if (t.layer >= 0 && t.layer < n_layers)
      r.layer[size_t(t.layer)] += b;
    else
      r.fixed += b;
  }
  return r;
}

LayerSplit split_layers(const std::vector<LayerSample>& samples) {
  LayerSplit s;
  double layers = 0, bw = 0;
  for (const LayerSample& x : samples) {
    layers += x.layers;
    s.layer_seconds += x.layer_seconds;
    s.layer_bytes += x.layer_bytes;
    s.fixed_seconds += (x.seconds - x.layer_seconds) / double(samples.size());
    s.fixed_bytes += (x.bytes - x.layer_bytes) / double(samples.size());
    bw = bw < 0 || x.gbps <= 0 ? -1 : bw + x.gbps / double(samples.size());
  }
  if (layers <= 0) return LayerSplit{};
  s.layer_seconds /= layers;
  s.layer_bytes /= layers;
  s.gbps = std::max(bw, 0.0);
  if (s.gbps > 0 && s.separates()) {
    s.layer_share = s.layer_bytes / s.layer_seconds / (s.gbps * 1e9);
    s.fixed_share = s.fixed_bytes / s.fixed_seconds / (s.gbps * 1e9);
  }
  return s;
}

DecodePrediction predict_decode(const LayerSplit& s, double full_layer_bytes, double target) {
  DecodePrediction p;
  if (!s.separates() || s.layer_bytes <= 0) return p;
  p.bytes = s.fixed_bytes + full_layer_bytes;
  p.seconds = s.fixed_seconds + full_layer_bytes * s.layer_seconds / s.layer_bytes;
  p.tps = 1.0 / p.seconds;
  if (target > 0) {
    p.target_tps_at_70 = 0.7 * target * 1e9 / p.bytes;
    if (s.gbps > 0 && s.layer_share > 0 && s.fixed_share > 0)
      p.target_tps = 1.0 / (s.fixed_bytes / (target * 1e9 * s.fixed_share) +
                            full_layer_bytes / (target * 1e9 * s.layer_share));
  }
  return p;
}

}  // namespace tqlm
