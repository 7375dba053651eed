#include "server/tool_calls.h"

#include "core/json.h"

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
    // the request's tools are unchecked JSON: a non-string name is no match (value() would throw)
    if (!f.is_object() || !f.contains("name") || !f["name"].is_string() || f["name"].get<std::string>() != fn)
      continue;
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

// Every OPEN NAME "> INNER CLOSE in s, left to right, NAME without '"' and INNER the shortest
// (non-overlapping).
struct Element {
  std::string name, inner;
};
std::vector<Element> elements(const std::string& s, std::string_view open, std::string_view close) {
  std::vector<Element> out;
  size_t pos = 0;
  while ((pos = s.find(open, pos)) != std::string::npos) {
    const size_t q = s.find('"', pos + open.size());
    if (q == std::string::npos) break;
    if (s.compare(q, 2, "\">") != 0) {
      ++pos;
      continue;
    }
    const size_t end = s.find(close, q + 2);
    if (end == std::string::npos) break;
    out.push_back({s.substr(pos + open.size(), q - pos - open.size()), s.substr(q + 2, end - q - 2)});
    pos = end + close.size();
  }
  return out;
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
    auto j = parse_json_limited(raw, "tool call parameter");  // a model's deep nesting: the string
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
  // <invoke name="N">...</invoke> with <parameter name="K">V</parameter> inside, matched by hand (as the
  // regex <invoke name="([^"]*)">([\s\S]*?)</invoke> would): std::regex recurses per character and overflowed
  // the stack on a 100 KB parameter value.
  std::vector<ToolCall> out;
  for (const Element& inv : elements(body, "<invoke name=\"", "</invoke>")) {
    nlohmann::ordered_json args = nlohmann::ordered_json::object();
    for (const Element& p : elements(inv.inner, "<parameter name=\"", "</parameter>"))
      args[p.name] = convert(trim_newlines(p.inner), schema_type(tools_, inv.name, p.name));
    out.push_back({inv.name, args.dump()});
  }
  return out;
}

std::vector<ToolCall> ToolCallParser::parse_hermes(const std::string& body) const {
  try {
    const auto j = parse_json_limited(body, "tool call");  // too deep: not a call
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
