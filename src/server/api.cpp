#include "server/api.h"

#include <chrono>
#include <cmath>

#include "core/error.h"
#include "core/json.h"

namespace tqlm {

namespace {
using ojson = nlohmann::ordered_json;

[[noreturn]] void bad(const std::string& field, const std::string& msg) {
  throw RequestError(400, fmt::format("'{}' {}", field, msg));
}

// A number field within [lo, hi] (absent: the fallback).
double number(const ojson& b, const char* k, double lo, double hi, double fallback) {
  auto it = b.find(k);
  if (it == b.end() || it->is_null()) return fallback;
  if (!it->is_number()) bad(k, "must be a number");
  const double v = it->get<double>();
  if (!std::isfinite(v) || v < lo || v > hi)
    bad(k, fmt::format("must be between {} and {} (got {})", lo, hi, v));
  return v;
}

int64_t integer(const ojson& b, const char* k, int64_t lo, int64_t hi, int64_t fallback) {
  auto it = b.find(k);
  if (it == b.end() || it->is_null()) return fallback;
  if (!it->is_number_integer()) bad(k, "must be an integer");
  const int64_t v =
      it->is_number_unsigned() && it->get<uint64_t>() > uint64_t(INT64_MAX) ? INT64_MAX : it->get<int64_t>();
  if (v < lo || v > hi) bad(k, fmt::format("must be between {} and {} (got {})", lo, hi, v));
  return v;
}

bool boolean(const ojson& b, const char* k, bool fallback) {
  auto it = b.find(k);
  if (it == b.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) bad(k, "must be true or false");
  return it->get<bool>();
}

// Message content: a string, null, or a list of text parts (joined).
std::string content_text(const ojson& c, const std::string& field) {
  if (c.is_null()) return {};
  if (c.is_string()) return c.get<std::string>();
  if (!c.is_array()) bad(field, "must be a string or a list of content parts");
  std::string out;
  for (const auto& part : c) {
    // a non-string "type" is the same 400 (part.value("type", "") would throw the JSON library's type_error)
    const auto type = part.is_object() ? part.find("type") : part.end();
    if (!part.is_object() || type == part.end() || !type->is_string() || type->get<std::string>() != "text" ||
        !part.contains("text") || !part["text"].is_string())
      bad(field, "parts must be {\"type\": \"text\", \"text\": ...} (only text is supported)");
    out += part["text"].get<std::string>();
  }
  return out;
}

// OpenAI sends a call's arguments as a JSON string; templates iterate them as a mapping (MiniMax's calls
// arguments.items()), so a string holding a JSON object becomes that object, as vLLM does. Anything else is
// passed as it came.
ojson tool_calls_for_template(const ojson& calls, const std::string& field) {
  if (!calls.is_array()) bad(field, "must be a list");
  ojson out = calls;
  for (size_t i = 0; i < out.size(); ++i) {
    ojson& c = out[i];
    if (!c.is_object()) bad(fmt::format("{}[{}]", field, i), "must be an object");
    if (!c.contains("function") || !c["function"].is_object() || !c["function"].contains("name") ||
        !c["function"]["name"].is_string())
      bad(fmt::format("{}[{}].function.name", field, i), "must be a string");
    ojson& fn = c["function"];
    if (!fn.contains("arguments") || fn["arguments"].is_null()) {
      fn["arguments"] = ojson::object();
    } else if (fn["arguments"].is_string()) {
      try {
        ojson args = parse_json_limited<ojson>(fn["arguments"].get<std::string>(), "tool call arguments");
        if (args.is_object()) fn["arguments"] = std::move(args);
      } catch (const std::exception&) {  // not JSON: the template gets the string
      }
    }
  }
  return out;
}

ojson messages_for_template(const ojson& msgs) {
  if (!msgs.is_array() || msgs.empty()) bad("messages", "must be a non-empty list");
  ojson out = ojson::array();
  for (size_t i = 0; i < msgs.size(); ++i) {
    const ojson& m = msgs[i];
    const std::string f = fmt::format("messages[{}]", i);
    if (!m.is_object()) bad(f, "must be an object");
    if (!m.contains("role") || !m["role"].is_string()) bad(f + ".role", "must be a string");
    const std::string role = m["role"].get<std::string>();
    if (role != "system" && role != "user" && role != "assistant" && role != "tool" && role != "developer")
      bad(f + ".role", fmt::format("'{}' is not one of system, developer, user, assistant, tool", role));
    ojson c = m;
    c["role"] = role == "developer" ? "system" : role;
    c["content"] = content_text(m.contains("content") ? m["content"] : ojson(), f + ".content");
    // clients send the reasoning of earlier turns under either name; templates read reasoning_content
    if (!c.contains("reasoning_content") && c.contains("reasoning") && c["reasoning"].is_string())
      c["reasoning_content"] = c["reasoning"];
    if (c.contains("tool_calls") && !c["tool_calls"].is_null())
      c["tool_calls"] = tool_calls_for_template(c["tool_calls"], f + ".tool_calls");
    out.push_back(std::move(c));
  }
  return out;
}

// thinking_budget (tokens) or reasoning_effort (a named budget); the server's --reasoning-budget otherwise.
int64_t reasoning_budget(const ojson& b, int64_t fallback) {
  auto it = b.find("reasoning_effort");
  if (it != b.end() && !it->is_null()) {
    static const std::pair<const char*, int64_t> levels[] = {
        {"none", 0}, {"minimal", 0}, {"low", 512}, {"medium", 2048}, {"high", 8192}};
    if (!it->is_string()) bad("reasoning_effort", "must be a string");
    bool found = false;
    for (const auto& [name, n] : levels)
      if (it->get<std::string>() == name) fallback = n, found = true;
    if (!found) bad("reasoning_effort", "must be one of none, minimal, low, medium, high");
  }
  return integer(b, "thinking_budget", 0, int64_t(1) << 40, fallback);
}

constexpr size_t kMaxStops = 16, kMaxStopBytes = 1024;  // stop strings are matched after every token

std::vector<std::string> stop_strings(const ojson& b) {
  auto it = b.find("stop");
  if (it == b.end() || it->is_null()) return {};
  const ojson list = it->is_string() ? ojson::array({*it}) : *it;
  if (!list.is_array() || list.size() > kMaxStops)
    bad("stop", "must be a string or a list of at most 16 strings");
  std::vector<std::string> out;
  for (const auto& s : list) {
    if (!s.is_string() || s.get<std::string>().empty() || s.get<std::string>().size() > kMaxStopBytes)
      bad("stop", "entries must be non-empty strings of at most 1024 bytes");
    out.push_back(s.get<std::string>());
  }
  return out;
}
}  // namespace

ApiRequest parse_request(const ojson& b, bool chat, const PromptEncoder& cs, int64_t vocab,
                         const ApiOptions& opt, std::mutex& template_mu) {
  if (!b.is_object()) throw RequestError(400, "the request body must be a JSON object");
  ApiRequest r;
  r.chat = chat;
  if (integer(b, "n", 1, 1, 1) != 1) bad("n", "must be 1");
  r.stream = boolean(b, "stream", false);
  if (auto it = b.find("stream_options"); it != b.end() && !it->is_null()) {
    if (!it->is_object()) bad("stream_options", "must be an object");
    r.include_usage = boolean(*it, "include_usage", false);
  }
  if (chat) {
    ojson tools = nullptr;
    if (auto it = b.find("tools"); it != b.end() && !it->is_null()) {
      if (!it->is_array()) bad("tools", "must be a list");
      tools = *it;
    }
    if (auto it = b.find("tool_choice"); it != b.end() && it->is_string() && it->get<std::string>() == "none")
      tools = nullptr;
    r.tools = tools;
    ojson kwargs = ojson::object();
    if (auto it = b.find("chat_template_kwargs"); it != b.end() && !it->is_null()) {
      if (!it->is_object()) bad("chat_template_kwargs", "must be an object");
      kwargs = *it;
    }
    const ojson msgs = messages_for_template(b.contains("messages") ? b["messages"] : ojson());
    try {
      std::lock_guard<std::mutex> lk(template_mu);
      r.prompt = cs.encode_chat(msgs, tools, true, kwargs, &r.rendered);
    } catch (const Error& e) {
      throw RequestError(400, fmt::format("the chat template failed on these messages: {}", e.what()));
    }
    r.starts_in_think = ReasoningSplitter::prompt_opens_think(r.rendered);
    if (boolean(b, "logprobs", false)) r.top_logprobs = int(integer(b, "top_logprobs", 0, 20, 0));
  } else {
    auto it = b.find("prompt");
    if (it == b.end()) bad("prompt", "is required");
    if (it->is_string()) {
      r.prompt = cs.encode_raw(it->get<std::string>());
    } else if (it->is_array() && it->size() == 1 && (*it)[0].is_string()) {
      r.prompt = cs.encode_raw((*it)[0].get<std::string>());
    } else if (it->is_array() && !it->empty() && (*it)[0].is_number_integer()) {
      for (const auto& t : *it) {
        if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= vocab)
          bad("prompt", fmt::format("token ids must be integers in [0, {})", vocab));
        r.prompt.push_back(t.get<int32_t>());
      }
    } else {
      bad("prompt", "must be a string, a list of one string, or a list of token ids");
    }
    if (auto lp = b.find("logprobs"); lp != b.end() && !lp->is_null())
      r.top_logprobs = int(integer(b, "logprobs", 0, 20, 0));
  }
  if (r.prompt.empty()) bad(chat ? "messages" : "prompt", "gives an empty prompt");
  SamplingParams sp = opt.defaults;
  sp.temperature = float(number(b, "temperature", 0, 100, sp.temperature));
  sp.top_p = float(number(b, "top_p", 1e-9, 1, sp.top_p));
  sp.top_k = int(integer(b, "top_k", 0, 1 << 30, sp.top_k));
  sp.min_p = float(number(b, "min_p", 0, 1, sp.min_p));
  sp.repetition_penalty = float(number(b, "repetition_penalty", 1e-6, 100, sp.repetition_penalty));
  sp.presence_penalty = float(number(b, "presence_penalty", -2, 2, 0));
  sp.frequency_penalty = float(number(b, "frequency_penalty", -2, 2, 0));
  sp.seed = uint64_t(integer(b, "seed", INT64_MIN, INT64_MAX, int64_t(sp.seed)));
  r.params.sampling = sp;
  int64_t max_tokens = integer(b, "max_tokens", 1, INT64_MAX, opt.default_max_tokens);
  max_tokens = integer(b, "max_completion_tokens", 1, INT64_MAX, max_tokens);
  r.params.max_tokens = max_tokens > 0 ? max_tokens : INT32_MAX;  // up to the end of the context
  r.params.stop = stop_strings(b);
  r.params.ignore_eos = boolean(b, "ignore_eos", false);
  r.reasoning_budget = reasoning_budget(b, opt.reasoning_budget);
  if (r.reasoning_budget >= 0) {
    const bool inside = chat ? r.starts_in_think
                             : ReasoningSplitter::prompt_opens_think(cs.tokenizer().decode_bytes(r.prompt));
    auto budget = std::make_shared<ReasoningBudget>(cs.tokenizer(), r.reasoning_budget, inside);
    r.params.force_token = [budget](const std::vector<int32_t>& t, int64_t n) { return budget->next(t, n); };
  }
  return r;
}

nlohmann::json error_body(const std::string& message, const std::string& type, const std::string& param,
                          const std::string& code) {
  return {{"error",
           {{"message", message},
            {"type", type},
            {"param", param.empty() ? nlohmann::json() : nlohmann::json(param)},
            {"code", code.empty() ? nlohmann::json() : nlohmann::json(code)}}}};
}

ApiResponse::ApiResponse(const ApiRequest& req, const ApiOptions& opt, const Tokenizer& tok, std::string id)
    : req_(req),
      opt_(opt),
      tok_(tok),
      id_(std::move(id)),
      created_(std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count()),
      split_(req.starts_in_think),
      tools_(req.tools) {}

nlohmann::json ApiResponse::base(const char* object) const {
  return {{"id", id_}, {"object", object}, {"created", created_}, {"model", opt_.model_id}};
}

std::string ApiResponse::finish_reason(const std::string& r) const {
  return r == "cancelled" ? "stop" : r;
}

nlohmann::json ApiResponse::logprobs_json(const std::vector<TokenLogprob>& lps) const {
  auto entry = [&](int32_t id, float lp) {
    const std::string s = tok_.decode_bytes({id});
    nlohmann::json bytes = nlohmann::json::array();
    for (unsigned char ch : s) bytes.push_back(int(ch));
    return nlohmann::json{{"token", tok_.decode({id})}, {"logprob", lp}, {"bytes", bytes}};
  };
  if (req_.chat) {
    nlohmann::json content = nlohmann::json::array();
    for (const auto& l : lps) {
      nlohmann::json e = entry(l.token, l.logprob);
      e["top_logprobs"] = nlohmann::json::array();
      for (const auto& [id, lp] : l.top) e["top_logprobs"].push_back(entry(id, lp));
      content.push_back(std::move(e));
    }
    return {{"content", content}};
  }
  nlohmann::json tokens = nlohmann::json::array(), tlp = nlohmann::json::array(),
                 top = nlohmann::json::array();
  for (const auto& l : lps) {
    tokens.push_back(tok_.decode({l.token}));
    tlp.push_back(l.logprob);
    nlohmann::json t = nlohmann::json::object();
    for (const auto& [id, lp] : l.top) t[tok_.decode({id})] = lp;
    top.push_back(std::move(t));
  }
  return {{"tokens", tokens}, {"token_logprobs", tlp}, {"top_logprobs", top}};
}

nlohmann::json ApiResponse::first_chunk() const {
  nlohmann::json c = base("chat.completion.chunk");
  c["choices"] = {{{"index", 0},
                   {"delta", {{"role", "assistant"}, {"content", ""}}},
                   {"logprobs", nullptr},
                   {"finish_reason", nullptr}}};
  return c;
}

std::vector<ReasoningSplitter::Piece> ApiResponse::split(const StreamEvent& ev,
                                                         std::vector<ToolCall>& calls) {
  std::vector<ReasoningSplitter::Piece> pieces;
  if (!opt_.split_reasoning || !req_.chat)
    pieces.push_back({ev.text, false});
  else
    pieces = split_.push(ev.text);
  if (ev.finished && req_.chat && opt_.split_reasoning)
    for (auto& p : split_.finish()) pieces.push_back(std::move(p));
  if (!req_.chat || req_.tools.is_null()) return pieces;
  std::vector<ReasoningSplitter::Piece> out;
  auto take = [&](ToolCallParser::Out o) {
    if (!o.content.empty()) out.push_back({std::move(o.content), false});
    for (auto& c : o.calls) calls.push_back(std::move(c));
  };
  for (auto& p : pieces) {
    if (p.reasoning)
      out.push_back(std::move(p));
    else
      take(tools_.push(p.text));
  }
  if (ev.finished) take(tools_.finish());
  return out;
}

nlohmann::json ApiResponse::tool_call_json(const ToolCall& c, size_t index) const {
  return {{"index", index},
          {"id", fmt::format("call_{}_{}", id_, index)},
          {"type", "function"},
          {"function", {{"name", c.name}, {"arguments", c.arguments}}}};
}

std::vector<nlohmann::json> ApiResponse::chunks(const StreamEvent& ev) {
  std::vector<nlohmann::json> out;
  std::vector<ToolCall> calls;
  const std::vector<ReasoningSplitter::Piece> pieces = split(ev, calls);
  bool logprobs_sent = ev.logprobs.empty();
  for (const auto& p : pieces) {
    if (p.text.empty()) continue;
    nlohmann::json c = base(req_.chat ? "chat.completion.chunk" : "text_completion");
    nlohmann::json choice = {{"index", 0}, {"finish_reason", nullptr}};
    choice["logprobs"] = logprobs_sent ? nlohmann::json() : logprobs_json(ev.logprobs);
    logprobs_sent = true;
    if (req_.chat) {
      nlohmann::json delta = nlohmann::json::object();
      if (p.reasoning)
        delta["reasoning_content"] = delta["reasoning"] = p.text;
      else
        delta["content"] = p.text;
      choice["delta"] = std::move(delta);
    } else {
      choice["text"] = p.text;
    }
    c["choices"] = nlohmann::json::array({choice});
    out.push_back(std::move(c));
  }
  for (const ToolCall& call : calls) {  // each call whole in one delta (its index counts the calls so far)
    nlohmann::json c = base("chat.completion.chunk");
    nlohmann::json choice = {{"index", 0}, {"finish_reason", nullptr}, {"logprobs", nullptr}};
    choice["delta"] = {{"tool_calls", nlohmann::json::array({tool_call_json(call, streamed_calls_++)})}};
    c["choices"] = nlohmann::json::array({choice});
    out.push_back(std::move(c));
  }
  if (ev.finished) {
    nlohmann::json c = base(req_.chat ? "chat.completion.chunk" : "text_completion");
    nlohmann::json choice = {
        {"index", 0},
        {"finish_reason", streamed_calls_ ? "tool_calls" : finish_reason(ev.finish_reason)},
        {"logprobs", nullptr}};
    if (req_.chat)
      choice["delta"] = nlohmann::json::object();
    else
      choice["text"] = "";
    c["choices"] = nlohmann::json::array({choice});
    out.push_back(std::move(c));
  }
  return out;
}

nlohmann::json ApiResponse::usage(const EngineStream& s) const {
  return {{"prompt_tokens", s.prompt_tokens},
          {"completion_tokens", s.completion_tokens},
          {"total_tokens", s.prompt_tokens + s.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", s.cached_tokens}}}};
}

nlohmann::json ApiResponse::usage_chunk(const EngineStream& s) const {
  nlohmann::json c = base(req_.chat ? "chat.completion.chunk" : "text_completion");
  c["choices"] = nlohmann::json::array();
  c["usage"] = usage(s);
  return c;
}

void ApiResponse::add(const StreamEvent& ev) {
  const std::vector<ReasoningSplitter::Piece> pieces = split(ev, calls_);
  for (const auto& p : pieces) (p.reasoning ? reasoning_ : content_) += p.text;
  lps_.insert(lps_.end(), ev.logprobs.begin(), ev.logprobs.end());
  if (ev.finished) reason_ = calls_.empty() ? finish_reason(ev.finish_reason) : "tool_calls";
}

nlohmann::json ApiResponse::whole(const EngineStream& s) const {
  nlohmann::json r = base(req_.chat ? "chat.completion" : "text_completion");
  nlohmann::json choice = {{"index", 0}, {"finish_reason", reason_}};
  choice["logprobs"] = req_.top_logprobs >= 0 ? logprobs_json(lps_) : nlohmann::json();
  if (req_.chat) {
    nlohmann::json msg = {{"role", "assistant"}, {"content", content_}};
    if (!reasoning_.empty()) msg["reasoning_content"] = msg["reasoning"] = reasoning_;
    if (!calls_.empty()) {
      if (content_.empty()) msg["content"] = nullptr;
      msg["tool_calls"] = nlohmann::json::array();
      for (size_t i = 0; i < calls_.size(); ++i) {
        nlohmann::json tc = tool_call_json(calls_[i], i);
        tc.erase("index");
        msg["tool_calls"].push_back(std::move(tc));
      }
    }
    choice["message"] = std::move(msg);
  } else {
    choice["text"] = content_;
  }
  r["choices"] = nlohmann::json::array({choice});
  r["usage"] = usage(s);
  return r;
}

}  // namespace tqlm
