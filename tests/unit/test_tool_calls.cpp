// Tool-call parsing: MiniMax XML and Hermes JSON into OpenAI calls, schema-typed values, and the same result
// for every way the text can arrive in pieces (whole, byte by byte, every split in two).
#include <gtest/gtest.h>

#include "server/tool_calls.h"

using namespace tqlm;

namespace {
const nlohmann::ordered_json kTools = nlohmann::ordered_json::parse(R"([
  {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {
    "city": {"type": "string"}, "days": {"type": "integer"}, "metric": {"type": "boolean"},
    "hours": {"type": "array"}, "zip": {"type": "string"}}}}}])");

struct Result {
  std::string content;
  std::vector<std::string> calls;  // "name arguments"
  bool operator==(const Result& o) const { return content == o.content && calls == o.calls; }
};

Result feed(const std::vector<std::string>& pieces) {
  ToolCallParser p(kTools);
  Result r;
  auto take = [&](const ToolCallParser::Out& o) {
    r.content += o.content;
    for (const auto& c : o.calls) r.calls.push_back(c.name + " " + c.arguments);
  };
  for (const auto& s : pieces) take(p.push(s));
  take(p.finish());
  return r;
}

void every_split_agrees(const std::string& text, const Result& want) {
  EXPECT_EQ(feed({text}), want) << text;
  std::vector<std::string> bytes;
  for (char c : text) bytes.emplace_back(1, c);
  EXPECT_EQ(feed(bytes), want) << "byte by byte";
  for (size_t i = 0; i <= text.size(); ++i)
    ASSERT_EQ(feed({text.substr(0, i), text.substr(i)}), want) << "split at " << i;
}
}  // namespace

TEST(ToolCalls, MiniMaxXmlWithSchemaTypes) {
  const std::string text =
      "Let me check.\n<minimax:tool_call>\n<invoke name=\"get_weather\">\n<parameter "
      "name=\"city\">Paris</parameter>\n"
      "<parameter name=\"days\">3</parameter>\n<parameter name=\"metric\">true</parameter>\n"
      "<parameter name=\"hours\">[9, 12]</parameter>\n<parameter name=\"zip\">75001</parameter>\n</invoke>\n"
      "<invoke name=\"other\">\n<parameter name=\"x\">{\"a\": "
      "1}</parameter>\n</invoke>\n</minimax:tool_call>";
  every_split_agrees(
      text, Result{"Let me check.\n",
                   {R"(get_weather {"city":"Paris","days":3,"metric":true,"hours":[9,12],"zip":"75001"})",
                    R"(other {"x":{"a":1}})"}});
}

TEST(ToolCalls, HermesJsonAndPlainText) {
  every_split_agrees(
      "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>",
      Result{"", {R"(get_weather {"city":"Oslo"})"}});
  // text that only looks like the start of a tag, and an unclosed call, stay content
  every_split_agrees("a < b and <tool but not a call", Result{"a < b and <tool but not a call", {}});
  every_split_agrees("<tool_call>{\"name\": \"f\"", Result{"<tool_call>{\"name\": \"f\"", {}});
  every_split_agrees("<tool_call>not json</tool_call> after",
                     Result{"<tool_call>not json</tool_call> after", {}});
}

// Regressions (issue 12): a 200 KB MiniMax parameter value overflowed the stack in std::regex (a segfault of
// the server); JSON nested 100,000 deep in a call; a request tool whose name is not a string (value() threw).
TEST(ToolCalls, HostileAnswersAndTools) {
  const std::string big(200000, 'x');
  ToolCallParser p(nlohmann::ordered_json::parse(R"([{"type": "function", "function": {"name": 5}},
      {"function": {"name": "f", "parameters": {"properties": {"k": {"type": "string"}}}}}])"));
  auto o = p.push("<minimax:tool_call>\n<invoke name=\"f\">\n<parameter name=\"k\">" + big +
                  "</parameter>\n</invoke>\n</minimax:tool_call>");
  ASSERT_EQ(o.calls.size(), 1u);
  EXPECT_EQ(o.calls[0].name, "f");
  EXPECT_EQ(o.calls[0].arguments.size(), big.size() + 8);
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  o = p.push("<minimax:tool_call><invoke name=\"g\"><parameter name=\"d\">" + deep +
             "</parameter></invoke></minimax:tool_call>");
  ASSERT_EQ(o.calls.size(), 1u);  // too deep to be JSON: kept as the string
  EXPECT_EQ(o.calls[0].arguments.size(), deep.size() + 8);
  const std::string hermes = "<tool_call>{\"name\": \"h\", \"arguments\": " + deep + "}</tool_call>";
  o = p.push(hermes);
  EXPECT_TRUE(o.calls.empty());  // not a call: the text stays content
  EXPECT_EQ(o.content, hermes);
  // a tag name without its closing quote-bracket is skipped, as the regex did
  o = p.push("<minimax:tool_call><invoke name=\"a\" x><invoke name=\"b\">\n</invoke></minimax:tool_call>");
  ASSERT_EQ(o.calls.size(), 1u);
  EXPECT_EQ(o.calls[0].name, "b");
}
