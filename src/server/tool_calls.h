// Tool calls in generated text -> OpenAI tool_calls, streamed: MiniMax-M2's XML
//   <minimax:tool_call>\n<invoke name="f">\n<parameter
//   name="k">v</parameter>\n</invoke>\n</minimax:tool_call>
// and the Qwen / Hermes form
//   <tool_call>\n{"name": "f", "arguments": {...}}\n</tool_call>
// Text that may be the start of an opening tag is held back until it is known not to be; a call is emitted
// whole once its closing tag arrives. MiniMax parameter values are converted by the tool's JSON-schema type
// (string raw; integer, number, boolean, object, array, null as JSON; unknown tools or types: JSON if it
// parses, else the string). The result does not depend on how the text was split into pieces.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace tqlm {

struct ToolCall {
  std::string name;
  std::string arguments;  // a JSON object, serialized
};

class ToolCallParser {
 public:
  // tools: the request's `tools` list (for parameter types); may be null.
  explicit ToolCallParser(const nlohmann::ordered_json& tools);
  struct Out {
    std::string content;
    std::vector<ToolCall> calls;
  };
  Out push(const std::string& text);
  Out finish();  // an unclosed call at the end is returned as plain content
  int64_t calls_seen() const { return calls_; }

 private:
  Out drain(bool final);
  std::vector<ToolCall> parse_minimax(const std::string& body) const;
  std::vector<ToolCall> parse_hermes(const std::string& body) const;

  nlohmann::ordered_json tools_;
  std::string buf_;
  int64_t calls_ = 0;
};

}  // namespace tqlm
