#include "model/model.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "dist/comm.h"
#include "kernels/linear.h"
#include "kernels/ops.h"
#include "kernels/qlinear.h"
#include "model/pipeline.h"
#include "model/workspace.h"

namespace tqlm {

// Activation buffers, sized for the largest chunk seen so far (no per-token allocation).

Model::Model(const std::string& path, int threads, const ModelPart& part) : part_(part) {
  if (world().size() > 1 && world().rank() == 0 && part.head && part.layers.begin == 0 && part.layers.end < 0)
    pipe_ = std::make_unique<PipelineHead>(world(), path, threads, &part_);  // sets part_
  ck_ =
      std::make_unique<Checkpoint>(path, [this](const std::string& name) { return part_wants(part_, name); });
  if (!ck_->has_config()) fail("{}: config.json is missing", path);
  cfg_ = parse_model_config(ck_->config(), path + "/config.json");
  w_ = load_weights(*ck_, cfg_, part_);
  pool_ = std::make_unique<ThreadPool>(threads);
  pack_weights(*w_, *pool_);  // the int8 kernels' tile layout, where they have one (TQLM_PACK=0: off)
  ws_ = std::make_unique<Workspace>();
  if (pipe_) {
    pipe_->wait_ready();
    layer_hook_ = [] { world().poll(); };
  }
}

Model::~Model() = default;

std::shared_ptr<KVPool> Model::new_pool(const KVSpec& kv, uint64_t budget_bytes) const {
  if (pipe_) return pipe_->new_pool(kv, cfg_.kv_shape(), budget_bytes, part_.layers);
  return std::make_shared<KVPool>(kv, cfg_.kv_shape(), budget_bytes, part_.layers);
}

std::unique_ptr<KVCache> Model::new_cache(const KVSpec& kv) const {
  return std::make_unique<KVCache>(new_pool(kv));
}

void Model::ensure_workspace(int64_t T) {
  if (T <= ws_->T) return;
  const int64_t D = cfg_.hidden, H = cfg_.n_heads, KV = cfg_.n_kv_heads, hd = cfg_.head_dim;
  const int64_t I = std::max(cfg_.intermediate, cfg_.moe_intermediate);
  const int64_t E = std::max<int64_t>(1, cfg_.n_experts), k = std::max<int64_t>(1, cfg_.top_k);
  Workspace& w = *ws_;
  w.T = T;
  w.x.resize(size_t(T * D));
  w.xn.resize(size_t(T * D));
  w.q.resize(size_t(T * H * hd));
  w.k.resize(size_t(T * KV * hd));
  w.v.resize(size_t(T * KV * hd));
  w.att.resize(size_t(T * H * hd));
  w.y.resize(size_t(T * D));
  w.g.resize(size_t(T * I));
  w.u.resize(size_t(T * I));
  w.gates.resize(size_t(T * E));
  w.sel.resize(size_t(T * k));
  w.selw.resize(size_t(T * k));
  w.xe.resize(size_t(T * D));
  w.ye.resize(size_t(T * D));
  w.rows.resize(size_t(T));
  w.rows_w.resize(size_t(T));
  w.pos.resize(size_t(T));
}

void Model::forward(const int32_t* tokens, int64_t T, KVCache& cache, float* logits, bool all_logits) {
  if (T <= 0) return;
  forward({BatchSeq{&cache, tokens, T, all_logits ? 0 : T - 1}}, logits);
}

void Model::forward(const std::vector<BatchSeq>& batch, float* logits) {
  launch(batch);
  collect(logits);
}

void Model::launch(const std::vector<BatchSeq>& batch) {
  if (pipe_) return pipe_->launch(*this, batch);
  begin_step(batch);
  int64_t n = 0;
  if (ws_->T_step > 0) {
    embed(batch);
    run_layers(batch);
    advance(batch);
  }
  const float* rows = ws_->T_step > 0 ? logit_rows(batch, &n) : nullptr;
  launched_.emplace_back(rows, rows + n * cfg_.hidden);  // [n, D]
}

void Model::collect(float* logits) {
  if (pipe_) return pipe_->collect(*this, logits);
  if (launched_.empty()) fail("forward: collect() without a launched step (a bug)");
  const std::vector<float> rows = std::move(launched_.front());
  launched_.pop_front();
  head(rows.data(), int64_t(rows.size()) / cfg_.hidden, logits);
}

int64_t Model::in_flight() const {
  return pipe_ ? pipe_->in_flight() : int64_t(launched_.size());
}

void Model::set_observer(ActivationObserver* obs) {
  if (pipe_ && obs) fail("calibration observes every layer in one process: run it without mpirun");
  observer_ = obs;
}

int Model::pipeline_depth() const {
  return pipe_ ? pipe_->depth() : 1;
}

int64_t Model::begin_step(const std::vector<BatchSeq>& batch) {
  int64_t T = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    const BatchSeq& s = batch[i];
    if (s.n <= 0 || s.logits_from < 0 || s.logits_from > s.n || !s.cache)
      fail("forward: batch entry {} is malformed (n {}, logits_from {})", i, s.n, s.logits_from);
    for (size_t j = 0; j < i; ++j)
      if (batch[j].cache == s.cache) fail("forward: one sequence appears twice in a batch");
    T += s.n;
  }
  ensure_workspace(T);
  ws_->T_step = T;
  // pos[t] = the row's position in its own sequence
  for (int64_t i = 0, t = 0; i < int64_t(batch.size()); ++i)
    for (int64_t j = 0; j < batch[size_t(i)].n; ++j, ++t)
      ws_->pos[size_t(t)] = batch[size_t(i)].cache->length() + j;
  return T;
}

float* Model::hidden() {
  return ws_->x.data();
}

void Model::embed(const std::vector<BatchSeq>& batch) {
  if (!part_.head) fail("forward: this pipeline stage has no embedding (a bug)");
  const int64_t D = cfg_.hidden;
  for (int64_t i = 0, t = 0; i < int64_t(batch.size()); ++i)
    for (int64_t j = 0; j < batch[size_t(i)].n; ++j, ++t) {
      const int32_t tok = batch[size_t(i)].tokens[j];
      if (tok < 0 || tok >= cfg_.vocab)
        fail("token id {} is outside the vocabulary [0, {})", tok, cfg_.vocab);
      linear_row_f32(w_->embed, tok, &ws_->x[size_t(t * D)]);  // x[t] = embed_tokens[token t]
    }
}

void Model::run_layers(const std::vector<BatchSeq>& batch) {
  Workspace& w = *ws_;
  const int64_t D = cfg_.hidden, T = w.T_step;
  for (int64_t l = part_.layers.begin; l < part_.layers.end_of(cfg_.n_layers); ++l) {
    const auto t0 = std::chrono::steady_clock::now();
    const LayerWeights& lw = w_->layers[size_t(l)];
    for (int64_t t = 0; t < T; ++t)
      rmsnorm_f32(&w.x[size_t(t * D)], lw.attn_norm.data(), D, cfg_.rms_eps, &w.xn[size_t(t * D)]);
    attention(l, T, batch);  // y = attention(xn)
    for (int64_t i = 0; i < T * D; ++i) w.x[size_t(i)] += w.y[size_t(i)];
    for (int64_t t = 0; t < T; ++t)
      rmsnorm_f32(&w.x[size_t(t * D)], lw.mlp_norm.data(), D, cfg_.rms_eps, &w.xn[size_t(t * D)]);
    if (cfg_.layer_is_moe[size_t(l)])
      moe(l, T);
    else
      mlp(l, T);  // y = mlp(xn)
    for (int64_t i = 0; i < T * D; ++i) w.x[size_t(i)] += w.y[size_t(i)];
    if (layer_clock_ && size_t(l) < layer_clock_->size())
      (*layer_clock_)[size_t(l)] +=
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (layer_hook_) layer_hook_();
  }
}

void Model::advance(const std::vector<BatchSeq>& batch) {
  for (const BatchSeq& s : batch) s.cache->set_length(s.cache->length() + s.n);
}

const float* Model::logit_rows(const std::vector<BatchSeq>& batch, int64_t* n) {
  Workspace& w = *ws_;
  const int64_t D = cfg_.hidden;
  int64_t r = 0;  // y [n, D] <- x rows [t0 + logits_from, t0 + n) of each sequence
  for (int64_t i = 0, t0 = 0; i < int64_t(batch.size()); t0 += batch[size_t(i)].n, ++i)
    for (int64_t t = t0 + batch[size_t(i)].logits_from; t < t0 + batch[size_t(i)].n; ++t, ++r)
      std::copy_n(&w.x[size_t(t * D)], D, &w.y[size_t(r * D)]);
  *n = r;
  return w.y.data();
}

void Model::head(const float* rows, int64_t n, float* logits) {
  if (n <= 0) return;
  if (!part_.head) fail("forward: this pipeline stage has no LM head (a bug)");
  ensure_workspace(n);
  Workspace& w = *ws_;
  const int64_t D = cfg_.hidden;
  for (int64_t r = 0; r < n; ++r)
    rmsnorm_f32(rows + r * D, w_->final_norm.data(), D, cfg_.rms_eps, &w.xn[size_t(r * D)]);
  if (observer_) observer_->observe(-1, LinearSite::lm_head, -1, w.xn.data(), n, D, nullptr);
  LinearInput xin{w.xn.data(), n, D, &w.qa};  // [n, D]
  linear(w_->lm_head, xin, logits, *pool_);   // [n, vocab]
}

void Model::attention(int64_t l, int64_t T, const std::vector<BatchSeq>& batch) {
  const LayerWeights& lw = w_->layers[size_t(l)];
  Workspace& w = *ws_;
  const int64_t H = cfg_.n_heads, KV = cfg_.n_kv_heads, hd = cfg_.head_dim;
  if (observer_) observer_->observe(l, LinearSite::attn_qkv, -1, w.xn.data(), T, cfg_.hidden, nullptr);
  LinearInput xin{w.xn.data(), T, cfg_.hidden, &w.qa};  // quantized once for q, k, v
  linear_many({{&lw.q, w.q.data()},                     // [T, H*hd]
               {&lw.k, w.k.data()},                     // [T, KV*hd]
               {&lw.v, w.v.data()}},                    // [T, KV*hd]
              xin, *pool_);
  for (int64_t t = 0; t < T; ++t) {
    float* qt = &w.q[size_t(t * H * hd)];
    float* kt = &w.k[size_t(t * KV * hd)];
    if (cfg_.qk_norm == QkNorm::full) {  // minimax: over the whole projection, before the head split
      rmsnorm_f32(qt, lw.q_norm.data(), H * hd, cfg_.rms_eps, qt);
      rmsnorm_f32(kt, lw.k_norm.data(), KV * hd, cfg_.rms_eps, kt);
    } else if (cfg_.qk_norm == QkNorm::per_head) {  // qwen3: per head
      for (int64_t h = 0; h < H; ++h)
        rmsnorm_f32(qt + h * hd, lw.q_norm.data(), hd, cfg_.rms_eps, qt + h * hd);
      for (int64_t h = 0; h < KV; ++h)
        rmsnorm_f32(kt + h * hd, lw.k_norm.data(), hd, cfg_.rms_eps, kt + h * hd);
    }
    const int64_t pos = w.pos[size_t(t)];
    for (int64_t h = 0; h < H; ++h)
      rope_f32(qt + h * hd, cfg_.rotary_dim, cfg_.rope_inv_freq, pos, cfg_.rope_traditional);
    for (int64_t h = 0; h < KV; ++h)
      rope_f32(kt + h * hd, cfg_.rotary_dim, cfg_.rope_inv_freq, pos, cfg_.rope_traditional);
  }
  // each sequence over its own cache: rows [t0, t0 + n) at positions [cache.length(), + n)
  for (int64_t i = 0, t0 = 0; i < int64_t(batch.size()); t0 += batch[size_t(i)].n, ++i) {
    KVCache& cache = *batch[size_t(i)].cache;
    const int64_t n = batch[size_t(i)].n, pos = cache.length();
    cache.write(l, pos, n, &w.k[size_t(t0 * KV * hd)], &w.v[size_t(t0 * KV * hd)]);
    cache.attend(l, pos, n, &w.q[size_t(t0 * H * hd)], &w.att[size_t(t0 * H * hd)], *pool_);  // [n, H*hd]
  }
  if (observer_) observer_->observe(l, LinearSite::attn_o, -1, w.att.data(), T, H * hd, nullptr);
  LinearInput ain{w.att.data(), T, H * hd, &w.qa};
  linear(lw.o, ain, w.y.data(), *pool_);  // [T, D]
}

void Model::mlp(int64_t l, int64_t T) {
  const LayerWeights& lw = w_->layers[size_t(l)];
  Workspace& w = *ws_;
  const int64_t I = lw.gate.out;
  if (observer_) observer_->observe(l, LinearSite::mlp_gate_up, -1, w.xn.data(), T, cfg_.hidden, nullptr);
  LinearInput xin{w.xn.data(), T, cfg_.hidden, &w.qa};                       // quantized once for gate, up
  linear_many({{&lw.gate, w.g.data()}, {&lw.up, w.u.data()}}, xin, *pool_);  // [T, I] each
  silu_mul_f32(w.g.data(), w.u.data(), T * I);
  if (observer_) observer_->observe(l, LinearSite::mlp_down, -1, w.g.data(), T, I, nullptr);
  LinearInput gin{w.g.data(), T, I, &w.qa};
  linear(lw.down, gin, w.y.data(), *pool_);  // [T, D]
}

}  // namespace tqlm
