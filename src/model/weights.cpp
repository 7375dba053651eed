#include "model/weights.h"

#include <cstring>

#include "core/error.h"

namespace tqlm {

namespace {

class Loader {
 public:
  explicit Loader(const Checkpoint& ck) : ck_(ck) {}

  // A tensor's data, in place in the mapped file at whatever offset the file gave it (every kernel reads
  // weights through load_u16/load_u32/load_f32 or unaligned vector loads: core/dtype.h). Nothing is copied,
  // so a model's resident memory is its mapped file.
  static const void* data(const TensorView& t) { return t.data; }

  const TensorView& need(const std::string& name) {
    const TensorView* t = ck_.tensors().find(name);
    if (!t) fail("{}: tensor '{}' is missing", ck_.path(), name);
    return *t;
  }

  // A Linear module with logical shape [E?, out, in]; n_experts = 0 means a plain 2-D weight.
  Linear linear(const std::string& mod, int64_t out, int64_t in, int64_t n_experts = 0,
                bool optional_bias = true) {
    Linear l;
    l.name = mod;
    Shape want = n_experts ? Shape{n_experts, out, in} : Shape{out, in};
    if (ck_.is_quantized(mod)) {
      QuantizedWeight q = ck_.quantized(mod);
      if (q.logical_shape != want)
        fail("{}: '{}' has shape {} (dequantized), expected {}", ck_.path(), mod, shape_str(q.logical_shape),
             shape_str(want));
      l.bits = q.bits;
      l.group_size = q.group_size;
      l.wq = static_cast<const uint32_t*>(data(*q.weight));
      l.scales = data(*q.scales);
      l.biases = data(*q.biases);
      l.sdtype = q.scales->dtype;
    } else {
      const TensorView* t = ck_.tensors().find(mod + ".weight");
      if (!t && n_experts)
        fail("{}: '{}.weight' is missing; per-expert HF tensors must be stacked first (tqlm convert)",
             ck_.path(), mod);
      if (!t) fail("{}: tensor '{}.weight' is missing", ck_.path(), mod);
      if (t->shape != want)
        fail("{}: '{}' has shape {}, expected {}", ck_.path(), t->name, shape_str(t->shape), shape_str(want));
      if (t->dtype != DType::F32 && t->dtype != DType::F16 && t->dtype != DType::BF16)
        fail("{}: '{}' has dtype {}; expected F32, F16 or BF16 (FP8 sources: tqlm convert first)", ck_.path(),
             t->name, dtype_name(t->dtype));
      l.w = data(*t);
      l.wdtype = t->dtype;
    }
    l.out = out;
    l.in = in;
    l.n_experts = n_experts ? n_experts : 1;
    if (const TensorView* b = ck_.tensors().find(mod + ".bias")) {
      if (!optional_bias) fail("{}: unexpected bias '{}'", ck_.path(), b->name);
      Shape bw = n_experts ? Shape{n_experts, out} : Shape{out};
      if (b->shape != bw)
        fail("{}: '{}' has shape {}, expected {}", ck_.path(), b->name, shape_str(b->shape), shape_str(bw));
      l.bias = data(*b);
      l.bias_dtype = b->dtype;
    }
    return l;
  }

  std::vector<float> vec(const std::string& name, int64_t n) {
    const TensorView& t = need(name);
    if (t.shape != Shape{n})
      fail("{}: '{}' has shape {}, expected [{}]", ck_.path(), name, shape_str(t.shape), n);
    if (!dtype_is_float(t.dtype)) fail("{}: '{}' must be a float tensor", ck_.path(), name);
    std::vector<float> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) v[size_t(i)] = load_as_f32(t.data, t.dtype, size_t(i));
    return v;
  }

 private:
  const Checkpoint& ck_;
};

// The number of decoder layers the tensors hold (1 + the largest N of "model.layers.N."), or -1 when a
// layer index is not a number.
const std::string kLayerPrefix = "model.layers.";

// The N of "model.layers.N.rest": -1 for a name outside the layers, -2 when N is not a number.
int64_t layer_of(const std::string& name) {
  if (name.rfind(kLayerPrefix, 0) != 0) return -1;
  const size_t dot = name.find('.', kLayerPrefix.size());
  const std::string idx =
      name.substr(kLayerPrefix.size(), dot == std::string::npos ? 0 : dot - kLayerPrefix.size());
  if (idx.empty() || idx.size() > 9 || idx.find_first_not_of("0123456789") != std::string::npos) return -2;
  return std::stoll(idx);
}

int64_t checkpoint_layers(const TensorStore& ts, std::string* example) {
  int64_t n = 0;
  for (const std::string& name : ts.names()) {
    const int64_t l = layer_of(name);
    if (l == -2) {
      *example = name;
      return -1;
    }
    if (l + 1 > n) n = l + 1, *example = name;
  }
  return n;
}

}  // namespace

bool part_wants(const ModelPart& part, const std::string& name) {
  const int64_t l = layer_of(name);
  return l == -1 ? part.head : l >= 0 && part.layers.contains(l);
}

std::unique_ptr<ModelWeights> load_weights(const Checkpoint& ck, const ModelConfig& c,
                                           const ModelPart& part) {
  // The config's layer count must be the checkpoint's (extra layers are never silently dropped): checked
  // before anything is allocated from the config's numbers.
  std::string example;
  const int64_t have = checkpoint_layers(ck.tensors(), &example);
  if (have < 0) fail("{}: tensor '{}' has a layer index that is not a number", ck.path(), example);
  if (have != c.n_layers)
    fail("{}: config.json says num_hidden_layers = {}, but the tensors hold {} layers{}", ck.path(),
         c.n_layers, have, have ? " (up to '" + example + "')" : "");
  if (part.layers.begin < 0 || part.layers.begin >= part.layers.end_of(c.n_layers) ||
      part.layers.end_of(c.n_layers) > c.n_layers)
    fail("{}: layer range [{}, {}) is not inside the model's {} layers", ck.path(), part.layers.begin,
         part.layers.end_of(c.n_layers), c.n_layers);
  auto mw = std::make_unique<ModelWeights>();
  Loader L(ck);
  const int64_t D = c.hidden, H = c.n_heads, KV = c.n_kv_heads, hd = c.head_dim;
  if (part.head) {
    mw->embed = L.linear("model.embed_tokens", c.vocab, D);
    mw->final_norm = L.vec("model.norm.weight", D);
    if (c.tie_embeddings && !ck.tensors().listed("lm_head.weight"))
      mw->lm_head = mw->embed;
    else
      mw->lm_head = L.linear("lm_head", c.vocab, D);
  }
  mw->layers.resize(size_t(c.n_layers));
  for (int64_t l = part.layers.begin; l < part.layers.end_of(c.n_layers); ++l) {
    LayerWeights& w = mw->layers[size_t(l)];
    const std::string p = "model.layers." + std::to_string(l) + ".";
    w.attn_norm = L.vec(p + "input_layernorm.weight", D);
    w.mlp_norm = L.vec(p + "post_attention_layernorm.weight", D);
    w.q = L.linear(p + "self_attn.q_proj", H * hd, D);
    w.k = L.linear(p + "self_attn.k_proj", KV * hd, D);
    w.v = L.linear(p + "self_attn.v_proj", KV * hd, D);
    w.o = L.linear(p + "self_attn.o_proj", D, H * hd);
    if (c.qk_norm == QkNorm::per_head) {
      w.q_norm = L.vec(p + "self_attn.q_norm.weight", hd);
      w.k_norm = L.vec(p + "self_attn.k_norm.weight", hd);
    } else if (c.qk_norm == QkNorm::full) {
      w.q_norm = L.vec(p + "self_attn.q_norm.weight", H * hd);
      w.k_norm = L.vec(p + "self_attn.k_norm.weight", KV * hd);
    }
    if (c.layer_is_moe[size_t(l)]) {
      const std::string m = p + c.moe_prefix + ".";
      w.router = L.linear(m + "gate", c.n_experts, D);
      if (c.router == Router::sigmoid_bias) w.router_bias = L.vec(m + "e_score_correction_bias", c.n_experts);
      const bool stacked = ck.tensors().has(m + "switch_mlp.gate_proj.weight");
      // MLX stacks experts as switch_mlp.*; HF keeps experts.E.{gate,up,down}_proj (qwen3_moe) or
      // experts.E.{w1,w3,w2} (mixtral, minimax).
      const bool hf_w = ck.tensors().has(m + "experts.0.w1.weight");
      const char* names[3][2] = {{"gate_proj", "w1"}, {"up_proj", "w3"}, {"down_proj", "w2"}};
      Linear* dst[3] = {&w.exp_gate, &w.exp_up, &w.exp_down};
      for (int i = 0; i < 3; ++i) {
        const int64_t out = i == 2 ? D : c.moe_intermediate, in = i == 2 ? c.moe_intermediate : D;
        if (stacked) {
          *dst[i] = L.linear(m + "switch_mlp." + names[i][0], out, in, c.n_experts);
          continue;
        }
        auto parts = std::make_shared<std::vector<Linear>>();
        for (int64_t e = 0; e < c.n_experts; ++e)
          parts->push_back(
              L.linear(m + "experts." + std::to_string(e) + "." + names[i][hf_w ? 1 : 0], out, in));
        *dst[i] = (*parts)[0];
        dst[i]->name = m + "experts.*." + names[i][hf_w ? 1 : 0];
        dst[i]->n_experts = c.n_experts;
        dst[i]->parts = parts;
      }
    } else {
      w.gate = L.linear(p + "mlp.gate_proj", c.intermediate, D);
      w.up = L.linear(p + "mlp.up_proj", c.intermediate, D);
      w.down = L.linear(p + "mlp.down_proj", D, c.intermediate);
    }
  }
  return mw;
}

}  // namespace tqlm
