#include "eval/kv_calibrate.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "core/error.h"
#include "kv/kv_alloc.h"

namespace tqlm {

namespace {

constexpr int64_t kChunk = 256;  // tokens per forward step

// Runs tokens [0, n) through a fresh cache; logits [n, vocab] when `logits` is non-null.
std::unique_ptr<KVCache> run(Model& m, const KVSpec& spec, const int32_t* tok, int64_t n, float* logits) {
  auto cache = m.new_cache(spec);
  std::vector<float> last(size_t(m.config().vocab));
  for (int64_t t = 0; t < n; t += kChunk) {
    const int64_t T = std::min(kChunk, n - t);
    m.forward(tok + t, T, *cache, logits ? logits + t * m.config().vocab : last.data(), logits != nullptr);
  }
  return cache;
}

// In place: rows of x [n, V] -> log-softmax.
void log_softmax_rows(float* x, int64_t n, int64_t V) {
  for (int64_t r = 0; r < n; ++r) {
    float* row = x + r * V;
    const float m = *std::max_element(row, row + V);
    double s = 0;
    for (int64_t i = 0; i < V; ++i) s += std::exp(double(row[i] - m));
    const float lse = m + float(std::log(s));
    for (int64_t i = 0; i < V; ++i) row[i] -= lse;
  }
}

}  // namespace

KVCalib kv_calibrate(Model& model, const std::vector<int32_t>& tokens, const KVCalibrateOptions& o,
                     const CalibrateProgress& progress) {
  const ModelConfig& cfg = model.config();
  const KVShape s = cfg.kv_shape();
  const int64_t L = s.layers, KV = s.kv_heads, hd = s.head_dim, V = cfg.vocab;
  if (o.window < 1 || o.tokens < 1) fail("kv-calibrate: --tokens and --window must be >= 1");
  if (int64_t(tokens.size()) < o.tokens)
    fail("kv-calibrate: the text has {} tokens after the offset, {} wanted", tokens.size(), o.tokens);
  KVCalib c;
  c.layers = L;
  c.kv_heads = KV;
  c.head_dim = hd;
  c.rotary_dim = cfg.rotary_dim;
  c.rope_traditional = cfg.rope_traditional;
  c.rope_inv_freq = cfg.rope_inv_freq;
  c.source = o.source;
  // Means over every cached position: sums [layers, KV, hd] in double.
  std::vector<double> ks(size_t(L * KV * hd)), vs(ks.size());
  std::vector<float> k(static_cast<size_t>(hd)), v(static_cast<size_t>(hd));  // [hd] one key, one value
  int64_t count = 0;
  for (int64_t w0 = 0; w0 < o.tokens; w0 += o.window) {
    const int64_t n = std::min(o.window, o.tokens - w0);
    if (progress) progress("means", w0, o.tokens);
    auto cache = run(model, KVSpec("f32"), tokens.data() + w0, n, nullptr);
    for (int64_t l = 0; l < L; ++l)
      for (int64_t p = 0; p < n; ++p)
        for (int64_t h = 0; h < KV; ++h) {
          cache->dequantize(l, p, h, k.data(), v.data());
          for (int64_t i = 0; i < hd; ++i) {
            ks[size_t((l * KV + h) * hd + i)] += k[size_t(i)];
            vs[size_t((l * KV + h) * hd + i)] += v[size_t(i)];
          }
        }
    count += n;
  }
  for (size_t i = 0; i < ks.size(); ++i) {
    c.k_mean.push_back(float(ks[i] / double(count)));
    c.v_mean.push_back(float(vs[i] / double(count)));
  }
  if (!o.sensitivity) return c;

  const int64_t n = std::min<int64_t>(o.kl_tokens, int64_t(tokens.size()));
  c.kl_tokens = n;
  std::vector<float> ref(size_t(n * V)), got(ref.size());
  run(model, KVSpec("bf16"), tokens.data(), n, ref.data());
  log_softmax_rows(ref.data(), n, V);
  auto calib = std::make_shared<const KVCalib>(c);
  const int64_t total = 2 * int64_t(o.bits.size()) * L;
  int64_t done = 0;
  for (int side = 0; side < 2; ++side)
    for (int b : o.bits) {
      std::vector<double>& out = (side ? c.v_kl : c.k_kl)[b];
      for (int64_t l = 0; l < L; ++l) {
        if (progress) progress("sensitivity", done++, total);
        auto plan = std::make_shared<KVLayerPlan>();
        plan->k.assign(size_t(L), "bf16");
        plan->v.assign(size_t(L), "bf16");
        plan->sink = o.sink;
        (side ? plan->v : plan->k)[size_t(l)] = "turbo" + std::to_string(b);
        KVSpec spec("layers");
        spec.plan = plan;
        spec.calib = calib;
        run(model, spec, tokens.data(), n, got.data());
        log_softmax_rows(got.data(), n, V);
        double kl = 0;
        for (int64_t i = 0; i < n * V; ++i)
          kl += std::exp(double(ref[size_t(i)])) * (ref[size_t(i)] - got[size_t(i)]);
        out.push_back(kl / double(n));
      }
    }
  return c;
}

}  // namespace tqlm
