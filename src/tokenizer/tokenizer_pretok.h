// tokenizer.json "pre_tokenizer": ByteLevel, Split, Digits, Metaspace, WhitespaceSplit and Sequence.
// Pieces are split further, following HF tokenizers' splitting behaviours exactly; any other type
// fails at load time, naming it.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace tqlm {

struct Piece {
  std::string text;
  bool at_start = false;  // begins at byte 0 of the original input (Metaspace prepend_scheme "first")
};

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// Turns match ranges over a string of length `len` into the pieces HF keeps for `behavior`
// (empty pieces dropped). `invert` swaps matches and gaps.
using ByteRanges = std::vector<std::pair<size_t, size_t>>;
ByteRanges split_ranges(size_t len, const ByteRanges& matches, SplitBehavior behavior, bool invert);

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces each piece by its splits, in order.
  virtual void pre_tokenize(std::vector<Piece>& pieces) const = 0;
};

// Returns nullptr for a JSON null. `where` names the file/field in errors.
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& j, const std::string& where);

}  // namespace tqlm
