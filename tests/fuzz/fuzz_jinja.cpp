// libFuzzer target: the Jinja lexer, parser and interpreter must answer any template (and any context) with
// a rendered string or a tqlm::Error, never crash, hang or exhaust memory (template/jinja_limits.h).
// Input: template text, optionally followed by a NUL byte and a JSON object whose keys replace or extend
// the fixed context (messages, tools, add_generation_prompt, bos_token, eos_token).
#include <cstdint>
#include <string_view>

#include "core/error.h"
#include "core/json.h"
#include "template/jinja.h"

namespace {

nlohmann::ordered_json base_context() {
  return nlohmann::ordered_json::parse(R"({
    "messages": [
      {"role": "system", "content": "You are helpful."},
      {"role": "user", "content": "Hi <b>there</b>\n  ünïcödé 😀"},
      {"role": "assistant", "content": "<think>\nhmm\n</think>\n\nHello!",
       "tool_calls": [{"type": "function", "function": {"name": "get", "arguments": {"q": "x", "n": 3}}}]},
      {"role": "tool", "content": "{\"ok\": true}"},
      {"role": "user", "content": ""}
    ],
    "tools": [{"type": "function", "function": {"name": "get", "description": "d",
               "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}],
    "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>", "documents": null
  })");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const nlohmann::ordered_json kBase = base_context();
  std::string_view in(reinterpret_cast<const char*>(data), size);
  size_t sep = in.find('\0');
  nlohmann::ordered_json ctx = kBase;
  if (sep != std::string_view::npos) {
    try {
      auto extra = tqlm::parse_json_limited(in.substr(sep + 1), "fuzz context");
      if (extra.is_object())
        for (auto it = extra.begin(); it != extra.end(); ++it) ctx[it.key()] = it.value();
    } catch (const tqlm::Error&) {
    }
  }
  try {
    tqlm::jinja::Template t(in.substr(0, sep));
    volatile size_t sink = t.render(tqlm::jinja::from_json(ctx)).size();
    (void)sink;
  } catch (const tqlm::Error&) {
  }
  return 0;
}
