// The OpenAI API's request and response shapes: requests validated into a prompt and RequestParams (a bad
// field is a RequestError 400 naming it), engine events turned into chat.completion / text_completion objects
// and stream chunks, reasoning (<think>...</think>) split into reasoning_content / reasoning.
#pragma once

#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "runtime/chat_session.h"
#include "runtime/prompt_encoder.h"
#include "runtime/reasoning.h"
#include "server/engine.h"
#include "server/tool_calls.h"

namespace tqlm {

struct ApiRequest {
  bool chat = true;
  std::vector<int32_t> prompt;
  std::string rendered;  // chat: the chat template's output that `prompt` tokenizes
  RequestParams params;
  bool stream = false, include_usage = false;
  int top_logprobs = -1;  // -1: no logprobs
  bool starts_in_think = false;
  int64_t reasoning_budget = -1;  // -1: unlimited
  nlohmann::ordered_json tools;   // the request's tools (null: no tool-call parsing)
};

struct ApiOptions {
  std::string model_id;
  bool split_reasoning = true;     // --reasoning-format none: reasoning stays in content
  int64_t default_max_tokens = 0;  // 0: up to the end of the context
  int64_t reasoning_budget = -1;   // --reasoning-budget: reasoning tokens per request (-1: unlimited)
  SamplingParams defaults;         // the model's generation_config.json
};

// Parses a /v1/chat/completions (chat = true) or /v1/completions body: every field validated (a RequestError
// 400 naming it), the prompt rendered and tokenized by `enc` under `template_mu` (one render at a time);
// token id prompts must lie in [0, vocab). Needs no weights (tests/fuzz/fuzz_request.cpp).
ApiRequest parse_request(const nlohmann::ordered_json& body, bool chat, const PromptEncoder& enc,
                         int64_t vocab, const ApiOptions& opt, std::mutex& template_mu);
// The same for a loaded session.
inline ApiRequest parse_request(const nlohmann::ordered_json& body, bool chat, ChatSession& cs,
                                const ApiOptions& opt, std::mutex& template_mu) {
  return parse_request(body, chat, cs.encoder(), cs.model().config().vocab, opt, template_mu);
}

// Builds the response of one request from its events, streamed or whole.
class ApiResponse {
 public:
  ApiResponse(const ApiRequest& req, const ApiOptions& opt, const Tokenizer& tok, std::string id);
  // A stream chunk for one event (empty when it carries nothing to send).
  std::vector<nlohmann::json> chunks(const StreamEvent& ev);
  // The first chunk of a chat stream (role), and the usage chunk at the end.
  nlohmann::json first_chunk() const;
  nlohmann::json usage_chunk(const EngineStream& s) const;
  // Accumulates an event for the non-streamed response; whole() builds it at the end.
  void add(const StreamEvent& ev);
  nlohmann::json whole(const EngineStream& s) const;

 private:
  // reasoning vs answer text; answer text through the tool-call parser (calls collected in calls_)
  std::vector<ReasoningSplitter::Piece> split(const StreamEvent& ev, std::vector<ToolCall>& calls);
  nlohmann::json tool_call_json(const ToolCall& c, size_t index) const;
  nlohmann::json base(const char* object) const;
  nlohmann::json usage(const EngineStream& s) const;
  nlohmann::json logprobs_json(const std::vector<TokenLogprob>& lps) const;
  std::string finish_reason(const std::string& engine_reason) const;

  const ApiRequest& req_;
  const ApiOptions& opt_;
  const Tokenizer& tok_;
  std::string id_;
  int64_t created_;
  ReasoningSplitter split_;
  std::string content_, reasoning_, reason_;
  std::vector<TokenLogprob> lps_;
  ToolCallParser tools_;
  std::vector<ToolCall> calls_;
  size_t streamed_calls_ = 0;  // tool calls sent as stream deltas so far
};

nlohmann::json error_body(const std::string& message, const std::string& type, const std::string& param = "",
                          const std::string& code = "");

}  // namespace tqlm
