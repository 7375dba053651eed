#include <gtest/gtest.h>

#include <string>

#include "core/error.h"
#include "template/jinja_lexer.h"

using namespace tqlm::jinja;

namespace {

std::string kinds(const std::vector<Token>& toks) {
  std::string out;
  for (const auto& t : toks) {
    switch (t.type) {
      case Tok::Data:
        out += "D(" + t.text + ")";
        break;
      case Tok::VarBegin:
        out += "{{";
        break;
      case Tok::VarEnd:
        out += "}}";
        break;
      case Tok::BlockBegin:
        out += "{%";
        break;
      case Tok::BlockEnd:
        out += "%}";
        break;
      case Tok::Name:
        out += "N(" + t.text + ")";
        break;
      case Tok::String:
        out += "S(" + t.text + ")";
        break;
      case Tok::Int:
        out += "I(" + std::to_string(t.ival) + ")";
        break;
      case Tok::Float:
        out += "F(" + t.text + ")";
        break;
      case Tok::Op:
        out += "O(" + t.text + ")";
        break;
      case Tok::Eof:
        out += "$";
        break;
    }
  }
  return out;
}

std::string data_only(std::string_view src) {
  std::string out;
  for (const auto& t : lex(src))
    if (t.type == Tok::Data) out += t.text;
  return out;
}

}  // namespace

TEST(JinjaLexer, ExpressionTokens) {
  EXPECT_EQ(kinds(lex("{{ a.b[0] | f(1_000, 2.5e3, 0x1F) ~ 'x' }}")),
            "{{N(a)O(.)N(b)O([)I(0)O(])O(|)N(f)O(()I(1000)O(,)F(2.5e3)O(,)I(31)O())O(~)S(x)}}$");
  EXPECT_EQ(kinds(lex("{% if a // 2 ** 3 != b %}")), "{%N(if)N(a)O(//)I(2)O(**)I(3)O(!=)N(b)%}$");
}

TEST(JinjaLexer, TrimBlocksAndLstripBlocks) {
  // lstrip_blocks removes the indentation before a block tag; trim_blocks the newline after it.
  EXPECT_EQ(data_only("a\n  {% if x %}\n  y\n  {% endif %}\nb"), "a\n  y\nb");
  // Not for print tags.
  EXPECT_EQ(data_only("a\n  {{ x }}\nb"), "a\n  \nb");
  // '+' disables lstrip (before) and trim (after).
  EXPECT_EQ(data_only("a\n  {%+ if x +%}\nb"), "a\n  \nb");
  // Text before the tag on the same line keeps its whitespace.
  EXPECT_EQ(data_only("a  {% if x %}b"), "a  b");
}

TEST(JinjaLexer, MinusStripsAllWhitespace) {
  EXPECT_EQ(data_only("a \n\t {%- if x -%} \n\n b"), "ab");
  EXPECT_EQ(data_only("a \n {{- x -}} \n b"), "ab");
  EXPECT_EQ(data_only("a \n {#- c -#} \n b"), "ab");
}

TEST(JinjaLexer, CommentsRawAndTrailingNewline) {
  EXPECT_EQ(data_only("x{# a {{ b }} #}\ny"), "xy");
  EXPECT_EQ(data_only("{% raw %}{{ x }}{% endraw %}"), "{{ x }}");
  EXPECT_EQ(data_only("end\n"), "end");  // one trailing newline is dropped
  EXPECT_EQ(data_only("end\n\n"), "end\n");
  EXPECT_EQ(data_only("a\r\nb\rc"), "a\nb\nc");  // newlines normalized
}

TEST(JinjaLexer, StringLiteralEscapes) {
  auto toks = lex("{{ 'a\\n\\t\\x41\\u00e9\\\\\\q\\'' }}");
  ASSERT_EQ(toks[1].type, Tok::String);
  EXPECT_EQ(toks[1].text, "a\n\tA\xC3\xA9\\\\q'");
  EXPECT_EQ(lex("{{ \"it's\" }}")[1].text, "it's");
}

TEST(JinjaLexer, BalancedBracesInsidePrint) {
  EXPECT_EQ(kinds(lex("{{ {'a': {'b': 1}} }}")), "{{O({)S(a)O(:)O({)S(b)O(:)I(1)O(})O(})}}$");
}

TEST(JinjaLexer, ErrorsNameTheLine) {
  try {
    lex("ok\nok\n{{ 'unterminated }}");
    FAIL() << "expected a syntax error";
  } catch (const tqlm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("line 3"), std::string::npos) << e.what();
  }
  EXPECT_THROW(lex("{# never closed"), tqlm::Error);
  EXPECT_THROW(lex("{{ x ) }}"), tqlm::Error);
  EXPECT_THROW(lex("{{ a ! b }}"), tqlm::Error);
}
