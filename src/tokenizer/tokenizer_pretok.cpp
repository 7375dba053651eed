#include "tokenizer/tokenizer_pretok.h"

#include <algorithm>

#include "tokenizer/tokenizer_bytelevel.h"
#include "tokenizer/tokenizer_json.h"
#include "tokenizer/tokenizer_regex.h"
#include "tokenizer/utf8.h"

namespace tqlm {
namespace {

using tokjson::json;
using Ranges = std::vector<std::pair<size_t, size_t>>;

const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// Applies `split` (text -> ranges) to every piece.
template <typename F>
void split_each(std::vector<Piece>& pieces, F&& split) {
  std::vector<Piece> out;
  out.reserve(pieces.size() * 2);
  Ranges ranges;
  for (Piece& p : pieces) {
    ranges.clear();
    split(p.text, ranges);
    for (auto [b, e] : ranges) out.push_back({p.text.substr(b, e - b), p.at_start && b == 0});
  }
  pieces.swap(out);
}

void literal_matches(std::string_view s, std::string_view lit, Ranges& m) {
  if (lit.empty()) return;
  for (size_t p = s.find(lit); p != std::string_view::npos; p = s.find(lit, p + lit.size())) {
    m.emplace_back(p, p + lit.size());
  }
}

SplitBehavior parse_behavior(const std::string& s, const std::string& where) {
  if (s == "Removed") return SplitBehavior::kRemoved;
  if (s == "Isolated") return SplitBehavior::kIsolated;
  if (s == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (s == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (s == "Contiguous") return SplitBehavior::kContiguous;
  fail("{}.behavior: unsupported split behavior '{}'", where, s);
}

struct Split : PreTokenizer {
  std::string literal;
  std::unique_ptr<Regex> regex;
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    Ranges m;
    split_each(pieces, [&](const std::string& s, Ranges& out) {
      m.clear();
      if (regex)
        regex->find_all(s, m);
      else
        literal_matches(s, literal, m);
      out = split_ranges(s.size(), m, behavior, invert);
    });
  }
};

struct ByteLevel : PreTokenizer {
  bool add_prefix_space = false;
  std::unique_ptr<Regex> regex;  // null when use_regex is false
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    if (add_prefix_space) {
      for (Piece& p : pieces) {
        if (p.text.empty() || p.text[0] != ' ') p.text.insert(p.text.begin(), ' ');
      }
    }
    if (regex) {
      Ranges m;
      split_each(pieces, [&](const std::string& s, Ranges& out) {
        m.clear();
        regex->find_all(s, m);
        out = split_ranges(s.size(), m, SplitBehavior::kIsolated, false);
      });
    }
    for (Piece& p : pieces) {
      std::string mapped;
      bytelevel::encode(p.text, mapped);
      p.text.swap(mapped);
    }
  }
};

struct Digits : PreTokenizer {
  std::unique_ptr<Regex> regex;
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    Ranges m;
    split_each(pieces, [&](const std::string& s, Ranges& out) {
      m.clear();
      regex->find_all(s, m);
      out = split_ranges(s.size(), m, SplitBehavior::kIsolated, false);
    });
  }
};

enum class Prepend { kAlways, kFirst, kNever };

struct Metaspace : PreTokenizer {
  std::string replacement;
  Prepend prepend = Prepend::kAlways;
  bool split = true;
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for (Piece& p : pieces) {
      std::string t;
      t.reserve(p.text.size() + 8);
      for (char c : p.text) {
        if (c == ' ')
          t += replacement;
        else
          t += c;
      }
      const bool starts = t.compare(0, replacement.size(), replacement) == 0;
      if (!starts && (prepend == Prepend::kAlways || (prepend == Prepend::kFirst && p.at_start))) {
        t.insert(0, replacement);
      }
      p.text.swap(t);
    }
    if (!split) return;
    Ranges m;
    split_each(pieces, [&](const std::string& s, Ranges& out) {
      m.clear();
      literal_matches(s, replacement, m);
      out = split_ranges(s.size(), m, SplitBehavior::kMergedWithNext, false);
    });
  }
};

struct WhitespaceSplit : PreTokenizer {
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    Ranges m;
    split_each(pieces, [&](const std::string& s, Ranges& out) {
      m.clear();
      for (size_t i = 0; i < s.size();) {
        const size_t b = i;
        if (utf8::is_white_space(utf8::next(s, i))) m.emplace_back(b, i);
      }
      out = split_ranges(s.size(), m, SplitBehavior::kRemoved, false);
    });
  }
};

struct Sequence : PreTokenizer {
  std::vector<std::unique_ptr<PreTokenizer>> steps;
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for (const auto& s : steps) s->pre_tokenize(pieces);
  }
};

}  // namespace

ByteRanges split_ranges(size_t len, const ByteRanges& matches, SplitBehavior behavior, bool invert) {
  // Cover the whole string with (range, is_match) like HF's find_matches.
  struct Part {
    size_t b, e;
    bool match;
  };
  std::vector<Part> parts;
  parts.reserve(matches.size() * 2 + 1);
  size_t prev = 0;
  for (auto [b, e] : matches) {
    if (prev != b) parts.push_back({prev, b, invert});
    parts.push_back({b, e, !invert});
    prev = e;
  }
  if (prev != len) parts.push_back({prev, len, invert});

  std::vector<Part> merged;
  merged.reserve(parts.size());
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (Part p : parts) merged.push_back({p.b, p.e, false});
      break;
    case SplitBehavior::kRemoved:
      merged = parts;
      break;
    case SplitBehavior::kContiguous: {
      bool prev_match = false;
      for (Part p : parts) {
        if (p.match == prev_match && !merged.empty())
          merged.back().e = p.e;
        else
          merged.push_back({p.b, p.e, false});
        prev_match = p.match;
      }
      break;
    }
    case SplitBehavior::kMergedWithPrevious: {
      bool prev_match = false;
      for (Part p : parts) {
        if (p.match && !prev_match && !merged.empty())
          merged.back().e = p.e;
        else
          merged.push_back({p.b, p.e, false});
        prev_match = p.match;
      }
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      bool prev_match = false;
      for (size_t k = parts.size(); k-- > 0;) {
        const Part p = parts[k];
        if (p.match && !prev_match && !merged.empty())
          merged.back().b = p.b;
        else
          merged.push_back({p.b, p.e, false});
        prev_match = p.match;
      }
      std::reverse(merged.begin(), merged.end());
      break;
    }
  }
  Ranges out;
  out.reserve(merged.size());
  for (Part p : merged) {
    if (!p.match && p.e > p.b) out.emplace_back(p.b, p.e);
  }
  return out;
}

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json& j, const std::string& where) {
  if (j.is_null()) return nullptr;
  const std::string type = tokjson::type_of(j, where);
  if (type == "ByteLevel") {
    auto p = std::make_unique<ByteLevel>();
    p->add_prefix_space = tokjson::opt_bool(j, "add_prefix_space", true);
    if (tokjson::opt_bool(j, "use_regex", true)) p->regex = std::make_unique<Regex>(kGpt2Pattern, where);
    return p;
  }
  if (type == "Split") {
    auto p = std::make_unique<Split>();
    const json& pat = tokjson::req(j, "pattern", where);
    if (pat.contains("Regex")) {
      p->regex = std::make_unique<Regex>(pat["Regex"].get<std::string>(), where + ".pattern");
    } else if (pat.contains("String")) {
      p->literal = pat["String"].get<std::string>();
    } else {
      fail("{}.pattern: expected String or Regex", where);
    }
    p->behavior = parse_behavior(tokjson::req_string(j, "behavior", where), where);
    p->invert = tokjson::opt_bool(j, "invert", false);
    return p;
  }
  if (type == "Digits") {
    auto p = std::make_unique<Digits>();
    const bool individual = tokjson::opt_bool(j, "individual_digits", false);
    p->regex = std::make_unique<Regex>(individual ? "\\p{N}" : "\\p{N}+", where);
    return p;
  }
  if (type == "Metaspace") {
    auto p = std::make_unique<Metaspace>();
    p->replacement = tokjson::opt_string(j, "replacement", "\xE2\x96\x81");
    p->split = tokjson::opt_bool(j, "split", true);
    std::string scheme = tokjson::opt_string(j, "prepend_scheme", "");
    if (scheme.empty()) scheme = tokjson::opt_bool(j, "add_prefix_space", true) ? "always" : "never";
    if (scheme == "always")
      p->prepend = Prepend::kAlways;
    else if (scheme == "first")
      p->prepend = Prepend::kFirst;
    else if (scheme == "never")
      p->prepend = Prepend::kNever;
    else
      fail("{}.prepend_scheme: unsupported value '{}'", where, scheme);
    return p;
  }
  if (type == "WhitespaceSplit") return std::make_unique<WhitespaceSplit>();
  if (type == "Sequence") {
    auto p = std::make_unique<Sequence>();
    const json& list = tokjson::req(j, "pretokenizers", where);
    for (size_t i = 0; i < list.size(); ++i) {
      auto step = make_pre_tokenizer(list[i], fmt::format("{}.pretokenizers[{}]", where, i));
      if (step) p->steps.push_back(std::move(step));
    }
    return p;
  }
  fail(
      "{}: unsupported pre_tokenizer type '{}' (supported: ByteLevel, Split, Digits, Metaspace, "
      "WhitespaceSplit, Sequence)",
      where, type);
}

}  // namespace tqlm
