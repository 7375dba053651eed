// What a KV cache mode means for one model: the stored format of keys and values in every layer, and the
// bytes that costs. Used by the cache itself, by `tqlm kv-plan` (from config.json alone) and by reports.
//
// Modes: bf16 (default), f16, f32; q8 (int8 per vector + an fp16 scale); turbo{B} (keys and values at B
// bits) and turbo{K}v{V}, K, V in {2, 3, 4, 8} (TurboQuant: fp16 norm + randomized Hadamard rotation +
// Lloyd-Max codes). In the compressed modes (q8, turbo*) the first and last `boundary` layers stay bf16.
// A trailing "c" (turbo4v2c, q8c, f32c) centres keys and values with the means of a calibration file
// (kv_calib.h; keys only by default); a trailing "s" (turbo4v2s, turbo4v2cs) keeps each sequence's first
// token (the attention sink) in bf16 beside its codes. Per-layer formats: `auto:R` (the allocation of
// kv_alloc.h at R times fewer bytes than bf16, centred; auto:Rs with the sink) or a JSON file of per-layer
// formats (MODE ending in .json, kv_alloc.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace tqlm {

// The three numbers of a model the KV cache depends on (plus the query heads, for attention).
struct KVShape {
  int64_t layers = 0, heads = 0, kv_heads = 0, head_dim = 0;
};

// The decoder layers [begin, end) one process holds (a pipeline stage); end = -1: to the last layer.
struct LayerRange {
  int64_t begin = 0, end = -1;
  int64_t end_of(int64_t layers) const { return end < 0 ? layers : end; }
  bool contains(int64_t l) const { return l >= begin && (end < 0 || l < end); }
};

enum class KVCodes { F32, BF16, F16, Q8, TURBO };

// How one side (keys or values) of one layer is stored, per token and kv head.
struct KVSideFormat {
  KVCodes codes = KVCodes::BF16;
  int bits = 16;  // bits per stored coordinate (TURBO: 2, 3, 4 or 8)
  // Stored coordinates per vector: head_dim, or for TURBO the rotation length (head_dim rounded up to a
  // power of two; the padding coordinates are zeros before the rotation).
  int64_t dim = 0;
  bool centred = false;  // the stored vectors are x - mean of its (layer, kv head) (kv_calib.h)
  int64_t code_bytes() const { return (dim * bits + 7) / 8; }  // packed codes, LSB-first
  int64_t scale_bytes() const { return codes == KVCodes::Q8 || codes == KVCodes::TURBO ? 2 : 0; }  // fp16
  int64_t vector_bytes() const { return code_bytes() + scale_bytes(); }
  bool rotated() const { return codes == KVCodes::TURBO; }
  std::string name() const;       // "bf16", "q8", "turbo4", "turbo4c" (centred), ...
  std::string base_name() const;  // without the centring mark
};

// One side's format by name: "f32", "bf16", "f16", "q8", "turbo2/3/4/8"; throws naming `what` otherwise.
KVSideFormat kv_side_format(const std::string& name, int64_t head_dim, const std::string& what);

struct KVCalib;
struct KVLayerPlan;

struct KVSpec {
  std::string mode = "bf16";
  int boundary = 2;  // compressed modes: first and last `boundary` layers stay bf16 (capped at layers / 2)
  // Calibration file (kv_calib.h), read by centred and auto modes; `calib` overrides it (tools, tests).
  std::string calib_path;
  std::shared_ptr<const KVCalib> calib;
  std::shared_ptr<const KVLayerPlan> plan;  // explicit per-layer formats (overrides the mode's)
  KVSpec() = default;
  KVSpec(std::string m, int b = 2, std::string cp = {})
      : mode(std::move(m)), boundary(b), calib_path(std::move(cp)) {}
  KVSpec(const char* m) : mode(m) {}
};

// Every mode name the cache accepts, for --help and errors.
std::string kv_modes_help();
// The modes `tqlm kv-plan` tabulates by default.
std::vector<std::string> kv_plan_modes();

struct KVLayout {
  std::string mode;
  int64_t layers = 0, kv_heads = 0, head_dim = 0;
  int boundary = 0;                      // layers kept bf16 at each end (0 for the float modes)
  std::vector<KVSideFormat> k, v;        // [layers]
  bool per_layer = false;                // formats chosen per layer (auto / plan file)
  bool sink = false;                     // position 0 of each sequence also kept bf16 (compressed sides)
  std::shared_ptr<const KVCalib> calib;  // the means of centred sides (null when none is centred)

  // Bytes of the sink copies in every block: bf16 [dim] per kv head of each compressed layer side.
  int64_t sink_bytes() const;
  // Real bytes per cached token over all layers: codes, norms/scales, bf16 boundary layers, and the sink
  // copies spread over the 256 tokens of a block (rounded up to whole bytes per token).
  int64_t bytes_per_token() const;
  // bf16 bytes per token for the same model (2 * layers * kv_heads * head_dim * 2).
  int64_t bf16_bytes_per_token() const { return 4 * layers * kv_heads * head_dim; }
  // 16 / mean(K bits, V bits) of the mode, the figure usually quoted (ignores norms and boundary layers).
  double nominal_ratio() const;
  double real_ratio() const { return double(bf16_bytes_per_token()) / double(bytes_per_token()); }
  // Bytes held once per model, not per token: the f32 means of the centred sides.
  int64_t fixed_bytes() const;
  // "turbo4/turbo2" for uniform layouts (the middle layer), else a count per K/V format.
  std::string formats_summary() const;
};

// Parses the mode for this model. Throws naming the mode and listing the valid ones.
KVLayout kv_layout(const KVSpec& spec, const KVShape& shape);

}  // namespace tqlm
