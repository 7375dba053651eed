#include "tokenizer/tokenizer_normalizer.h"

#include <vector>

#include "tokenizer/tokenizer_json.h"
#include "tokenizer/tokenizer_regex.h"
#include "tokenizer/utf8.h"
#include "tokenizer/utf8_nfc.h"

namespace tqlm {
namespace {

using tokjson::json;

[[noreturn]] void too_long(size_t limit) {
  fail("the normalizer's output exceeds its limit of {} bytes (kMaxNormalizedGrowth = {} x the input + {})",
       limit, kMaxNormalizedGrowth, kNormalizedSlack);
}
std::string checked(std::string s, size_t limit) {
  if (s.size() > limit) too_long(limit);
  return s;
}

struct Nfc : Normalizer {
  std::string apply(std::string s, size_t limit) const override { return checked(utf8::nfc(s), limit); }
};

struct Nfd : Normalizer {
  std::string apply(std::string s, size_t limit) const override { return checked(utf8::nfd(s), limit); }
};

struct Prepend : Normalizer {
  std::string prefix;
  std::string apply(std::string s, size_t limit) const override {
    if (s.empty()) return s;
    if (s.size() + prefix.size() > limit) too_long(limit);
    return prefix + s;
  }
};

struct Replace : Normalizer {
  std::string literal;           // when regex is null
  std::unique_ptr<Regex> regex;  // otherwise
  std::string content;
  std::string apply(std::string s, size_t limit) const override {
    std::string out;
    auto grow = [&](size_t more) {
      if (out.size() + more > limit) too_long(limit);
    };
    if (regex) {
      std::vector<std::pair<size_t, size_t>> m;
      regex->find_all(s, m);
      if (m.empty()) return s;
      size_t prev = 0;
      for (auto [b, e] : m) {
        grow(b - prev + content.size());
        out.append(s, prev, b - prev);
        out += content;
        prev = e;
      }
      grow(s.size() - prev);
      out.append(s, prev, std::string::npos);
      return out;
    }
    if (literal.empty()) return s;
    size_t prev = 0;
    for (size_t p = s.find(literal); p != std::string::npos; p = s.find(literal, prev)) {
      grow(p - prev + content.size());
      out.append(s, prev, p - prev);
      out += content;
      prev = p + literal.size();
    }
    if (prev == 0) return s;
    grow(s.size() - prev);
    out.append(s, prev, std::string::npos);
    return out;
  }
};

struct Strip : Normalizer {
  bool left = true, right = true;
  std::string apply(std::string s, size_t) const override {
    size_t b = 0, e = s.size();
    if (left) {
      while (b < e) {
        size_t i = b;
        if (!utf8::is_white_space(utf8::next(s, i))) break;
        b = i;
      }
    }
    if (right) {
      while (e > b) {
        size_t start = e - 1;
        while (start > b && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
        size_t i = start;
        if (!utf8::is_white_space(utf8::next(s, i))) break;
        e = start;
      }
    }
    return s.substr(b, e - b);
  }
};

struct Sequence : Normalizer {
  std::vector<std::unique_ptr<Normalizer>> steps;
  std::string apply(std::string s, size_t limit) const override {  // one limit for the whole chain
    for (const auto& n : steps) s = n->apply(std::move(s), limit);
    return s;
  }
};

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const json& j, const std::string& where) {
  if (j.is_null()) return nullptr;
  const std::string type = tokjson::type_of(j, where);
  if (type == "NFC") return std::make_unique<Nfc>();
  if (type == "NFD") return std::make_unique<Nfd>();
  if (type == "Prepend") {
    auto n = std::make_unique<Prepend>();
    n->prefix = tokjson::req_string(j, "prepend", where);
    return n;
  }
  if (type == "Replace") {
    auto n = std::make_unique<Replace>();
    const json& pat = tokjson::req(j, "pattern", where);
    if (pat.contains("String")) {
      n->literal = pat["String"].get<std::string>();
    } else if (pat.contains("Regex")) {
      n->regex = std::make_unique<Regex>(pat["Regex"].get<std::string>(), where);
    } else {
      fail("{}.pattern: expected String or Regex", where);
    }
    n->content = tokjson::req_string(j, "content", where);
    return n;
  }
  if (type == "Strip") {
    auto n = std::make_unique<Strip>();
    n->left = tokjson::opt_bool(j, "strip_left", true);
    n->right = tokjson::opt_bool(j, "strip_right", true);
    return n;
  }
  if (type == "Sequence") {
    auto n = std::make_unique<Sequence>();
    const json& list = tokjson::req(j, "normalizers", where);
    for (size_t i = 0; i < list.size(); ++i) {
      auto step = make_normalizer(list[i], fmt::format("{}.normalizers[{}]", where, i));
      if (step) n->steps.push_back(std::move(step));
    }
    return n;
  }
  fail("{}: unsupported normalizer type '{}' (supported: NFC, NFD, Prepend, Replace, Strip, Sequence)", where,
       type);
}

}  // namespace tqlm
