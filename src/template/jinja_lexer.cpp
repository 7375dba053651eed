// Jinja lexer mirroring jinja2/lexer.py: root data/tag splitting with '-'/'+' whitespace control,
// lstrip_blocks (block and comment tags only, when only whitespace precedes them on their line),
// trim_blocks (one newline after '%}' / '#}'), raw blocks, and the expression token rules.
#include "template/jinja_lexer.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include "core/error.h"
#include "template/jinja_unicode.h"

namespace tqlm::jinja {

namespace {

struct Lexer {
  std::string src;
  LexOptions opt;
  std::vector<size_t> newlines;  // offsets of '\n' in src
  std::vector<Token> out;
  size_t pos = 0;
  bool line_starting = true;

  int line_at(size_t p) const {
    return 1 + static_cast<int>(std::lower_bound(newlines.begin(), newlines.end(), p) - newlines.begin());
  }
  [[noreturn]] void error(size_t p, const std::string& msg) const {
    fail("template syntax error (line {}): {}", line_at(p), msg);
  }
  void emit(Tok t, std::string text, size_t at) {
    Token tok;
    tok.type = t;
    tok.text = std::move(text);
    tok.line = line_at(at);
    out.push_back(std::move(tok));
  }

  // Length of the Python-whitespace code point at p (0 if none).
  size_t space_len(size_t p) const {
    if (p >= src.size()) return 0;
    auto c = static_cast<unsigned char>(src[p]);
    if (c < 0x80) return py_isspace(c) ? 1 : 0;
    size_t n = (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
    std::u32string cp = utf8_decode(std::string_view(src).substr(p, n));
    return (cp.size() == 1 && py_isspace(cp[0])) ? n : 0;
  }
  size_t skip_space(size_t p) const {
    while (size_t n = space_len(p)) p += n;
    return p;
  }
  static bool all_space(std::string_view s) {
    if (s.empty()) return false;
    for (char32_t c : utf8_decode(s))
      if (!py_isspace(c)) return false;
    return true;
  }

  // Applies '-' (strip all whitespace before the tag) or lstrip_blocks to the data preceding a tag.
  std::string strip_before(std::string text, char sign, bool is_variable) const {
    if (sign == '-') return str_strip(text, nullptr, false, true);
    if (sign != '+' && opt.lstrip_blocks && !is_variable) {
      size_t nl = text.rfind('\n');
      size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
      if ((l_pos > 0 || line_starting) && all_space(std::string_view(text).substr(l_pos))) text.resize(l_pos);
    }
    return text;
  }

  void run() {
    while (pos < src.size()) {
      size_t tag = pos;
      for (;;) {
        tag = src.find('{', tag);
        if (tag == std::string::npos || tag + 1 >= src.size()) {
          tag = std::string::npos;
          break;
        }
        char k = src[tag + 1];
        if (k == '{' || k == '%' || k == '#') break;
        ++tag;
      }
      if (tag == std::string::npos) {
        emit(Tok::Data, src.substr(pos), pos);
        line_starting = src.back() == '\n';
        pos = src.size();
        break;
      }
      char kind = src[tag + 1];
      char sign = (tag + 2 < src.size() && (src[tag + 2] == '-' || src[tag + 2] == '+')) ? src[tag + 2] : 0;
      size_t after = tag + 2 + (sign ? 1 : 0);
      size_t raw_end = kind == '%' ? match_raw_begin(after) : 0;
      std::string text = strip_before(src.substr(pos, tag - pos), sign, kind == '{');
      if (!text.empty()) emit(Tok::Data, std::move(text), pos);
      if (raw_end) {
        pos = raw_end;
        line_starting = src[pos - 1] == '\n';
        lex_raw_body(tag);
      } else if (kind == '#') {
        pos = after;
        lex_comment(tag);
      } else {
        pos = after;
        lex_tag(kind == '%', tag);
      }
    }
  }

  // `{%[-+]?\s*raw\s*(-%}\s*|%})` starting after the sign; returns end offset or 0.
  size_t match_raw_begin(size_t p) const {
    p = skip_space(p);
    if (src.compare(p, 3, "raw") != 0) return 0;
    p = skip_space(p + 3);
    if (src.compare(p, 3, "-%}") == 0) return skip_space(p + 3);
    if (src.compare(p, 2, "%}") == 0) return p + 2;
    return 0;
  }

  // Block/comment end: '+X}' keeps, '-X}' strips following whitespace, 'X}' drops one newline (trim_blocks).
  size_t block_end_after(size_t p, bool trim) const {
    if (src[p] == '+') return p + 3;
    if (src[p] == '-') return skip_space(p + 3);
    p += 2;
    if (trim && opt.trim_blocks && p < src.size() && src[p] == '\n') ++p;
    return p;
  }

  void lex_comment(size_t begin) {
    size_t j = src.find("#}", pos);
    if (j == std::string::npos) error(begin, "Missing end of comment tag");
    size_t end_start = (j > pos && (src[j - 1] == '-' || src[j - 1] == '+')) ? j - 1 : j;
    pos = block_end_after(end_start, true);
    line_starting = src[pos - 1] == '\n';
  }

  void lex_raw_body(size_t begin) {
    size_t search = pos;
    for (;;) {
      size_t j = src.find("{%", search);
      if (j == std::string::npos) error(begin, "Missing end of raw directive");
      char sign = (j + 2 < src.size() && (src[j + 2] == '-' || src[j + 2] == '+')) ? src[j + 2] : 0;
      size_t p = skip_space(j + 2 + (sign ? 1 : 0));
      if (src.compare(p, 6, "endraw") == 0) {
        p = skip_space(p + 6);
        bool ok =
            src.compare(p, 3, "+%}") == 0 || src.compare(p, 3, "-%}") == 0 || src.compare(p, 2, "%}") == 0;
        if (ok) {
          std::string text = strip_before(src.substr(pos, j - pos), sign, false);
          if (!text.empty()) emit(Tok::Data, std::move(text), pos);
          pos = block_end_after(p, true);
          line_starting = src[pos - 1] == '\n';
          return;
        }
      }
      search = j + 2;
    }
  }

  size_t scan_digits(size_t p, bool (*isd)(char)) const {
    if (p >= src.size() || !isd(src[p])) return std::string::npos;
    while (p < src.size()) {
      if (isd(src[p])) {
        ++p;
      } else if (src[p] == '_' && p + 1 < src.size() && isd(src[p + 1])) {
        p += 2;
      } else {
        break;
      }
    }
    return p;
  }
  static bool dec(char c) { return c >= '0' && c <= '9'; }
  static bool bin(char c) { return c == '0' || c == '1'; }
  static bool oct(char c) { return c >= '0' && c <= '7'; }
  static bool hex(char c) { return dec(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

  size_t scan_exponent(size_t p) const {
    if (p >= src.size() || (src[p] != 'e' && src[p] != 'E')) return std::string::npos;
    ++p;
    if (p < src.size() && (src[p] == '+' || src[p] == '-')) ++p;
    return scan_digits(p, dec);
  }

  bool lex_number(size_t p) {
    if (!dec(src[p]) || (p > 0 && src[p - 1] == '.')) {
      if (!dec(src[p])) return false;
    }
    // float: D ( (\.D)? e[+-]?D | \.D )
    if (!(p > 0 && src[p - 1] == '.')) {
      size_t q = scan_digits(p, dec);
      size_t fend = std::string::npos;
      size_t frac = (src[q] == '.') ? scan_digits(q + 1, dec) : std::string::npos;
      if (frac != std::string::npos) {
        size_t e = scan_exponent(frac);
        fend = e != std::string::npos ? e : frac;
      } else {
        size_t e = scan_exponent(q);
        if (e != std::string::npos) fend = e;
      }
      if (fend != std::string::npos) {
        std::string t;
        for (size_t k = p; k < fend; ++k)
          if (src[k] != '_') t.push_back(src[k]);
        Token tok;
        tok.type = Tok::Float;
        tok.text = src.substr(p, fend - p);
        tok.fval = std::strtod(t.c_str(), nullptr);
        tok.line = line_at(p);
        out.push_back(std::move(tok));
        pos = fend;
        return true;
      }
    }
    size_t end = std::string::npos;
    int base = 10;
    if (src[p] == '0' && p + 1 < src.size() && std::string("bBoOxX").find(src[p + 1]) != std::string::npos) {
      char b = static_cast<char>(src[p + 1] | 0x20);
      base = b == 'b' ? 2 : b == 'o' ? 8 : 16;
      size_t q = p + 2;
      if (q < src.size() && src[q] == '_') ++q;
      end = scan_digits(q, base == 2 ? bin : base == 8 ? oct : hex);
    }
    if (end == std::string::npos) {
      base = 10;
      if (src[p] == '0') {
        end = p + 1;
        while (end < src.size() &&
               (src[end] == '0' || (src[end] == '_' && end + 1 < src.size() && src[end + 1] == '0')))
          end += src[end] == '_' ? 2 : 1;
      } else {
        end = scan_digits(p, dec);
      }
    }
    std::string t;
    for (size_t k = p + (base == 10 ? 0 : 2); k < end; ++k)
      if (src[k] != '_') t.push_back(src[k]);
    Token tok;
    tok.type = Tok::Int;
    tok.text = src.substr(p, end - p);
    errno = 0;
    tok.ival = std::strtoll(t.c_str(), nullptr, base);
    if (errno == ERANGE) error(p, "integer literal " + tok.text + " does not fit in 64 bits");
    tok.line = line_at(p);
    out.push_back(std::move(tok));
    pos = end;
    return true;
  }

  void lex_tag(bool is_block, size_t begin) {
    emit(is_block ? Tok::BlockBegin : Tok::VarBegin, "", begin);
    std::string balance;
    for (;;) {
      if (pos >= src.size())
        error(begin, is_block ? "unexpected end of template, expected end of statement block ('%}')"
                              : "unexpected end of template, expected end of print statement ('}}')");
      if (balance.empty()) {
        if (is_block && (src.compare(pos, 3, "+%}") == 0 || src.compare(pos, 3, "-%}") == 0 ||
                         src.compare(pos, 2, "%}") == 0)) {
          size_t at = pos;
          pos = block_end_after(pos, true);
          emit(Tok::BlockEnd, "", at);
          line_starting = src[pos - 1] == '\n';
          return;
        }
        if (!is_block && (src.compare(pos, 3, "-}}") == 0 || src.compare(pos, 2, "}}") == 0)) {
          size_t at = pos;
          pos = src[pos] == '-' ? skip_space(pos + 3) : pos + 2;
          emit(Tok::VarEnd, "", at);
          line_starting = src[pos - 1] == '\n';
          return;
        }
      }
      char c = src[pos];
      if (size_t n = space_len(pos)) {
        pos += n;
        continue;
      }
      if (dec(c) && lex_number(pos)) continue;
      if (c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          static_cast<unsigned char>(c) >= 0x80) {
        size_t e = pos;
        while (e < src.size() &&
               (src[e] == '_' || dec(src[e]) || (src[e] >= 'a' && src[e] <= 'z') ||
                (src[e] >= 'A' && src[e] <= 'Z') || static_cast<unsigned char>(src[e]) >= 0x80))
          ++e;
        emit(Tok::Name, src.substr(pos, e - pos), pos);
        pos = e;
        continue;
      }
      if (c == '\'' || c == '"') {
        size_t e = pos + 1;
        while (e < src.size() && src[e] != c) e += src[e] == '\\' ? 2 : 1;
        if (e >= src.size()) error(pos, std::string("unexpected char '") + c + "'");
        int line = line_at(pos);
        Token tok;
        tok.type = Tok::String;
        tok.text = unescape_literal(std::string_view(src).substr(pos + 1, e - pos - 1), line);
        tok.line = line;
        out.push_back(std::move(tok));
        pos = e + 1;
        continue;
      }
      static const char* ops2[] = {"//", "**", "==", "!=", ">=", "<="};
      std::string op;
      for (const char* o : ops2)
        if (src.compare(pos, 2, o) == 0) op = o;
      if (op.empty() && std::string("+-/*%~[](){}.:|,;=<>").find(c) != std::string::npos)
        op = std::string(1, c);
      if (op.empty()) error(pos, std::string("unexpected char '") + c + "'");
      if (op == "(" || op == "[" || op == "{") {
        balance.push_back(op == "(" ? ')' : op == "[" ? ']' : '}');
      } else if (op == ")" || op == "]" || op == "}") {
        if (balance.empty()) error(pos, "unexpected '" + op + "'");
        if (balance.back() != op[0]) error(pos, "unexpected '" + op + "', expected '" + balance.back() + "'");
        balance.pop_back();
      }
      emit(Tok::Op, op, pos);
      pos += op.size();
    }
  }
};

int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string unescape_literal(std::string_view body, int line) {
  // jinja2: value.encode("ascii", "backslashreplace").decode("unicode-escape")
  std::string ascii;
  for (char32_t c : utf8_decode(body)) {
    if (c < 0x80) {
      ascii.push_back(static_cast<char>(c));
    } else {
      py_escape_append(ascii, c);
    }
  }
  std::string out;
  for (size_t i = 0; i < ascii.size(); ++i) {
    char c = ascii[i];
    if (c != '\\' || i + 1 >= ascii.size()) {
      if (c == '\\') fail("template syntax error (line {}): \\ at end of string", line);
      out.push_back(c);
      continue;
    }
    char e = ascii[++i];
    auto hexn = [&](int n) -> char32_t {
      char32_t v = 0;
      for (int k = 0; k < n; ++k) {
        int h = i + 1 < ascii.size() ? hexval(ascii[i + 1]) : -1;
        if (h < 0) fail("template syntax error (line {}): truncated \\{} escape in string", line, e);
        v = v * 16 + static_cast<char32_t>(h);
        ++i;
      }
      return v;
    };
    switch (e) {
      case '\n':
        break;
      case '\\':
        out.push_back('\\');
        break;
      case '\'':
        out.push_back('\'');
        break;
      case '"':
        out.push_back('"');
        break;
      case 'a':
        out.push_back('\a');
        break;
      case 'b':
        out.push_back('\b');
        break;
      case 'f':
        out.push_back('\f');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'v':
        out.push_back('\v');
        break;
      case 'x':
        utf8_append(out, hexn(2));
        break;
      case 'u':
        utf8_append(out, hexn(4));
        break;
      case 'U':
        utf8_append(out, hexn(8));
        break;
      default:
        if (e >= '0' && e <= '7') {
          char32_t v = static_cast<char32_t>(e - '0');
          for (int k = 0; k < 2 && i + 1 < ascii.size() && ascii[i + 1] >= '0' && ascii[i + 1] <= '7'; ++k)
            v = v * 8 + static_cast<char32_t>(ascii[++i] - '0');
          utf8_append(out, v);
        } else {
          out.push_back('\\');
          out.push_back(e);
        }
    }
  }
  return out;
}

std::vector<Token> lex(std::string_view source, const LexOptions& opt) {
  Lexer lx;
  lx.opt = opt;
  lx.src.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      lx.src.push_back('\n');
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      lx.src.push_back(source[i]);
    }
  }
  if (!opt.keep_trailing_newline && !lx.src.empty() && lx.src.back() == '\n') lx.src.pop_back();
  for (size_t i = 0; i < lx.src.size(); ++i)
    if (lx.src[i] == '\n') lx.newlines.push_back(i);
  lx.run();
  Token eof;
  eof.type = Tok::Eof;
  eof.line = lx.line_at(lx.src.size());
  lx.out.push_back(eof);
  return std::move(lx.out);
}

}  // namespace tqlm::jinja
