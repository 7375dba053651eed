#include "tokenizer/tokenizer_decoder.h"

#include "tokenizer/tokenizer_bytelevel.h"
#include "tokenizer/tokenizer_json.h"
#include "tokenizer/utf8.h"

namespace tqlm {

struct Decoder::Step {
  enum Kind { kByteLevel, kMetaspace, kReplace, kByteFallback, kFuse, kStrip } kind;
  std::string from, to;          // Metaspace replacement / Replace literal pattern and content
  std::unique_ptr<Regex> regex;  // Replace with a Regex pattern
  bool prepend = true;           // Metaspace: prepend_scheme != never
  std::string strip_char;        // Strip content (one character)
  size_t start = 0, stop = 0;    // Strip counts
};

namespace {

using tokjson::json;

std::string replace_all(const std::string& s, const std::string& from, const std::string& to) {
  if (from.empty()) return s;
  std::string out;
  size_t prev = 0;
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, prev)) {
    out.append(s, prev, p - prev);
    out += to;
    prev = p + from.size();
  }
  out.append(s, prev, std::string::npos);
  return out;
}

std::string regex_replace(const Regex& re, const std::string& s, const std::string& to) {
  std::vector<std::pair<size_t, size_t>> m;
  re.find_all(s, m);
  std::string out;
  size_t prev = 0;
  for (auto [b, e] : m) {
    out.append(s, prev, b - prev);
    out += to;
    prev = e;
  }
  out.append(s, prev, std::string::npos);
  return out;
}

// "<0xNN>" -> byte value, or -1.
int byte_token(const std::string& t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  const int hi = hex(t[3]), lo = hex(t[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

// Removes up to `start` leading and `stop` trailing copies of the character `c` (HF's Strip decoder).
std::string strip_chars(const std::string& t, const std::string& c, size_t start, size_t stop) {
  size_t b = 0, e = t.size();
  for (size_t k = 0; k < start && b < e && t.compare(b, c.size(), c) == 0; ++k) b += c.size();
  for (size_t k = 0; k < stop && e >= b + c.size() && t.compare(e - c.size(), c.size(), c) == 0; ++k) {
    e -= c.size();
  }
  return t.substr(b, e - b);
}

std::string replace_step(const Decoder::Step& st, const std::string& t);

}  // namespace

Decoder::Decoder(const json& j, const std::string& where) {
  if (j.is_null()) {
    none_ = true;
    return;
  }
  add(j, where);
}
Decoder::~Decoder() = default;
Decoder::Decoder(Decoder&&) noexcept = default;
Decoder& Decoder::operator=(Decoder&&) noexcept = default;

void Decoder::add(const json& j, const std::string& where) {
  const std::string type = tokjson::type_of(j, where);
  auto s = std::make_unique<Step>();
  if (type == "Sequence") {
    const json& list = tokjson::req(j, "decoders", where);
    for (size_t i = 0; i < list.size(); ++i) add(list[i], fmt::format("{}.decoders[{}]", where, i));
    return;
  } else if (type == "ByteLevel") {
    s->kind = Step::kByteLevel;
  } else if (type == "Metaspace") {
    s->kind = Step::kMetaspace;
    s->from = tokjson::opt_string(j, "replacement", "\xE2\x96\x81");
    std::string scheme = tokjson::opt_string(j, "prepend_scheme", "");
    if (scheme.empty()) scheme = tokjson::opt_bool(j, "add_prefix_space", true) ? "always" : "never";
    s->prepend = scheme != "never";
  } else if (type == "Replace") {
    s->kind = Step::kReplace;
    const json& pat = tokjson::req(j, "pattern", where);
    if (pat.contains("String")) {
      s->from = pat["String"].get<std::string>();
    } else if (pat.contains("Regex")) {
      s->regex = std::make_unique<Regex>(pat["Regex"].get<std::string>(), where);
    } else {
      fail("{}.pattern: expected String or Regex", where);
    }
    s->to = tokjson::req_string(j, "content", where);
  } else if (type == "ByteFallback") {
    s->kind = Step::kByteFallback;
  } else if (type == "Fuse") {
    s->kind = Step::kFuse;
  } else if (type == "Strip") {
    s->kind = Step::kStrip;
    s->strip_char = tokjson::req_string(j, "content", where);
    s->start = tokjson::req(j, "start", where).get<size_t>();
    s->stop = tokjson::req(j, "stop", where).get<size_t>();
  } else {
    fail(
        "{}: unsupported decoder type '{}' (supported: ByteLevel, Metaspace, Replace, ByteFallback, Fuse, "
        "Strip, Sequence)",
        where, type);
  }
  steps_.push_back(std::move(s));
}

namespace {
std::string replace_step(const Decoder::Step& st, const std::string& t) {
  return st.regex ? regex_replace(*st.regex, t, st.to) : replace_all(t, st.from, st.to);
}
}  // namespace

std::string Decoder::decode(std::vector<std::string> tokens) const {
  if (none_) {
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
    return out;
  }
  for (const auto& st : steps_) {
    switch (st->kind) {
      case Step::kByteLevel: {
        std::string bytes;
        for (const auto& t : tokens) {
          std::string b;
          if (bytelevel::decode(t, b))
            bytes += b;
          else
            bytes += t;
        }
        tokens.assign(1, utf8::lossy(bytes));
        break;
      }
      case Step::kMetaspace:
        for (size_t i = 0; i < tokens.size(); ++i) {
          tokens[i] = replace_all(tokens[i], st->from, i == 0 && st->prepend ? "" : " ");
        }
        break;
      case Step::kReplace:
        for (auto& t : tokens) t = replace_step(*st, t);
        break;
      case Step::kByteFallback: {
        std::vector<std::string> out;
        std::string run;
        size_t run_count = 0;
        auto flush = [&] {
          if (!run_count) return;
          if (utf8::first_invalid(run) == std::string::npos)
            out.push_back(run);
          else
            for (size_t k = 0; k < run_count; ++k) out.push_back("\xEF\xBF\xBD");
          run.clear();
          run_count = 0;
        };
        for (auto& t : tokens) {
          const int b = byte_token(t);
          if (b >= 0) {
            run += static_cast<char>(b);
            ++run_count;
          } else {
            flush();
            out.push_back(std::move(t));
          }
        }
        flush();
        tokens.swap(out);
        break;
      }
      case Step::kFuse: {
        std::string all;
        for (const auto& t : tokens) all += t;
        tokens.assign(1, all);
        break;
      }
      case Step::kStrip:
        for (auto& t : tokens) t = strip_chars(t, st->strip_char, st->start, st->stop);
        break;
    }
  }
  std::string out;
  for (const auto& t : tokens) out += t;
  return out;
}

std::string Decoder::piece(const std::string& token, StreamState& state) const {
  const size_t index = state.index++;
  if (none_) return index ? " " + token : token;
  std::string t = token;
  bool fused = false;
  for (const auto& st : steps_) {
    switch (st->kind) {
      case Step::kByteLevel: {
        std::string b;
        if (bytelevel::decode(t, b)) t.swap(b);
        break;
      }
      case Step::kMetaspace:
        t = replace_all(t, st->from, index == 0 && st->prepend ? "" : " ");
        break;
      case Step::kReplace:
        t = replace_step(*st, t);
        break;
      case Step::kByteFallback: {
        const int b = byte_token(t);
        if (b >= 0) t.assign(1, static_cast<char>(b));
        break;
      }
      case Step::kFuse:
        fused = true;
        break;
      case Step::kStrip:
        if (!fused) {
          t = strip_chars(t, st->strip_char, st->start, st->stop);
        } else {
          // The stream is one fused token: only its beginning can be stripped here.
          if (!state.strip_init) {
            state.strip_left = st->start;
            state.strip_init = true;
          }
          const std::string& c = st->strip_char;
          while (state.strip_left > 0 && !t.empty() && t.compare(0, c.size(), c) == 0) {
            t.erase(0, c.size());
            --state.strip_left;
          }
          if (!t.empty()) state.strip_left = 0;
        }
        break;
    }
  }
  return t;
}

}  // namespace tqlm
