#include "runtime/generator.h"

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "core/error.h"

namespace tqlm {

namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void add_ids(const nlohmann::json& v, std::set<int32_t>& out) {
  if (v.is_number_integer())
    out.insert(v.get<int32_t>());
  else if (v.is_array())
    for (const auto& x : v)
      if (x.is_number_integer()) out.insert(x.get<int32_t>());
}

// Length of the longest suffix of `text` that is a proper prefix of some stop string.
size_t held_back(const std::string& text, const std::vector<std::string>& stops) {
  size_t hold = 0;
  for (const auto& s : stops)
    for (size_t k = std::min(s.size() - 1, text.size()); k > hold; --k)
      if (text.compare(text.size() - k, k, s, 0, k) == 0) {
        hold = k;
        break;
      }
  return hold;
}
}  // namespace

std::set<int32_t> model_eos_ids(const Model& m, const Tokenizer& tok) {
  std::set<int32_t> ids;
  if (const auto& g = m.checkpoint().generation_config(); g && g->is_object())
    if (auto it = g->find("eos_token_id"); it != g->end()) add_ids(*it, ids);
  if (auto it = m.checkpoint().config().find("eos_token_id"); it != m.checkpoint().config().end())
    add_ids(*it, ids);
  const auto tc_path = std::filesystem::path(m.checkpoint().path()) / "tokenizer_config.json";
  std::error_code ec;
  if (std::filesystem::exists(tc_path, ec)) {
    nlohmann::json tc = read_json_file(tc_path.string());
    auto eos = tc.find("eos_token");
    std::string name;
    if (eos != tc.end() && eos->is_string())
      name = eos->get<std::string>();
    else if (eos != tc.end() && eos->is_object() && eos->contains("content"))
      name = (*eos)["content"].get<std::string>();
    if (!name.empty())
      if (auto id = tok.token_to_id(name)) ids.insert(*id);
  }
  return ids;
}

Generator::Generator(Model& model, const Tokenizer& tok, const KVSpec& kv)
    : model_(model), tok_(tok), cache_(model.new_cache(kv)) {
  eos_ids = model_eos_ids(model, tok);
  for (const char* t : {"<think>", "</think>"})
    if (auto id = tok.token_to_id(t)) keep_special.insert(*id);
}

GenerateStats Generator::generate(const std::vector<int32_t>& prompt, Sampler& sampler,
                                  const GenerateOptions& opt,
                                  const std::function<bool(const std::string&)>& on_text) {
  GenerateStats st;
  if (prompt.empty()) fail("the prompt is empty");
  const int64_t vocab = model_.config().vocab;
  const int64_t ctx =
      opt.ctx > 0 ? opt.ctx : (model_.config().max_position > 0 ? model_.config().max_position : 1 << 30);
  if (int64_t(prompt.size()) >= ctx)
    fail("the prompt has {} tokens, which does not fit the context of {} tokens (--ctx)", prompt.size(), ctx);

  // Reuse the cached prefix; always recompute at least the last prompt token to get its logits.
  size_t common = 0;
  while (common < tokens_.size() && common < prompt.size() && tokens_[common] == prompt[common]) ++common;
  common = std::min(common, prompt.size() - 1);
  cache_->set_length(int64_t(common));
  tokens_.assign(prompt.begin(), prompt.begin() + int64_t(common));
  st.cached_tokens = int64_t(common);

  logits_.resize(size_t(vocab));
  auto t0 = Clock::now();
  for (size_t i = common; i < prompt.size(); i += size_t(opt.prefill_chunk)) {
    const size_t n = std::min(prompt.size() - i, size_t(opt.prefill_chunk));
    model_.forward(prompt.data() + i, int64_t(n), *cache_, logits_.data(), false);
    tokens_.insert(tokens_.end(), prompt.begin() + int64_t(i), prompt.begin() + int64_t(i + n));
  }
  st.prompt_tokens = int64_t(prompt.size() - common);
  st.prompt_seconds = since(t0);

  // Special tokens are dropped from the text, except reasoning tags that the caller wants to see.
  StreamDecoder dec(tok_, /*skip_special_tokens=*/false);
  std::string pending;  // decoded text not yet emitted (may hold the start of a stop string)
  bool stopped = false;
  auto emit = [&](bool final) {
    size_t keep = final ? 0 : held_back(pending, opt.stop);
    while (keep < pending.size() && keep > 0 && (uint8_t(pending[pending.size() - keep]) & 0xC0) == 0x80)
      ++keep;
    if (pending.size() > keep) {
      if (!on_text(pending.substr(0, pending.size() - keep))) stopped = true;
      pending.erase(0, pending.size() - keep);
    }
  };
  st.finish_reason = "length";
  auto t1 = Clock::now();
  for (int i = 0; i < opt.max_tokens && !stopped; ++i) {
    if (int64_t(tokens_.size()) >= ctx) {
      st.finish_reason = "length";
      break;
    }
    const int32_t tok = sampler.sample(logits_.data(), vocab, tokens_);
    ++st.generated;
    if (!opt.ignore_eos && eos_ids.count(tok)) {
      st.finish_reason = "stop";
      break;
    }
    if (!tok_.is_special(tok) || keep_special.count(tok)) pending += dec.push(tok);
    // stop strings
    size_t cut = std::string::npos;
    for (const auto& s : opt.stop)
      if (!s.empty())
        if (size_t p = pending.find(s); p != std::string::npos) cut = std::min(cut, p);
    if (cut != std::string::npos) {
      pending.resize(cut);
      st.finish_reason = "stop";
      tokens_.push_back(tok);
      break;
    }
    emit(false);
    if (i + 1 < opt.max_tokens) model_.forward(&tok, 1, *cache_, logits_.data(), false);
    tokens_.push_back(tok);
  }
  if (st.finish_reason != "stop") pending += dec.finish();
  emit(true);
  st.gen_seconds = since(t1);
  // The cache holds every token except possibly the last sampled one; keep history in step with it.
  if (int64_t(tokens_.size()) > cache_->length()) tokens_.resize(size_t(cache_->length()));
  return st;
}

}  // namespace tqlm
