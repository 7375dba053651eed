// Tokenizer building blocks: UTF-8, NFC, split behaviours, added-token flags, streaming decode, errors.
// (Parity with HF tokenizers on real-sized inputs is in tests/oracle/test_tokenizer.py.)
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_bytelevel.h"
#include "tokenizer/utf8.h"
#include "tokenizer/utf8_nfc.h"

using namespace tqlm;
using nlohmann::json;

namespace {

// A byte-level tokenizer: the 256 byte characters, a few merges and added tokens.
json byte_level_json() {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[bytelevel::byte_char(uint8_t(b))] = b;
  const char* merges[] = {"h e", "l l", "he ll", "hell o", "Ġ w", "o r", "Ġw or"};
  int next = 256;
  json m = json::array();
  for (const char* s : merges) {
    std::string a(s, std::strchr(s, ' ')), b(std::strchr(s, ' ') + 1);
    vocab[a + b] = next++;
    m.push_back(s);
  }
  json added = json::array();
  auto add = [&](const char* content, int id, bool special, bool lstrip, bool rstrip, bool single_word) {
    added.push_back({{"id", id},
                     {"content", content},
                     {"special", special},
                     {"lstrip", lstrip},
                     {"rstrip", rstrip},
                     {"single_word", single_word},
                     {"normalized", false}});
  };
  add("<|im_start|>", 300, true, false, false, false);
  add("<mask>", 301, true, true, true, false);
  add("<w>", 302, false, false, false, true);
  return {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", m}}},
          {"added_tokens", added},
          {"normalizer", nullptr},
          {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
          {"post_processor", nullptr},
          {"decoder", {{"type", "ByteLevel"}}}};
}

// A SentencePiece-style (Llama 2 layout) tokenizer with byte fallback.
json sentencepiece_json() {
  json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  for (int b = 0; b < 256; ++b) vocab[fmt::format("<0x{:02X}>", b)] = 3 + b;
  int next = 259;
  for (const char* t : {"\xE2\x96\x81", "h", "i", "\xE2\x96\x81h", "\xE2\x96\x81hi"}) vocab[t] = next++;
  return {{"model",
           {{"type", "BPE"},
            {"vocab", vocab},
            {"merges", {"\xE2\x96\x81 h", "\xE2\x96\x81h i"}},
            {"byte_fallback", true},
            {"fuse_unk", true},
            {"unk_token", "<unk>"}}},
          {"added_tokens",
           {{{"id", 1}, {"content", "<s>"}, {"special", true}, {"normalized", false}},
            {{"id", 2}, {"content", "</s>"}, {"special", true}, {"normalized", false}}}},
          {"normalizer",
           {{"type", "Sequence"},
            {"normalizers",
             {{{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}},
              {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}}}}}},
          {"pre_tokenizer", nullptr},
          {"post_processor",
           {{"type", "TemplateProcessing"},
            {"single",
             {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
              {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
            {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}}},
          {"decoder",
           {{"type", "Sequence"},
            {"decoders",
             {{{"type", "Replace"}, {"pattern", {{"String", "\xE2\x96\x81"}}}, {"content", " "}},
              {{"type", "ByteFallback"}},
              {{"type", "Fuse"}},
              {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}}};
}

std::vector<int32_t> bytes_ids(std::string_view s) {
  std::vector<int32_t> ids;
  for (unsigned char c : s) ids.push_back(c);
  return ids;
}

}  // namespace

TEST(TokUtf8, LossyReplacesMaximalSubparts) {
  EXPECT_EQ(utf8::lossy("a\xff"
                        "b"),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(utf8::lossy("\xE2\x82"), "\xEF\xBF\xBD");                              // truncated: one
  EXPECT_EQ(utf8::lossy("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate: three
  EXPECT_EQ(utf8::lossy("\xF0\x9F\x98\x80!"), "\xF0\x9F\x98\x80!");
}

TEST(TokUtf8, CompletePrefixHoldsBackOnlyATruncatedTail) {
  EXPECT_EQ(utf8::complete_prefix("a\xE2\x82"), 1u);
  EXPECT_EQ(utf8::complete_prefix("a\xE2\x82\xAC"), 4u);
  EXPECT_EQ(utf8::complete_prefix("\xF0\x9F"), 0u);
  EXPECT_EQ(utf8::complete_prefix("a\xff"), 2u);
  EXPECT_EQ(utf8::complete_prefix(""), 0u);
}

TEST(TokUtf8, ValidateNamesTheOffset) {
  try {
    utf8::validate("abc\xC3(", "input");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("invalid UTF-8 at byte 3"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(utf8::validate("h\xC3\xA9llo \xF0\x9F\x98\x80", "input"));
}

TEST(TokNfc, ComposesReordersAndHandlesHangul) {
  EXPECT_EQ(utf8::nfc("e\xCC\x81"), "\xC3\xA9");              // e + acute -> é
  EXPECT_EQ(utf8::nfc("o\xCC\xA3\xCC\x82"), "\xE1\xBB\x99");  // o + dot below + circumflex -> ộ
  EXPECT_EQ(utf8::nfc("o\xCC\x82\xCC\xA3"), "\xE1\xBB\x99");  // other order, same result
  EXPECT_EQ(utf8::nfc("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8"), "\xEA\xB0\x81");  // jamo -> 각
  EXPECT_EQ(utf8::nfc("\xE2\x84\xAB"), "\xC3\x85");      // Angstrom sign -> Å (singleton)
  EXPECT_EQ(utf8::nfc("\xCD\x84"), "\xCC\x88\xCC\x81");  // U+0344 stays decomposed (excluded)
  EXPECT_EQ(utf8::nfc("plain ascii"), "plain ascii");
  EXPECT_EQ(utf8::nfd("\xC3\xA9"), "e\xCC\x81");
}

TEST(TokSplit, BehavioursMatchHf) {
  const std::string s = "a-b--c";
  const ByteRanges dashes = {{1, 2}, {3, 4}, {4, 5}};
  auto pieces = [&](SplitBehavior b) {
    std::vector<std::string> out;
    for (auto [x, y] : split_ranges(s.size(), dashes, b, false)) out.push_back(s.substr(x, y - x));
    return out;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(pieces(SplitBehavior::kRemoved), (V{"a", "b", "c"}));
  EXPECT_EQ(pieces(SplitBehavior::kIsolated), (V{"a", "-", "b", "-", "-", "c"}));
  EXPECT_EQ(pieces(SplitBehavior::kContiguous), (V{"a", "-", "b", "--", "c"}));
  EXPECT_EQ(pieces(SplitBehavior::kMergedWithPrevious), (V{"a-", "b-", "-", "c"}));
  EXPECT_EQ(pieces(SplitBehavior::kMergedWithNext), (V{"a", "-b", "-", "-c"}));
}

TEST(TokBpe, MergesAndAddedTokenFlags) {
  const Tokenizer tok = Tokenizer::from_json(byte_level_json(), "test");
  ASSERT_TRUE(tok.token_to_id("hello") && tok.token_to_id("\xC4\xA0wor"));
  const int32_t hello = *tok.token_to_id("hello"), wor = *tok.token_to_id("\xC4\xA0wor");
  EXPECT_EQ(tok.encode("hello world"), (std::vector<int32_t>{hello, wor, 'l', 'd'}));
  // <mask> has lstrip and rstrip: it swallows the spaces around it.
  EXPECT_EQ(tok.encode("hello  <mask>  hello"), (std::vector<int32_t>{hello, 301, hello}));
  // <w> is single_word: not matched inside a word.
  EXPECT_EQ(tok.encode("x<w>")[1], int32_t('<'));
  EXPECT_EQ(tok.encode("x <w> y")[2], 302);
  EXPECT_EQ(tok.encode("<|im_start|><|im_start|>"), (std::vector<int32_t>{300, 300}));
  EXPECT_TRUE(tok.is_special(300));
  EXPECT_FALSE(tok.is_special(302));
  EXPECT_EQ(tok.decode({300, hello, wor, 'l', 'd'}, true), "hello world");
  EXPECT_EQ(tok.decode({300, hello}), "<|im_start|>hello");
}

TEST(TokBpe, SentencePieceByteFallbackAndBos) {
  const Tokenizer tok = Tokenizer::from_json(sentencepiece_json(), "test");
  const int32_t hi = *tok.token_to_id("\xE2\x96\x81hi");
  // "€" is not in the vocab: its three bytes fall back to <0xE2><0x82><0xAC>.
  EXPECT_EQ(tok.encode("hi\xE2\x82\xAC", true), (std::vector<int32_t>{1, hi, 3 + 0xE2, 3 + 0x82, 3 + 0xAC}));
  EXPECT_EQ(tok.decode(tok.encode("hi hi\xE2\x82\xAC", true), true), "hi hi\xE2\x82\xAC");
}

TEST(TokStream, HoldsBackIncompleteCharacters) {
  const Tokenizer tok = Tokenizer::from_json(byte_level_json(), "test");
  const std::string text = "h\xC3\xA9 \xE2\x82\xAC\xF0\x9F\x98\x80!";
  StreamDecoder sd(tok);
  std::vector<std::string> parts;
  for (int32_t id : tok.encode(text)) parts.push_back(sd.push(id));
  parts.push_back(sd.finish());
  std::string joined;
  for (const auto& p : parts) {
    EXPECT_EQ(utf8::first_invalid(p), std::string::npos) << "piece is not complete UTF-8";
    joined += p;
  }
  EXPECT_EQ(joined, text);
  // The euro sign arrives as three byte tokens: nothing is emitted until the third.
  StreamDecoder sd2(tok);
  EXPECT_EQ(sd2.push(0xE2), "");
  EXPECT_EQ(sd2.push(0x82), "");
  EXPECT_EQ(sd2.push(0xAC), "\xE2\x82\xAC");
  EXPECT_EQ(sd2.push(0xF0), "");
  EXPECT_EQ(sd2.finish(), "\xEF\xBF\xBD");  // a dangling lead byte becomes U+FFFD at the end
  EXPECT_EQ(tok.decode_bytes(bytes_ids("\xE2\x82")), "\xE2\x82");
}

TEST(TokStream, SentencePieceStripsTheFirstSpaceAndSkipsSpecials) {
  const Tokenizer tok = Tokenizer::from_json(sentencepiece_json(), "test");
  StreamDecoder sd(tok, /*skip_special_tokens=*/true);
  std::string out;
  for (int32_t id : tok.encode("hi hi\xE2\x82\xAC", true)) out += sd.push(id);
  out += sd.finish();
  EXPECT_EQ(out, "hi hi\xE2\x82\xAC");
  EXPECT_EQ(out, tok.decode(tok.encode("hi hi\xE2\x82\xAC", true), true));
}

TEST(TokErrors, InvalidInputAndUnsupportedComponents) {
  const Tokenizer tok = Tokenizer::from_json(byte_level_json(), "test");
  EXPECT_THROW(tok.encode("ok\xC0\xAF"), Error);
  auto message = [](json j) {
    try {
      Tokenizer::from_json(j, "tok.json");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  json j = byte_level_json();
  j["normalizer"] = {{"type", "Lowercase"}};
  EXPECT_NE(message(j).find("unsupported normalizer type 'Lowercase'"), std::string::npos) << message(j);
  j = byte_level_json();
  j["model"]["type"] = "WordPiece";
  EXPECT_NE(message(j).find("WordPiece"), std::string::npos) << message(j);
  j = byte_level_json();
  j["model"]["merges"].push_back("zz qq");
  EXPECT_NE(message(j).find("merges[7]"), std::string::npos) << message(j);
  j = byte_level_json();
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
  EXPECT_NE(message(j).find("cannot compile regex"), std::string::npos) << message(j);
}
