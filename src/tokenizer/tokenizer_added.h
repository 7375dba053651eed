// Added tokens (tokenizer.json "added_tokens"): found in the text before pre-tokenization with
// leftmost-longest matching, honouring single_word, lstrip, rstrip and normalized like HF tokenizers:
// tokens with normalized=false are matched in the raw text, the others in the normalized pieces.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/tokenizer_normalizer.h"

namespace tqlm {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool single_word = false, lstrip = false, rstrip = false, normalized = true, special = false;
};

// A span of the input: either an added token (id >= 0) or text still to be tokenized.
struct Segment {
  std::string text;
  int32_t id = -1;
  bool at_start = false;  // begins at byte 0 of the original input
};

class AddedVocab {
 public:
  AddedVocab() = default;
  // `normalizer` (may be null) is applied to the content of normalized tokens.
  AddedVocab(const nlohmann::json& added_tokens, const Normalizer* normalizer, const std::string& where);

  // Pass 1 (raw text, normalized=false tokens) or pass 2 (normalized text, normalized=true tokens).
  void split(const Segment& in, bool normalized_pass, std::vector<Segment>& out) const;

  const std::vector<AddedToken>& tokens() const { return tokens_; }
  const AddedToken* find(int32_t id) const;
  std::optional<int32_t> find(std::string_view content) const;

 private:
  struct Trie {
    std::vector<std::unordered_map<unsigned char, int>> next{1};
    std::vector<int> terminal{-1};  // index into tokens_ of the pattern ending here
    bool first_byte[256] = {};
    bool empty = true;
    void add(std::string_view s, int token);
    // Leftmost-longest match at or after `from`: {start, end, token}; token -1 when none.
    void find(std::string_view s, size_t from, size_t& start, size_t& end, int& token) const;
  };

  std::vector<AddedToken> tokens_;
  std::unordered_map<int32_t, size_t> by_id_;
  Trie raw_, normalized_;
};

}  // namespace tqlm
