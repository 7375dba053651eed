#include "server/tool_calls.h"

#include <regex>

namespace tqlm {

namespace {
struct Form {
  const char* open;
  const char* close;
  bool minimax;
};
const Form kForms[] = {{"<minimax:tool_call>", "</minimax:tool_call>", true},
                       {"<tool_call>", "</tool_call>", false}};

// Where a tag could start in s: a full match, or a proper prefix of a tag at the end of s.
size_t tag_start(const std::string& s, size_t* form, bool* complete) {
  size_t best = std::string::npos;
  for (size_t f = 0; f < 2; ++f) {
    const std::string open = kForms[f].open;
    size_t p = s.find(open);
    if (p != std::string::npos && p < best) best = p, *form = f, *complete = true;
    for (size_t k = std::min(open.size() - 1, s.size()); k > 0; --k)
      if (s.compare(s.size() - k, k, open, 0, k) == 0) {
        if (s.size() - k < best) best = s.size() - k, *form = f, *complete = false;
        break;
      }
  }
  return best;
}

std::string schema_type(const nlohmann::ordered_json& tools, const std::string& fn,
                        const std::string& param) {
  if (!tools.is_array()) return "";
  for (const auto& t : tools) {
    const auto& f = t.contains("function") ? t["function"] : t;
    if (!f.is_object() || f.value("name", "") != fn) continue;
    const auto props = f.contains("parameters") && f["parameters"].is_object()
                           ? f["parameters"].value("properties", nlohmann::ordered_json::object())
                           : nlohmann::ordered_json::object();
    if (props.is_object() && props.contains(param) && props[param].is_object()) {
      const auto& ty = props[param].value("type", nlohmann::ordered_json());
      if (ty.is_string()) return ty.get<std::string>();
      if (ty.is_array() && !ty.empty() && ty[0].is_string()) return ty[0].get<std::string>();
    }
  }
  return "";
}

std::string trim_newlines(std::string v) {
  while (!v.empty() && (v.front() == '\n')) v.erase(0, 1);
  while (!v.empty() && (v.back() == '\n')) v.pop_back();
  return v;
}

nlohmann::ordered_json convert(const std::string& raw, const std::string& type) {
  if (type == "string") return raw;
  if (raw == "null") return nullptr;
  try {
    auto j = nlohmann::ordered_json::parse(raw);
    if (type == "integer" && !j.is_number_integer()) return raw;
    if (type == "number" && !j.is_number()) return raw;
    if (type == "boolean" && !j.is_boolean()) return raw;
    if ((type == "object" && !j.is_object()) || (type == "array" && !j.is_array())) return raw;
    return j;
  } catch (const std::exception&) {
    return raw;
  }
}
}  // namespace

ToolCallParser::ToolCallParser(const nlohmann::ordered_json& tools) : tools_(tools) {}

std::vector<ToolCall> ToolCallParser::parse_minimax(const std::string& body) const {
  static const std::regex invoke(R"re(<invoke name="([^"]*)">([\s\S]*?)</invoke>)re");
  static const std::regex param(R"re(<parameter name="([^"]*)">([\s\S]*?)</parameter>)re");
  std::vector<ToolCall> out;
  for (std::sregex_iterator it(body.begin(), body.end(), invoke), end; it != end; ++it) {
    const std::string name = (*it)[1], inner = (*it)[2];
    nlohmann::ordered_json args = nlohmann::ordered_json::object();
    for (std::sregex_iterator p(inner.begin(), inner.end(), param); p != end; ++p)
      args[(*p)[1].str()] = convert(trim_newlines((*p)[2]), schema_type(tools_, name, (*p)[1]));
    out.push_back({name, args.dump()});
  }
  return out;
}

std::vector<ToolCall> ToolCallParser::parse_hermes(const std::string& body) const {
  try {
    const auto j = nlohmann::ordered_json::parse(body);
    if (!j.is_object() || !j.contains("name") || !j["name"].is_string()) return {};
    const auto& a = j.contains("arguments") ? j["arguments"] : nlohmann::ordered_json::object();
    return {{j["name"].get<std::string>(), a.is_string() ? a.get<std::string>() : a.dump()}};
  } catch (const std::exception&) {
    return {};
  }
}

ToolCallParser::Out ToolCallParser::drain(bool final) {
  Out out;
  for (;;) {
    size_t form = 0;
    bool complete = false;
    const size_t p = tag_start(buf_, &form, &complete);
    if (p == std::string::npos || (!complete && final)) {
      out.content += buf_;
      buf_.clear();
      return out;
    }
    out.content += buf_.substr(0, p);
    buf_.erase(0, p);
    if (!complete) return out;  // maybe the start of a tag: wait for more text
    const std::string open = kForms[form].open, close = kForms[form].close;
    const size_t q = buf_.find(close, open.size());
    if (q == std::string::npos) {
      if (final) {
        out.content += buf_;
        buf_.clear();
      }
      return out;
    }
    const std::string body = buf_.substr(open.size(), q - open.size());
    auto calls = kForms[form].minimax ? parse_minimax(body) : parse_hermes(body);
    if (calls.empty())
      out.content += buf_.substr(0, q + close.size());  // not a call after all: keep the text
    for (auto& c : calls) out.calls.push_back(std::move(c));
    calls_ += int64_t(calls.size());
    buf_.erase(0, q + close.size());
  }
}

ToolCallParser::Out ToolCallParser::push(const std::string& text) {
  buf_ += text;
  return drain(false);
}

ToolCallParser::Out ToolCallParser::finish() {
  return drain(true);
}

}  // namespace tqlm
