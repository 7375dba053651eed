#include "tokenizer/bpe.h"

#include <queue>

#include "core/json.h"
#include "tokenizer/tokenizer_json.h"
#include "tokenizer/utf8.h"

namespace tqlm {
namespace {

constexpr size_t kCacheMaxWords = 200000;
constexpr size_t kCacheMaxWordBytes = 256;

uint64_t pair_key(int32_t a, int32_t b) {
  return (uint64_t(uint32_t(a)) << 32) | uint32_t(b);
}

}  // namespace

BpeModel::BpeModel(const nlohmann::json& model, const std::string& where) {
  const auto& vocab = tokjson::req(model, "vocab", where);
  if (!vocab.is_object()) fail("{}.vocab: expected an object of token -> id", where);
  vocab_.reserve(vocab.size());
  int64_t max_id = -1;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    const int64_t id = json_int(
        it.value(), fmt::format("{}.vocab['{}'] (limit kMaxTokenizerVocab)", where, it.key().substr(0, 40)),
        0, kMaxTokenizerVocab - 1);
    vocab_[it.key()] = static_cast<int32_t>(id);
    max_id = std::max(max_id, id);
  }
  // The id -> token table is dense: ids far beyond the number of tokens would make it mostly empty.
  if (max_id >= 2 * int64_t(vocab.size()) + 1024)
    fail("{}.vocab: the largest id {} is far beyond the {} tokens (ids must be nearly contiguous)", where,
         max_id, vocab.size());
  vocab_r_.assign(size_t(max_id + 1), {});
  has_id_.assign(size_t(max_id + 1), false);
  for (const auto& [tok, id] : vocab_) {
    vocab_r_[id] = tok;
    has_id_[id] = true;
    size_t i = 0;
    if (!tok.empty() && utf8::scan(tok, 0).status == utf8::SeqStatus::kValid) {
      const char32_t cp = utf8::next(tok, i);
      if (i == tok.size()) char_ids_[cp] = id;
    }
  }

  if (model.contains("unk_token") && model["unk_token"].is_string()) {
    const std::string unk = model["unk_token"].get<std::string>();
    auto it = vocab_.find(unk);
    if (it != vocab_.end()) unk_ = it->second;  // HF only complains when it is needed; we drop the char
  }
  fuse_unk_ = tokjson::opt_bool(model, "fuse_unk", false);
  byte_fallback_ = tokjson::opt_bool(model, "byte_fallback", false);
  ignore_merges_ = tokjson::opt_bool(model, "ignore_merges", false);
  prefix_ = tokjson::opt_string(model, "continuing_subword_prefix", "");
  suffix_ = tokjson::opt_string(model, "end_of_word_suffix", "");
  if (model.contains("dropout") && model["dropout"].is_number() && model["dropout"].get<double>() > 0.0) {
    fail("{}.dropout: BPE dropout is not supported (it is random; use null)", where);
  }

  const auto& merges = tokjson::req(model, "merges", where);
  merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& m = merges[rank];
    std::string a, b;
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos) {
        fail("{}.merges[{}]: expected 'a b', got '{}'", where, rank, s);
      }
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      a = m[0].get<std::string>();
      b = m[1].get<std::string>();
    } else {
      fail("{}.merges[{}]: expected a string 'a b' or a pair [a, b]", where, rank);
    }
    auto ia = vocab_.find(a), ib = vocab_.find(b);
    if (ia == vocab_.end()) fail("{}.merges[{}]: token '{}' is not in the vocab", where, rank, a);
    if (ib == vocab_.end()) fail("{}.merges[{}]: token '{}' is not in the vocab", where, rank, b);
    // With a continuing_subword_prefix, the right part's prefix is dropped from the merged token.
    const std::string merged = a + b.substr(std::min(prefix_.size(), b.size()));
    auto in = vocab_.find(merged);
    if (in == vocab_.end()) fail("{}.merges[{}]: merged token '{}' is not in the vocab", where, rank, merged);
    merges_[pair_key(ia->second, ib->second)] = {int32_t(rank), in->second};
  }

  have_byte_ids_ = true;
  for (int b = 0; b < 256; ++b) {
    auto it = vocab_.find(fmt::format("<0x{:02X}>", b));
    byte_ids_[b] = it == vocab_.end() ? -1 : it->second;
    if (it == vocab_.end()) have_byte_ids_ = false;
  }
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || size_t(id) >= vocab_r_.size() || !has_id_[id]) return nullptr;
  return &vocab_r_[id];
}

void BpeModel::initial_symbols(std::string_view w, std::vector<int32_t>& syms) const {
  const bool affixes = !prefix_.empty() || !suffix_.empty();
  int32_t pending_unk = -1;
  auto flush_unk = [&] {
    if (pending_unk >= 0) syms.push_back(pending_unk);
    pending_unk = -1;
  };
  std::string buf;
  for (size_t i = 0; i < w.size();) {
    const size_t start = i;
    const char32_t cp = utf8::next(w, i);
    std::optional<int32_t> id;
    if (!affixes) {
      auto it = char_ids_.find(cp);
      if (it != char_ids_.end()) id = it->second;
    } else {
      buf.clear();
      if (start != 0) buf += prefix_;
      buf.append(w.substr(start, i - start));
      if (i == w.size()) buf += suffix_;
      id = token_to_id(buf);
    }
    if (id) {
      flush_unk();
      syms.push_back(*id);
      continue;
    }
    if (byte_fallback_ && have_byte_ids_) {
      flush_unk();
      for (size_t k = start; k < i; ++k) syms.push_back(byte_ids_[static_cast<unsigned char>(w[k])]);
      continue;
    }
    if (unk_) {
      if (pending_unk >= 0 && !fuse_unk_) flush_unk();
      pending_unk = *unk_;
    }
  }
  flush_unk();
}

void BpeModel::merge_word(std::string_view w, std::vector<int32_t>& out) const {
  std::vector<int32_t> sym;
  initial_symbols(w, sym);
  const int n = static_cast<int>(sym.size());
  if (n <= 1) {
    out.insert(out.end(), sym.begin(), sym.end());
    return;
  }
  std::vector<int> prev(n), next(n);
  std::vector<bool> alive(n, true);
  for (int i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Cand {
    int32_t rank;
    int pos;
    int32_t new_id;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> q;
  auto push = [&](int pos) {
    if (pos < 0 || next[pos] < 0) return;
    auto it = merges_.find(pair_key(sym[pos], sym[next[pos]]));
    if (it != merges_.end()) q.push({it->second.first, pos, it->second.second});
  };
  for (int i = 0; i + 1 < n; ++i) push(i);
  while (!q.empty()) {
    const Cand c = q.top();
    q.pop();
    if (!alive[c.pos] || next[c.pos] < 0) continue;
    const int r = next[c.pos];
    auto it = merges_.find(pair_key(sym[c.pos], sym[r]));
    if (it == merges_.end() || it->second.second != c.new_id || it->second.first != c.rank) continue;
    sym[c.pos] = c.new_id;
    alive[r] = false;
    next[c.pos] = next[r];
    if (next[r] >= 0) prev[next[r]] = c.pos;
    push(prev[c.pos]);
    push(c.pos);
  }
  for (int i = 0; i >= 0; i = next[i]) out.push_back(sym[i]);
}

void BpeModel::build_bigrams() const {
  for (const auto& [tok, id] : vocab_) {
    if (utf8::first_invalid(tok) != std::string::npos) continue;
    size_t i = 0;
    char32_t prev = 0;
    bool first = true;
    while (i < tok.size()) {
      const char32_t cp = utf8::next(tok, i);
      if (!first) bigrams_.insert((uint64_t(prev) << 32) | cp);
      prev = cp;
      first = false;
    }
  }
}

void BpeModel::merge_long(std::string_view w, std::vector<int32_t>& out) const {
  std::call_once(bigrams_once_, [this] { build_bigrams(); });
  size_t chunk = 0, i = 0;
  char32_t prev = 0;
  bool prev_known = false;
  while (i < w.size()) {
    const size_t at = i;
    const char32_t cp = utf8::next(w, i);
    const bool known = char_ids_.count(cp) != 0;  // unknown chars may fuse into one unk: never cut there
    if (at > chunk && prev_known && known && !bigrams_.count((uint64_t(prev) << 32) | cp)) {
      merge_cached(w.substr(chunk, at - chunk), out);
      chunk = at;
    }
    prev = cp;
    prev_known = known;
  }
  merge_cached(w.substr(chunk), out);
}

void BpeModel::merge_cached(std::string_view word, std::vector<int32_t>& out) const {
  const bool cacheable = word.size() <= kCacheMaxWordBytes;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    auto it = cache_.find(word);
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t before = out.size();
  merge_word(word, out);
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (cache_.size() < kCacheMaxWords) {
      cache_.emplace(std::string(word), std::vector<int32_t>(out.begin() + before, out.end()));
    }
  }
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    auto it = vocab_.find(word);
    if (it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  if (word.size() > kCacheMaxWordBytes && prefix_.empty() && suffix_.empty())
    merge_long(word, out);
  else
    merge_cached(word, out);
}

}  // namespace tqlm
