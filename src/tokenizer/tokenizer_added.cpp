#include "tokenizer/tokenizer_added.h"

#include "core/json.h"
#include "tokenizer/tokenizer_json.h"
#include "tokenizer/tokenizer_regex.h"
#include "tokenizer/utf8.h"

namespace tqlm {
namespace {

// Rust regex's \w: Alphabetic, marks, decimal digits, connector punctuation, join controls.
const Regex& word_char_regex() {
  static const Regex r("[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}]", "added token word test");
  return r;
}

bool is_word_char(std::string_view s, size_t b, size_t e) {
  std::vector<std::pair<size_t, size_t>> m;
  word_char_regex().find_all(s.substr(b, e - b), m);
  return !m.empty();
}

// Does s[..pos] end with a word character?
bool ends_with_word(std::string_view s, size_t pos) {
  if (pos == 0) return false;
  size_t b = pos - 1;
  while (b > 0 && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80) --b;
  return is_word_char(s, b, pos);
}

bool starts_with_word(std::string_view s, size_t pos) {
  if (pos >= s.size()) return false;
  size_t e = pos;
  utf8::next(s, e);
  return is_word_char(s, pos, e);
}

}  // namespace

void AddedVocab::Trie::add(std::string_view s, int token) {
  if (s.empty()) return;
  int node = 0;
  for (unsigned char c : s) {
    auto it = next[node].find(c);
    if (it == next[node].end()) {
      next.emplace_back();
      terminal.push_back(-1);
      const int fresh = static_cast<int>(next.size()) - 1;
      next[node][c] = fresh;
      node = fresh;
    } else {
      node = it->second;
    }
  }
  if (terminal[node] < 0) terminal[node] = token;  // the first of equal patterns wins
  first_byte[static_cast<unsigned char>(s[0])] = true;
  empty = false;
}

void AddedVocab::Trie::find(std::string_view s, size_t from, size_t& start, size_t& end, int& token) const {
  token = -1;
  if (empty) return;
  for (size_t i = from; i < s.size(); ++i) {
    if (!first_byte[static_cast<unsigned char>(s[i])]) continue;
    int node = 0;
    for (size_t k = i; k < s.size(); ++k) {
      auto it = next[node].find(static_cast<unsigned char>(s[k]));
      if (it == next[node].end()) break;
      node = it->second;
      if (terminal[node] >= 0) {
        token = terminal[node];
        start = i;
        end = k + 1;
      }
    }
    if (token >= 0) return;
  }
}

AddedVocab::AddedVocab(const nlohmann::json& added, const Normalizer* normalizer, const std::string& where) {
  if (added.is_null()) return;
  if (!added.is_array()) fail("{}: expected an array", where);
  size_t total = 0;
  for (size_t i = 0; i < added.size(); ++i) {
    const auto& j = added[i];
    const std::string w = fmt::format("{}[{}]", where, i);
    AddedToken t;
    t.content = tokjson::req_string(j, "content", w);
    if (t.content.size() > kMaxAddedTokenBytes)
      fail("{}.content: {} bytes, over the limit kMaxAddedTokenBytes = {}", w, t.content.size(),
           kMaxAddedTokenBytes);
    if ((total += t.content.size()) > kMaxAddedTokensBytes)
      fail("{}: added tokens hold more than the limit kMaxAddedTokensBytes = {} bytes", where,
           kMaxAddedTokensBytes);
    t.id = int32_t(
        json_int(tokjson::req(j, "id", w), w + ".id (limit kMaxTokenizerVocab)", 0, kMaxTokenizerVocab - 1));
    t.single_word = tokjson::opt_bool(j, "single_word", false);
    t.lstrip = tokjson::opt_bool(j, "lstrip", false);
    t.rstrip = tokjson::opt_bool(j, "rstrip", false);
    t.special = tokjson::opt_bool(j, "special", false);
    t.normalized = tokjson::opt_bool(j, "normalized", !t.special);
    if (t.content.empty()) continue;
    by_id_[t.id] = tokens_.size();
    tokens_.push_back(t);
  }
  // HF builds its matchers from the special tokens first, then the others.
  for (int pass = 0; pass < 2; ++pass) {
    for (size_t k = 0; k < tokens_.size(); ++k) {
      const AddedToken& t = tokens_[k];
      if (t.special != (pass == 0)) continue;
      if (!t.normalized)
        raw_.add(t.content, static_cast<int>(k));
      else
        normalized_.add(normalizer ? normalizer->normalize(t.content) : t.content, static_cast<int>(k));
    }
  }
}

const AddedToken* AddedVocab::find(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

std::optional<int32_t> AddedVocab::find(std::string_view content) const {
  for (const auto& t : tokens_) {
    if (t.content == content) return t.id;
  }
  return std::nullopt;
}

void AddedVocab::split(const Segment& in, bool normalized_pass, std::vector<Segment>& out) const {
  const Trie& trie = normalized_pass ? normalized_ : raw_;
  const std::string_view s = in.text;
  if (in.id >= 0 || trie.empty || s.empty()) {
    out.push_back(in);
    return;
  }
  size_t offset = 0;  // end of what has been emitted
  size_t pos = 0;     // where the next search starts
  while (true) {
    size_t b = 0, e = 0;
    int k = -1;
    trie.find(s, pos, b, e, k);
    if (k < 0) break;
    pos = e;  // like HF, the search resumes after the match itself, not after stripped spaces
    const AddedToken& t = tokens_[k];
    if (t.single_word && (ends_with_word(s, b) || starts_with_word(s, e))) continue;
    if (t.lstrip) {
      size_t nb = b;
      while (nb > 0) {
        size_t cb = nb - 1;
        while (cb > 0 && (static_cast<unsigned char>(s[cb]) & 0xC0) == 0x80) --cb;
        size_t tmp = cb;
        if (!utf8::is_white_space(utf8::next(s, tmp))) break;
        nb = cb;
      }
      b = std::max(nb, offset);
    }
    if (t.rstrip) {
      while (e < s.size()) {
        size_t tmp = e;
        if (!utf8::is_white_space(utf8::next(s, tmp))) break;
        e = tmp;
      }
    }
    if (offset < b) {
      out.push_back({std::string(s.substr(offset, b - offset)), -1, in.at_start && offset == 0});
    }
    out.push_back({std::string(s.substr(b, e - b)), t.id, in.at_start && b == 0});
    offset = e;
  }
  if (offset < s.size()) out.push_back({std::string(s.substr(offset)), -1, in.at_start && offset == 0});
}

}  // namespace tqlm
