#include "tokenizer/tokenizer.h"

#include <filesystem>

#include "io/checkpoint.h"
#include "tokenizer/tokenizer_json.h"
#include "tokenizer/utf8.h"

namespace tqlm {

Tokenizer Tokenizer::from_file(const std::string& path) {
  std::string file = path;
  if (std::filesystem::is_directory(path)) {
    file = (std::filesystem::path(path) / "tokenizer.json").string();
    if (!std::filesystem::exists(file)) fail("{}: no tokenizer.json in this directory", path);
  }
  return from_json(read_json_file(file), file);
}

Tokenizer Tokenizer::from_json(const nlohmann::json& j, const std::string& label) {
  // Every error names the file: a wrong-typed field deep inside becomes "LABEL: ...", never the JSON
  // library's bare text.
  try {
    return parse(j, label);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: invalid tokenizer: {}", label, e.what());
  } catch (const Error& e) {
    if (std::string_view(e.what()).find(label) != std::string_view::npos) throw;
    fail("{}: {}", label, e.what());
  }
}

Tokenizer Tokenizer::parse(const nlohmann::json& j, const std::string& label) {
  Tokenizer t;
  t.label_ = label;
  if (!j.is_object()) fail("{}: expected a JSON object", label);
  const auto& model = tokjson::req(j, "model", label);
  const std::string mtype = tokjson::opt_string(model, "type", "BPE");
  if (mtype != "BPE") fail("{}: model.type '{}' is not supported (only BPE)", label, mtype);
  const nlohmann::json null;
  t.normalizer_ = make_normalizer(j.value("normalizer", null), label + ": normalizer");
  t.pre_tokenizer_ = make_pre_tokenizer(j.value("pre_tokenizer", null), label + ": pre_tokenizer");
  t.model_ = std::make_unique<BpeModel>(model, label + ": model");
  t.decoder_ = std::make_unique<Decoder>(j.value("decoder", null), label + ": decoder");
  t.added_ = AddedVocab(j.value("added_tokens", null), t.normalizer_.get(), label + ": added_tokens");
  t.post_ = make_post_processor(j.value("post_processor", null), label + ": post_processor");
  t.vocab_size_ = t.model_->vocab_size();
  for (const auto& a : t.added_.tokens()) t.vocab_size_ = std::max(t.vocab_size_, size_t(a.id) + 1);
  return t;
}

void Tokenizer::encode_text(const std::string& text, bool at_start, std::vector<int32_t>& out) const {
  std::vector<Piece> pieces{{text, at_start}};
  if (pre_tokenizer_) pre_tokenizer_->pre_tokenize(pieces);
  for (const Piece& p : pieces) model_->tokenize(p.text, out);
}

std::vector<Segment> Tokenizer::segments(std::string_view text) const {
  utf8::validate(text, "tokenize: input text");
  std::vector<Segment> raw, segs;
  added_.split({std::string(text), -1, true}, false, raw);
  for (Segment& s : raw) {
    if (s.id < 0 && normalizer_) s.text = normalizer_->normalize(std::move(s.text));
    added_.split(s, true, segs);
  }
  return segs;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  std::vector<int32_t> out;
  if (add_special_tokens) out = post_.prefix;
  for (const Segment& s : segments(text)) {
    if (s.id >= 0)
      out.push_back(s.id);
    else if (!s.text.empty())
      encode_text(s.text, s.at_start, out);
  }
  if (add_special_tokens) out.insert(out.end(), post_.suffix.begin(), post_.suffix.end());
  return out;
}

std::vector<std::string> Tokenizer::pieces(std::string_view text) const {
  std::vector<std::string> out;
  for (const Segment& s : segments(text)) {
    if (s.id >= 0 || s.text.empty()) {
      if (!s.text.empty()) out.push_back(s.text);
      continue;
    }
    std::vector<Piece> ps{{s.text, s.at_start}};
    if (pre_tokenizer_) pre_tokenizer_->pre_tokenize(ps);
    for (Piece& p : ps) out.push_back(std::move(p.text));
  }
  return out;
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  if (auto id = added_.find(token)) return id;
  return model_->token_to_id(token);
}

std::optional<std::string> Tokenizer::id_to_token(int32_t id) const {
  if (const AddedToken* a = added_.find(id)) return a->content;
  if (const std::string* s = model_->id_to_token(id)) return *s;
  return std::nullopt;
}

bool Tokenizer::is_special(int32_t id) const {
  const AddedToken* a = added_.find(id);
  return a && a->special;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (skip_special_tokens && is_special(id)) continue;
    if (auto t = id_to_token(id)) tokens.push_back(std::move(*t));
  }
  return decoder_->decode(std::move(tokens));
}

std::string Tokenizer::decode_bytes(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  Decoder::StreamState st;
  std::string out;
  for (int32_t id : ids) {
    if (skip_special_tokens && is_special(id)) continue;
    if (auto t = id_to_token(id)) out += decoder_->piece(*t, st);
  }
  return out;
}

std::string StreamDecoder::push(int32_t id) {
  if (skip_special_ && tok_.is_special(id)) return {};
  auto t = tok_.id_to_token(id);
  if (!t) return {};
  pending_ += tok_.decoder().piece(*t, state_);
  const size_t n = utf8::complete_prefix(pending_);
  std::string out = utf8::lossy(std::string_view(pending_).substr(0, n));
  pending_.erase(0, n);
  return out;
}

std::string StreamDecoder::finish() {
  std::string out = utf8::lossy(pending_);
  pending_.clear();
  return out;
}

}  // namespace tqlm
