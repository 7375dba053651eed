// Calibration of the KV cache for one model, kept beside it as a small JSON file (`tqlm kv-calibrate`,
// docs/formats.md): the mean key and mean value of every (layer, kv head) for exact centring, and each
// layer's measured sensitivity (KL against a bf16 cache when that layer's keys or values alone are quantized)
// for the per-layer bit allocation of `--kv auto:R`.
//
// Centring is exact: attention is invariant to subtracting one vector mu_K from every key of a head (each
// query's scores shift by <q, mu_K>, softmax removes it), and subtracting mu_V from every value shifts the
// output by -mu_V (the weights sum to 1), which attention adds back. Only the quantization error changes.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace tqlm {

struct KVCalib {
  int64_t layers = 0, kv_heads = 0, head_dim = 0;
  // RoPE of the keys (for the centring-dims study): rotated dims [0, rotary_dim), frequency of pair i.
  int64_t rotary_dim = 0;
  bool rope_traditional = false;      // pairs (2i, 2i + 1) instead of (i, i + rotary_dim / 2)
  std::vector<float> rope_inv_freq;   // [rotary_dim / 2]
  std::vector<float> k_mean, v_mean;  // [layers, kv_heads, head_dim]
  std::string source;                 // what the means were measured on (text, offset, tokens)
  // KL(bf16 cache || this layer's side alone at turbo{bits}, centred): bits -> [layers]. Empty when not
  // measured.
  std::map<int, std::vector<double>> k_kl, v_kl;
  int64_t kl_tokens = 0;  // tokens of the sensitivity window
};

// Parses and checks a calibration file; cached by path (one load per process).
std::shared_ptr<const KVCalib> load_kv_calib(const std::string& path);
void save_kv_calib(const KVCalib& c, const std::string& path);

// Whether centred modes centre keys (side 0) / values (side 1): the study knob TQLM_KV_CENTRE = k (default:
// centring values costs, see docs/kv-quality.md) | kv | v | none.
bool kv_centre_side(int side);

// The vector subtracted from one side of one layer, [kv_heads, head_dim]: the measured mean, restricted by
// kv_centre_side and
// TQLM_KV_CENTRE_KDIMS = all (default) | slow:P (keys: only the dims RoPE leaves unrotated and the rotated
// pairs whose period 2 pi / freq is at least P tokens). Empty when nothing is centred.
std::vector<float> kv_centre_vector(const KVCalib& c, int64_t layer, int side);

// Key dims kept by TQLM_KV_CENTRE_KDIMS=slow:P: [head_dim] of 0 / 1.
std::vector<uint8_t> kv_slow_dims(const KVCalib& c, double min_period);

}  // namespace tqlm
