// Jinja lexer: splits template source into data and tag tokens exactly as jinja2's lexer does with
// trim_blocks=True and lstrip_blocks=True (whitespace control '-', '+', comments, raw blocks).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tqlm::jinja {

enum class Tok { Data, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Int, Float, Op, Eof };

struct Token {
  Tok type = Tok::Eof;
  std::string text;  // Data text, name, decoded string literal, or operator
  int line = 1;
  int64_t ival = 0;
  double fval = 0.0;
};

struct LexOptions {
  bool trim_blocks = true;
  bool lstrip_blocks = true;
  bool keep_trailing_newline = false;
};

// Throws tqlm::Error "template syntax error (line N): ..." on malformed input.
std::vector<Token> lex(std::string_view source, const LexOptions& opt = {});

// Python "unicode-escape" decoding of a string literal body, as jinja2 applies it.
std::string unescape_literal(std::string_view body, int line);

}  // namespace tqlm::jinja
