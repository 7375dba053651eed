// The mixture-of-experts block: one routing pass for all rows, rows grouped by expert, each active expert's
// gate/up -> SiLU -> down once over its rows, outputs added back weighted, experts in ascending order.
//
// Small steps (decode: at most kMoeGroupedRows routed rows) run every active expert's gate and up in one
// parallel loop and every down in a second (linear_q8_grouped), so the threads split across experts and rows
// with two barriers per layer instead of three per expert. Larger steps (prefill) run expert by expert: each
// expert then has enough rows to fill the threads. Both compute every row the same way (same kernels, same
// order of the weighted sum), so the choice never changes a result.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "kernels/linear.h"
#include "kernels/ops.h"
#include "kernels/qlinear.h"
#include "model/model.h"
#include "model/observer.h"
#include "model/workspace.h"

namespace tqlm {

namespace {
constexpr int64_t kMoeGroupedRows = 64;  // routed rows (tokens x top_k) up to which experts run grouped

// y[rows[r]] += weight[r] * ye[r] for r < n, in order (y [T, D], ye [n, D]).
void scatter_add(float* y, const float* ye, const int64_t* rows, const float* weight, int64_t n, int64_t D) {
  for (int64_t r = 0; r < n; ++r) {
    float* yt = y + rows[r] * D;
    for (int64_t i = 0; i < D; ++i) yt[i] += weight[r] * ye[r * D + i];
  }
}
}  // namespace

void Model::route(int64_t l, int64_t T) {
  const LayerWeights& lw = w_->layers[size_t(l)];
  Workspace& w = *ws_;
  const int64_t D = cfg_.hidden, E = cfg_.n_experts, k = cfg_.top_k;
  if (observer_) observer_->observe(l, LinearSite::router, -1, w.xn.data(), T, D, nullptr);
  LinearInput xin{w.xn.data(), T, D, &w.qa};
  linear(lw.router, xin, w.gates.data(), *pool_);  // [T, E] logits (f32)
  std::vector<int32_t> order(static_cast<size_t>(E));
  std::vector<float> key(static_cast<size_t>(E));  // what top-k is taken on
  for (int64_t t = 0; t < T; ++t) {
    float* gt = &w.gates[size_t(t * E)];
    int32_t* st = &w.sel[size_t(t * k)];
    float* wt = &w.selw[size_t(t * k)];
    key.assign(gt, gt + E);
    if (cfg_.router == Router::softmax_topk) {
      softmax_f32(gt, E);
      key.assign(gt, gt + E);
    } else if (cfg_.router == Router::sigmoid_bias) {
      for (int64_t e = 0; e < E; ++e) {
        gt[e] = 1.0f / (1.0f + std::exp(-gt[e]));
        key[size_t(e)] = gt[e] + lw.router_bias[size_t(e)];
      }
    }
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) {
      return key[size_t(a)] > key[size_t(b)] || (key[size_t(a)] == key[size_t(b)] && a < b);
    });
    for (int64_t j = 0; j < k; ++j) st[j] = order[size_t(j)], wt[j] = gt[order[size_t(j)]];
    if (cfg_.router == Router::topk_softmax) {
      softmax_f32(wt, k);
    } else if (cfg_.router == Router::sigmoid_bias || cfg_.norm_topk) {
      float s = 0.0f;
      for (int64_t j = 0; j < k; ++j) s += wt[j];
      const float denom = cfg_.router == Router::sigmoid_bias ? s + 1e-20f : s;
      for (int64_t j = 0; j < k; ++j) wt[j] /= denom;
    }
  }
}

void Model::moe(int64_t l, int64_t T) {
  const LayerWeights& lw = w_->layers[size_t(l)];
  Workspace& w = *ws_;
  const int64_t D = cfg_.hidden, E = cfg_.n_experts, k = cfg_.top_k, Ie = cfg_.moe_intermediate;
  route(l, T);
  std::fill(w.y.begin(), w.y.begin() + T * D, 0.0f);
  const bool grouped = T * k <= kMoeGroupedRows && linear_path() == LinearPath::int8 &&
                       lw.exp_gate.quantized() && lw.exp_up.quantized() && lw.exp_down.quantized();
  if (!grouped) {  // expert by expert: gather its rows, gate/up/SiLU/down over all of them, scatter-add
    for (int64_t e = 0; e < E; ++e) {
      int64_t n = 0;
      for (int64_t t = 0; t < T; ++t)
        for (int64_t j = 0; j < k; ++j)
          if (w.sel[size_t(t * k + j)] == e) {
            w.rows[size_t(n)] = t;
            w.rows_w[size_t(n)] = w.selw[size_t(t * k + j)];
            std::copy_n(&w.xn[size_t(t * D)], D, &w.xe[size_t(n * D)]);
            ++n;
          }
      if (n == 0) continue;
      if (observer_) observer_->observe(l, LinearSite::expert_gate_up, e, w.xe.data(), n, D, w.rows_w.data());
      const Linear gate = lw.exp_gate.expert(e), up = lw.exp_up.expert(e);
      LinearInput ein{w.xe.data(), n, D, &w.qa};                           // quantized once for gate, up
      linear_many({{&gate, w.g.data()}, {&up, w.u.data()}}, ein, *pool_);  // [n, Ie] each
      silu_mul_f32(w.g.data(), w.u.data(), n * Ie);
      if (observer_) observer_->observe(l, LinearSite::expert_down, e, w.g.data(), n, Ie, w.rows_w.data());
      LinearInput gin{w.g.data(), n, Ie, &w.qa};
      linear(lw.exp_down.expert(e), gin, w.ye.data(), *pool_);  // [n, D]
      scatter_add(w.y.data(), w.ye.data(), w.rows.data(), w.rows_w.data(), n, D);
    }
    return;
  }
  // Grouped: the R = T * k routed rows, ordered by expert (ascending) then token; group i = expert e_i's rows
  // [first_i, first_i + n_i) of xe [R, D], g/u [R, Ie], ye [R, D].
  const int64_t R = T * k;
  if (w.xe.size() < size_t(R * D)) w.xe.resize(size_t(R * D)), w.ye.resize(size_t(R * D));
  if (w.g.size() < size_t(R * Ie)) w.g.resize(size_t(R * Ie)), w.u.resize(size_t(R * Ie));
  if (w.rows.size() < size_t(R)) w.rows.resize(size_t(R)), w.rows_w.resize(size_t(R));
  struct Group {
    int64_t e, first, n;
  };
  std::vector<Group> groups;
  std::vector<int64_t> count(static_cast<size_t>(E), 0);
  for (int64_t i = 0; i < R; ++i) ++count[size_t(w.sel[size_t(i)])];
  for (int64_t e = 0, first = 0; e < E; ++e)
    if (count[size_t(e)]) groups.push_back({e, first, count[size_t(e)]}), first += count[size_t(e)];
  int64_t n = 0;
  for (const Group& gr : groups)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t j = 0; j < k; ++j)
        if (w.sel[size_t(t * k + j)] == gr.e) {
          w.rows[size_t(n)] = t;
          w.rows_w[size_t(n)] = w.selw[size_t(t * k + j)];
          std::copy_n(&w.xn[size_t(t * D)], D, &w.xe[size_t(n * D)]);
          ++n;
        }
  if (w.qe.size() < groups.size()) w.qe.resize(groups.size()), w.qg.resize(groups.size());
  std::vector<QLinearJob> jobs;
  std::vector<Linear> gate(groups.size()), up(groups.size()), down(groups.size());
  for (size_t i = 0; i < groups.size(); ++i) {
    const Group& gr = groups[i];
    const float* xe = &w.xe[size_t(gr.first * D)];
    if (observer_)
      observer_->observe(l, LinearSite::expert_gate_up, gr.e, xe, gr.n, D, &w.rows_w[size_t(gr.first)]);
    quantize_acts_q8(xe, gr.n, D, w.qe[i]);
    gate[i] = lw.exp_gate.expert(gr.e), up[i] = lw.exp_up.expert(gr.e), down[i] = lw.exp_down.expert(gr.e);
    jobs.push_back({&gate[i], &w.qe[i], &w.g[size_t(gr.first * Ie)]});  // [n, Ie]
    jobs.push_back({&up[i], &w.qe[i], &w.u[size_t(gr.first * Ie)]});    // [n, Ie]
  }
  linear_q8_grouped(jobs, *pool_);
  silu_mul_f32(w.g.data(), w.u.data(), R * Ie);
  jobs.clear();
  for (size_t i = 0; i < groups.size(); ++i) {
    const Group& gr = groups[i];
    const float* g = &w.g[size_t(gr.first * Ie)];
    if (observer_)
      observer_->observe(l, LinearSite::expert_down, gr.e, g, gr.n, Ie, &w.rows_w[size_t(gr.first)]);
    quantize_acts_q8(g, gr.n, Ie, w.qg[i]);
    jobs.push_back({&down[i], &w.qg[i], &w.ye[size_t(gr.first * D)]});  // [n, D]
  }
  linear_q8_grouped(jobs, *pool_);
  // experts in ascending order, as the expert-by-expert path adds them
  scatter_add(w.y.data(), w.ye.data(), w.rows.data(), w.rows_w.data(), R, D);
}

}  // namespace tqlm
