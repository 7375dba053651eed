// Python json.dumps for Jinja values (the `tojson` filter as transformers defines it): same escaping,
// separators, indentation and float formatting as CPython's json encoder.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "template/jinja_limits.h"
#include "template/jinja_unicode.h"
#include "template/jinja_value.h"

namespace tqlm::jinja {

static void dump_string(std::string& out, std::string_view s, bool ensure_ascii) {
  out.push_back('"');
  auto hex4 = [&out](unsigned c) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "\\u%04x", c & 0xFFFFu);
    out += buf;
  };
  for (char32_t c : utf8_decode(s)) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20) {
          hex4(c);
        } else if (ensure_ascii && c >= 0x7F) {
          if (c >= 0x10000) {
            char32_t v = c - 0x10000;
            hex4(0xD800 | (v >> 10));
            hex4(0xDC00 | (v & 0x3FF));
          } else {
            hex4(c);
          }
        } else {
          utf8_append(out, c);
        }
    }
  }
  out.push_back('"');
}

static std::string float_json(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  return py_float_repr(d);
}

static std::string key_string(const Value& k) {
  switch (k.kind) {
    case Kind::String:
      return k.s;
    case Kind::Bool:
      return k.b ? "true" : "false";
    case Kind::None:
      return "null";
    case Kind::Int:
      return std::to_string(k.i);
    case Kind::Float:
      return float_json(k.f);
    default:
      fail("keys must be str, int, float, bool or None, not {}", type_name(k));
  }
}

static void dump(std::string& out, const Value& v, const JsonOptions& opt, int level) {
  auto newline = [&](int lvl) {
    check_string_size(out.size() + 1 + opt.indent.size() * static_cast<size_t>(lvl), "tojson");
    out.push_back('\n');
    for (int k = 0; k < lvl; ++k) out += opt.indent;
  };
  switch (v.kind) {
    case Kind::None:
      out += "null";
      return;
    case Kind::Bool:
      out += v.b ? "true" : "false";
      return;
    case Kind::Int:
      out += std::to_string(v.i);
      return;
    case Kind::Float:
      out += float_json(v.f);
      return;
    case Kind::String:
      dump_string(out, v.s, opt.ensure_ascii);
      return;
    case Kind::List:
    case Kind::Tuple: {
      if (v.list->empty()) {
        out += "[]";
        return;
      }
      ValueDepthGuard guard("nesting of a value passed to tojson");
      out.push_back('[');
      bool first = true;
      for (const auto& x : *v.list) {
        if (!first) out += opt.item_sep;
        first = false;
        if (opt.has_indent) newline(level + 1);
        dump(out, x, opt, level + 1);
        check_string_size(out.size(), "tojson");
      }
      if (opt.has_indent) newline(level);
      out.push_back(']');
      return;
    }
    case Kind::Dict: {
      if (v.dict->items.empty()) {
        out += "{}";
        return;
      }
      ValueDepthGuard guard("nesting of a value passed to tojson");
      std::vector<std::pair<std::string, const Value*>> items;
      for (const auto& kv : v.dict->items) items.emplace_back(key_string(kv.first), &kv.second);
      if (opt.sort_keys)
        std::stable_sort(items.begin(), items.end(),
                         [](const auto& a, const auto& b) { return a.first < b.first; });
      out.push_back('{');
      bool first = true;
      for (const auto& kv : items) {
        if (!first) out += opt.item_sep;
        first = false;
        if (opt.has_indent) newline(level + 1);
        dump_string(out, kv.first, opt.ensure_ascii);
        out += opt.key_sep;
        dump(out, *kv.second, opt, level + 1);
        check_string_size(out.size(), "tojson");
      }
      if (opt.has_indent) newline(level);
      out.push_back('}');
      return;
    }
    default:
      fail("Object of type {} is not JSON serializable", type_name(v));
  }
}

std::string py_json_dumps(const Value& v, const JsonOptions& opt) {
  std::string out;
  dump(out, v, opt, 0);
  return out;
}

}  // namespace tqlm::jinja
