// PCRE2 regular expressions for the tokenizer (UTF + UCP, JIT when available). Patterns come from
// tokenizer.json, written for Oniguruma; `\s` is rewritten as Unicode White_Space to match it
// (PCRE2's own \s also takes U+180E).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tqlm {

class Regex {
 public:
  // `label` names the pattern's origin in errors (e.g. "tokenizer.json: pre_tokenizer.pattern").
  Regex(std::string_view pattern, std::string_view label);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Appends the byte ranges [start, end) of all non-overlapping matches in `s` (valid UTF-8) to `out`.
  void find_all(std::string_view s, std::vector<std::pair<size_t, size_t>>& out) const;

  const std::string& pattern() const { return pattern_; }

 private:
  std::string pattern_;
  std::string label_;     // also in match errors (PCRE2's match limit on a backtracking pattern)
  void* code_ = nullptr;  // pcre2_code*
  bool jit_ = false;
};

// Rewrites an Oniguruma pattern for PCRE2 (see the header comment).
std::string onig_to_pcre2(std::string_view pattern);

}  // namespace tqlm
