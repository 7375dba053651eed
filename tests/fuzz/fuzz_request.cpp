// libFuzzer target: the server's request parsing (server/api.h parse_request), as `tqlm serve` runs it on a
// /v1/chat/completions or /v1/completions body: the depth-limited parse, every field's validation, the chat
// template render of the messages (real templates from tests/fixtures/templates) and the tokenization. Any
// body must end in an ApiRequest or a RequestError (a 4xx), never a crash, another exception, a hang or a
// blowup. No model weights: a small byte-level tokenizer built here stands in for the model's.
// The body's text is also parsed as a model's answer by the tool-call parser (server/tool_calls.h).
// Input: one selector byte (bit 0: chat, bits 1-2: template), then the request body.
#include <cstdint>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string_view>

#include "core/error.h"
#include "core/json.h"
#include "server/api.h"
#include "tokenizer/tokenizer_bytelevel.h"

namespace {

using ojson = nlohmann::ordered_json;

// 256 byte tokens, a few merges and the special tokens chat templates use.
tqlm::Tokenizer small_tokenizer() {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[tqlm::bytelevel::byte_char(uint8_t(b))] = b;
  const std::string sp = tqlm::bytelevel::byte_char(' ');
  const char* const merges[][2] = {{"h", "e"}, {"l", "l"}, {"he", "ll"}, {"o", "r"}, {"i", "n"}};
  nlohmann::json ms = nlohmann::json::array();
  int id = 256;
  for (const auto& m : merges) {
    vocab[std::string(m[0]) + m[1]] = id++;
    ms.push_back(std::string(m[0]) + " " + m[1]);
  }
  vocab[sp + "t"] = id++;
  ms.push_back(sp + " t");
  nlohmann::json added = nlohmann::json::array();
  const int bos_id = id + 2;  // <|begin_of_text|>
  for (const char* t :
       {"<|im_start|>", "<|im_end|>", "<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>",
        "<|end_header_id|>", "]~!b[", "]~b]", "[e~[", "<think>", "</think>"})
    added.push_back({{"id", id++}, {"content", t}, {"special", true}});
  nlohmann::json j = {
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", ms}}},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"added_tokens", added},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single",
         {{{"SpecialToken", {{"id", "<|begin_of_text|>"}, {"type_id", 0}}}},
          {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
        {"special_tokens",
         {{"<|begin_of_text|>",
           {{"id", "<|begin_of_text|>"}, {"ids", {bos_id}}, {"tokens", {"<|begin_of_text|>"}}}}}}}}};
  return tqlm::Tokenizer::from_json(j, "fuzz tokenizer");
}

tqlm::ChatTemplate fixture_template(const char* name) {
  const std::string path = std::string(TQLM_SOURCE_DIR) + "/tests/fixtures/templates/" + name;
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  if (!f) std::abort();  // the fuzzer is run from a checkout
  return tqlm::ChatTemplate::from_string(ss.str(), path);
}

struct Fixture {
  tqlm::Tokenizer tok = small_tokenizer();
  std::vector<tqlm::ChatTemplate> tpls;
  tqlm::ApiOptions opt;
  std::mutex mu;
  Fixture() {
    for (const char* n :
         {"qwen3.jinja", "llama-3.1-instruct.jinja", "minimax-m2.jinja", "smollm2-instruct.jinja"})
      tpls.push_back(fixture_template(n));
    opt.model_id = "fuzz";
    opt.default_max_tokens = 0;
  }
};

// The body's text as a model's answer through the tool-call parser (with the request's tools), in two pieces.
void answer(std::string_view text, const ojson& tools) {
  tqlm::ToolCallParser p(tools);
  const size_t half = text.size() / 2;
  volatile size_t sink = p.push(std::string(text.substr(0, half))).calls.size();
  sink = sink + p.push(std::string(text.substr(half))).calls.size() + p.finish().content.size();
  (void)sink;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture* fx = new Fixture();
  if (size < 1) return 0;
  const bool chat = data[0] & 1;
  const tqlm::ChatTemplate& tpl = fx->tpls[(data[0] >> 1) & 3];
  std::string_view body_text(reinterpret_cast<const char*>(data + 1), size - 1);
  ojson body;
  try {
    body = tqlm::parse_json_limited<ojson>(body_text, "request body");
  } catch (const tqlm::Error&) {
    answer(body_text, nullptr);
    return 0;  // 400: the body is not valid JSON
  }
  try {
    const tqlm::PromptEncoder enc(fx->tok, &tpl);
    const tqlm::ApiRequest r =
        tqlm::parse_request(body, chat, enc, int64_t(fx->tok.vocab_size()), fx->opt, fx->mu);
    volatile size_t sink = r.prompt.size() + r.params.stop.size();
    for (int32_t id : r.prompt)
      if (id < 0 || size_t(id) >= fx->tok.vocab_size()) std::abort();  // the engine indexes with these
    if (r.params.max_tokens <= 0 || r.top_logprobs > 20) std::abort();
    (void)sink;
  } catch (const tqlm::RequestError& e) {
    if (e.status < 400 || e.status >= 500) std::abort();
  }
  answer(body_text, body.is_object() && body.contains("tools") ? body["tools"] : ojson());
  return 0;
}
