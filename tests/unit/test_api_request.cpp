// Server request parsing without a model (parse_request over a PromptEncoder): every bad field is a 400
// RequestError naming it, never another exception. Regressions from tests/fuzz/fuzz_request.cpp (issue 12).
#include <gtest/gtest.h>

#include <mutex>

#include "server/api.h"
#include "tokenizer/tokenizer_bytelevel.h"

using namespace tqlm;
using ojson = nlohmann::ordered_json;

namespace {

Tokenizer bytes_tokenizer() {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[bytelevel::byte_char(uint8_t(b))] = b;
  return Tokenizer::from_json(
      {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array()}}},
       {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}}},
       {"decoder", {{"type", "ByteLevel"}}}},
      "test tokenizer");
}

struct Fixture {
  Tokenizer tok = bytes_tokenizer();
  ChatTemplate tpl = ChatTemplate::from_string(
      "{% for m in messages %}<{{ m.role }}>{{ m.content }}\n{% endfor %}{% if tools %}{{ tools | tojson "
      "}}{% endif %}",
      "test template");
  ApiOptions opt;
  std::mutex mu;
  ApiRequest parse(const std::string& body, bool chat = true) {
    return parse_request(ojson::parse(body), chat, PromptEncoder(tok, &tpl), 256, opt, mu);
  }
  // The 400's message, or "" when the body was accepted.
  std::string error(const std::string& body, bool chat = true) {
    try {
      parse(body, chat);
    } catch (const RequestError& e) {
      EXPECT_EQ(e.status, 400);
      return e.what();
    }
    return "";
  }
};

}  // namespace

TEST(ApiRequest, ChatAndCompletionPrompts) {
  Fixture f;
  auto r = f.parse(R"({"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
                       "max_tokens": 3, "stop": "x"})");
  EXPECT_EQ(r.prompt.size(), 9u);  // "<user>hi\n", one token a byte
  EXPECT_EQ(r.params.max_tokens, 3);
  r = f.parse(R"({"prompt": [1, 2, 255]})", false);
  EXPECT_EQ(r.prompt, (std::vector<int32_t>{1, 2, 255}));
}

TEST(ApiRequest, HostileFieldsAre400sNamingTheField) {
  Fixture f;
  // a content part whose "type" is not a string: was the JSON library's type_error, now a 400
  EXPECT_NE(f.error(R"({"messages": [{"role": "user", "content": [{"type": 5, "text": "x"}]}]})")
                .find("messages[0].content"),
            std::string::npos);
  EXPECT_NE(f.error(R"({"prompt": [1, 256]})", false).find("'prompt'"), std::string::npos);
  EXPECT_NE(f.error(R"({"prompt": [1, 18446744073709551615]})", false).find("'prompt'"), std::string::npos);
  EXPECT_NE(
      f.error(R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0})").find("max_tokens"),
      std::string::npos);
  EXPECT_NE(f.error(R"({"messages": [{"role": 1}]})").find("messages[0].role"), std::string::npos);
  // tools are passed through unchecked (the template and the tool-call parser must cope)
  EXPECT_EQ(
      f.error(R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"function": {"name": 5}}, 3]})"),
      "");
}
