// The BPE model of a tokenizer.json ("model": {"type": "BPE", ...}): vocab, ranked merges (either
// "a b" strings or ["a", "b"] pairs), unk/fuse_unk, byte_fallback (<0xNN> tokens), ignore_merges,
// continuing_subword_prefix and end_of_word_suffix. Words are merged lowest rank first (leftmost on ties)
// with a priority queue, and results are cached per word.
#pragma once

#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace tqlm {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

class BpeModel {
 public:
  // `where` names the file/field in errors.
  BpeModel(const nlohmann::json& model, const std::string& where);

  // Appends the ids of one pre-tokenized word.
  void tokenize(std::string_view word, std::vector<int32_t>& out) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  // nullptr when the id is not in the vocab.
  const std::string* id_to_token(int32_t id) const;
  // One past the largest id.
  size_t vocab_size() const { return vocab_r_.size(); }

 private:
  void merge_word(std::string_view word, std::vector<int32_t>& out) const;
  void merge_cached(std::string_view word, std::vector<int32_t>& out) const;
  // Long words (e.g. a whole SentencePiece-style sentence) are cut where no vocab token spans the two
  // adjacent characters: no merge can cross such a boundary, so the parts merge independently.
  void merge_long(std::string_view word, std::vector<int32_t>& out) const;
  void build_bigrams() const;
  void initial_symbols(std::string_view word, std::vector<int32_t>& syms) const;

  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> vocab_;
  std::vector<std::string> vocab_r_;
  std::vector<bool> has_id_;
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges_;  // (a << 32 | b) -> (rank, new id)
  std::unordered_map<char32_t, int32_t> char_ids_;                    // single-character tokens
  std::optional<int32_t> unk_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  int32_t byte_ids_[256];
  bool have_byte_ids_ = false;
  std::string prefix_, suffix_;

  mutable std::once_flag bigrams_once_;
  mutable std::unordered_set<uint64_t> bigrams_;  // adjacent code points inside some vocab token

  mutable std::mutex cache_mu_;
  mutable std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> cache_;
};

}  // namespace tqlm
