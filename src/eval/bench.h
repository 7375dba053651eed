// Speed measurement: prefill and greedy decode at given context lengths for one KV cache mode, with the
// bytes each decoded token has to read (active weights + the KV cache so far), the bandwidth that implies,
// and the cache's reported bytes beside the process's resident-memory growth.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/memory.h"
#include "model/model.h"

namespace tqlm {

struct BenchOptions {
  std::vector<int64_t> contexts = {128, 4096};  // prompt tokens before decoding
  int64_t decode = 32;                          // tokens decoded (timed) after each prefill
  int64_t chunk = 512;                          // prefill tokens per forward
  KVSpec kv;
  std::vector<int32_t> tokens;  // prompt source (repeated as needed); empty: pseudo-random ids
  // Measure the read bandwidth beside each point's decode (BenchPoint::read_gbps): on a shared machine it
  // drifts by tens of percent within minutes, so a share of bandwidth is only meaningful against a figure
  // taken at the same time. The probe's time is left out of decode_seconds.
  bool probe_bandwidth = false;
};

struct BenchPoint {
  int64_t context = 0;
  double prefill_seconds = 0, decode_seconds = 0;
  double prefill_tps = 0, decode_tps = 0;
  double weight_bytes_per_token = 0;  // active weights read per decoded token
  double kv_bytes_per_token = 0;      // cache bytes read per decoded token (mean over the decoded tokens)
  double achieved_gbps = 0;           // (weights + KV bytes) / seconds per decoded token
  uint64_t cache_bytes = 0;           // the cache's report after decoding
  int64_t rss_growth = 0;             // resident memory growth while the sequence ran (after a warm-up step)
  uint64_t cache_growth = 0;          // cache bytes growth over the same span
  // Seconds per token spent inside the decoder layers (Model::set_layer_clock), in the prefill and in the
  // decode; the rest of prefill_seconds / decode_seconds is the embedding, LM head, sampling, scheduling.
  double prefill_layer_seconds = 0, decode_layer_seconds = 0;
  double read_gbps = 0;  // the median of the read passes taken beside the decode (0: not measured)
  double bandwidth_share() const { return read_gbps > 0 ? achieved_gbps / read_gbps : 0.0; }
};

// Bytes of weights one token reads: every dense tensor, top_k of the experts, one embedding row.
double active_weight_bytes(const Model& m);

// The instruction-set family of the linear kernels in use ("avx512", "avx2", ...).
const char* kernel_isa();
const char* attention_isa();  // the KV attention kernel family (kv_kernels().isa)
std::string linear_family();  // the quantized linear path and family, e.g. "int8 avx512vbmi"

// n prompt tokens for a benchmark: source[(offset + i) % size] when a source text was given, else
// pseudo-random ids in [100, vocab) from an LCG seeded with `seed` (repeatable, no shared prefixes across
// seeds).
std::vector<int32_t> bench_prompt(const std::vector<int32_t>& source, int64_t vocab, int64_t n, uint64_t seed,
                                  int64_t offset = 0);

// Read bandwidth of this machine with a pool's threads: each pass() streams a 512 MiB buffer once (each
// thread one contiguous share, 16-byte loads, software prefetch as the decode kernels use) and returns GB/s.
class ReadProbe {
 public:
  explicit ReadProbe(ThreadPool& pool);  // allocates and touches the buffer (512 MiB)
  ~ReadProbe();
  ReadProbe(const ReadProbe&) = delete;
  ReadProbe& operator=(const ReadProbe&) = delete;
  double pass();

 private:
  struct Buffer;
  ThreadPool& pool_;
  std::unique_ptr<Buffer> buf_;
};

// Per bench point with probe_bandwidth: 2 read passes as its decode starts, one after every kProbeEvery
// decoded tokens, 2 once it ends.
constexpr int kProbeEvery = 16;

// The median of v (0 if empty).
double median_of(std::vector<double> v);
// The median of the points' read_gbps (0 if none was measured).
double median_read_gbps(const std::vector<BenchPoint>& pts);

std::vector<BenchPoint> run_bench(Model& model, const BenchOptions& opt,
                                  const std::function<void(const std::string&)>& on_progress);

}  // namespace tqlm
