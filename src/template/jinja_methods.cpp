// Python str / dict / list methods that chat templates call (`content.strip()`, `message.get('x')`,
// `d.items()`, ...). Mutating methods resolve to an "unsafe" undefined, as in jinja2's
// ImmutableSandboxedEnvironment, so calling them fails.
#include <algorithm>
#include <charconv>
#include <cstdint>

#include "core/error.h"
#include "template/jinja_builtins.h"
#include "template/jinja_limits.h"
#include "template/jinja_unicode.h"

namespace tqlm::jinja {

namespace {

const std::string* opt_str(const Value& v, const char* fn) {
  if (v.is_none() || v.is_undefined()) return nullptr;
  if (v.kind != Kind::String) fail("{} arg must be None or str", fn);
  return &v.s;
}

std::string need_str(const Value& v, const char* fn) {
  if (v.kind != Kind::String) fail("{}() argument must be str, not {}", fn, type_name(v));
  return v.s;
}

int64_t cp_index(const std::string& s, size_t byte_pos) {
  return static_cast<int64_t>(codepoint_count(std::string_view(s).substr(0, byte_pos)));
}

bool all_cp(const std::string& s, bool (*pred)(char32_t)) {
  if (s.empty()) return false;
  for (char32_t c : utf8_decode(s))
    if (!pred(c)) return false;
  return true;
}

Value affix_test(const std::string& s, const Value& arg, bool prefix) {
  ValueList cands = arg.kind == Kind::Tuple ? *arg.list : ValueList{arg};
  for (const auto& c : cands) {
    if (c.kind != Kind::String)
      fail("{} first arg must be str or a tuple of str, not {}", prefix ? "startswith" : "endswith",
           type_name(c));
    if (c.s.size() > s.size()) continue;
    if (prefix ? s.compare(0, c.s.size(), c.s) == 0 : s.compare(s.size() - c.s.size(), c.s.size(), c.s) == 0)
      return Value::boolean(true);
  }
  return Value::boolean(false);
}

std::string py_format(const std::string& fmt_str, const CallArgs& a) {
  std::string out;
  size_t auto_idx = 0;
  for (size_t k = 0; k < fmt_str.size(); ++k) {
    char c = fmt_str[k];
    if (c == '}' && k + 1 < fmt_str.size() && fmt_str[k + 1] == '}') {
      out.push_back('}');
      ++k;
      continue;
    }
    if (c != '{') {
      out.push_back(c);
      continue;
    }
    if (k + 1 < fmt_str.size() && fmt_str[k + 1] == '{') {
      out.push_back('{');
      ++k;
      continue;
    }
    size_t close = fmt_str.find('}', k);
    if (close == std::string::npos) fail("Single '{{' encountered in format string");
    std::string field = fmt_str.substr(k + 1, close - k - 1);
    if (field.find_first_of(":!") != std::string::npos)
      fail("format specs are not supported in str.format()");
    Value v;
    if (field.empty()) {
      if (auto_idx >= a.pos.size())
        fail("Replacement index {} out of range for positional args tuple", auto_idx);
      v = a.pos[auto_idx++];
    } else if (std::all_of(field.begin(), field.end(), [](char ch) { return ch >= '0' && ch <= '9'; })) {
      size_t idx = SIZE_MAX;
      std::from_chars(field.data(), field.data() + field.size(), idx);  // too many digits: stays SIZE_MAX
      if (idx >= a.pos.size()) fail("Replacement index {} out of range for positional args tuple", field);
      v = a.pos[idx];
    } else {
      const Value* kv = a.kwarg(field);
      if (!kv) fail("KeyError: '{}'", field);
      v = *kv;
    }
    append_checked(out, to_str(v), "str.format");
    k = close;
  }
  return out;
}

Value pad(const std::string& s, const CallArgs& a, char mode) {
  auto width = static_cast<int64_t>(size_arg(a.get(0, "width"), "padding"));
  std::string fill = a.pos.size() > 1 ? a.pos[1].s : " ";
  int64_t n = static_cast<int64_t>(codepoint_count(s));
  if (width <= n) return Value::string(s);
  int64_t total = width - n;
  check_string_size(s.size() + static_cast<size_t>(total) * fill.size(), "padding");
  int64_t left = mode == 'l' ? 0 : mode == 'r' ? total : total / 2 + (total & width & 1);
  std::string out;
  for (int64_t k = 0; k < left; ++k) out += fill;
  out += s;
  for (int64_t k = 0; k < total - left; ++k) out += fill;
  return Value::string(out);
}

Value str_method(const std::string& s, const std::string& name, CallArgs& a) {
  charge_bytes(s.size());  // every method scans or copies the string
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    a.check(name, 1, {});
    Value chars = a.get(0, "chars", Value::none());
    return Value::string(str_strip(s, opt_str(chars, name.c_str()), name != "rstrip", name != "lstrip"));
  }
  if (name == "startswith" || name == "endswith") {
    a.check(name, 1, {});
    return affix_test(s, a.get(0, "prefix"), name == "startswith");
  }
  if (name == "split" || name == "rsplit") {
    a.check(name, 2, {"sep", "maxsplit"});
    Value sep = a.get(0, "sep", Value::none());
    return Value::make_list(str_split(s, opt_str(sep, name.c_str()),
                                      a.get(1, "maxsplit", Value::integer(-1)).as_int(), name == "rsplit"));
  }
  if (name == "splitlines") {
    bool keep = truthy(a.get(0, "keepends", Value::boolean(false)));
    std::u32string cps = utf8_decode(s);
    ValueList out;
    size_t start = 0;
    for (size_t k = 0; k < cps.size(); ++k) {
      if (!py_islinebreak(cps[k])) continue;
      size_t end = k;
      if (cps[k] == '\r' && k + 1 < cps.size() && cps[k + 1] == '\n') ++k;
      out.push_back(
          Value::string(utf8_encode(std::u32string_view(cps).substr(start, (keep ? k + 1 : end) - start))));
      start = k + 1;
    }
    if (start < cps.size()) out.push_back(Value::string(utf8_encode(std::u32string_view(cps).substr(start))));
    return Value::make_list(std::move(out));
  }
  if (name == "replace") {
    a.check(name, 3, {"count"});
    std::string from = need_str(a.get(0, "old"), "replace"), to = need_str(a.get(1, "new"), "replace");
    int64_t count = a.get(2, "count", Value::integer(-1)).as_int();
    std::string out;
    if (from.empty()) {
      ValueList chars = str_chars(s);
      int64_t done = 0;
      for (const auto& ch : chars) {
        if (count < 0 || done < count) {
          append_checked(out, to, "replace");
          ++done;
        }
        out += ch.s;
      }
      if (count < 0 || done < count) append_checked(out, to, "replace");
      return Value::string(out);
    }
    size_t pos = 0;
    int64_t done = 0;
    for (;;) {
      size_t hit = (count >= 0 && done >= count) ? std::string::npos : s.find(from, pos);
      if (hit == std::string::npos) break;
      out.append(s, pos, hit - pos);
      append_checked(out, to, "replace");
      pos = hit + from.size();
      ++done;
    }
    out.append(s, pos, std::string::npos);
    return Value::string(out);
  }
  if (name == "upper") return Value::string(str_upper(s));
  if (name == "lower" || name == "casefold") return Value::string(str_lower(s));
  if (name == "title") return Value::string(str_title(s));
  if (name == "capitalize") return Value::string(str_capitalize(s));
  if (name == "swapcase") return Value::string(str_swapcase(s));
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex") {
    if (a.pos.size() > 1) fail("{}() with start/end arguments is not supported", name);
    std::string sub = need_str(a.get(0, "sub"), name.c_str());
    size_t hit = name[0] == 'r' ? s.rfind(sub) : s.find(sub);
    if (hit == std::string::npos) {
      if (name == "index" || name == "rindex") fail("substring not found");
      return Value::integer(-1);
    }
    return Value::integer(cp_index(s, hit));
  }
  if (name == "count") {
    std::string sub = need_str(a.get(0, "sub"), "count");
    if (sub.empty()) return Value::integer(static_cast<int64_t>(codepoint_count(s)) + 1);
    int64_t n = 0;
    for (size_t pos = s.find(sub); pos != std::string::npos; pos = s.find(sub, pos + sub.size())) ++n;
    return Value::integer(n);
  }
  if (name == "join") {
    std::string out;
    size_t k = 0;
    for (const auto& item : iterate(a.get(0, "iterable"))) {
      if (item.kind != Kind::String)
        fail("sequence item {}: expected str instance, {} found", k, type_name(item));
      if (k++) append_checked(out, s, "str.join");
      append_checked(out, item.s, "str.join");
    }
    return Value::string(out);
  }
  if (name == "format") return Value::string(py_format(s, a));
  if (name == "isdigit" || name == "isnumeric" || name == "isdecimal")
    return Value::boolean(all_cp(s, py_isdigit));
  if (name == "isalpha") return Value::boolean(all_cp(s, py_isalpha));
  if (name == "isalnum")
    return Value::boolean(all_cp(s, [](char32_t c) { return py_isalpha(c) || py_isdigit(c); }));
  if (name == "isspace") return Value::boolean(all_cp(s, py_isspace));
  if (name == "isupper" || name == "islower") {
    bool cased = false, ok = true;
    for (char32_t c : utf8_decode(s)) {
      if (!py_iscased(c)) continue;
      cased = true;
      ok = ok && (name == "isupper" ? py_isupper(c) : py_islower(c));
    }
    return Value::boolean(cased && ok);
  }
  if (name == "zfill") {
    auto width = static_cast<int64_t>(size_arg(a.get(0, "width"), "zfill"));
    int64_t n = static_cast<int64_t>(codepoint_count(s));
    if (width <= n) return Value::string(s);
    size_t sign = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
    return Value::string(s.substr(0, sign) + std::string(static_cast<size_t>(width - n), '0') +
                         s.substr(sign));
  }
  if (name == "center") return pad(s, a, 'c');
  if (name == "ljust") return pad(s, a, 'l');
  if (name == "rjust") return pad(s, a, 'r');
  if (name == "partition" || name == "rpartition") {
    std::string sep = need_str(a.get(0, "sep"), name.c_str());
    if (sep.empty()) fail("empty separator");
    size_t hit = name[0] == 'r' ? s.rfind(sep) : s.find(sep);
    if (hit == std::string::npos) {
      if (name[0] == 'r') return Value::make_tuple({Value::string(""), Value::string(""), Value::string(s)});
      return Value::make_tuple({Value::string(s), Value::string(""), Value::string("")});
    }
    return Value::make_tuple(
        {Value::string(s.substr(0, hit)), Value::string(sep), Value::string(s.substr(hit + sep.size()))});
  }
  if (name == "removeprefix" || name == "removesuffix") {
    std::string x = need_str(a.get(0, "prefix"), name.c_str());
    bool pre = name == "removeprefix";
    if (x.size() <= s.size() &&
        (pre ? s.compare(0, x.size(), x) == 0 : s.compare(s.size() - x.size(), x.size(), x) == 0))
      return Value::string(pre ? s.substr(x.size()) : s.substr(0, s.size() - x.size()));
    return Value::string(s);
  }
  fail("'str' object has no method '{}'", name);
}

bool is_str_method(const std::string& n) {
  static const char* names[] = {
      "strip",      "lstrip",       "rstrip",      "startswith", "endswith", "split",   "rsplit",
      "splitlines", "replace",      "upper",       "lower",      "casefold", "title",   "capitalize",
      "swapcase",   "find",         "rfind",       "index",      "rindex",   "count",   "join",
      "format",     "isdigit",      "isnumeric",   "isdecimal",  "isalpha",  "isalnum", "isspace",
      "isupper",    "islower",      "zfill",       "center",     "ljust",    "rjust",   "partition",
      "rpartition", "removeprefix", "removesuffix"};
  for (const char* x : names)
    if (n == x) return true;
  return false;
}

Value dict_method(const Value& d, const std::string& name, CallArgs& a) {
  if (name == "keys" || name == "values" || name == "items") {
    ValueList out;
    for (const auto& kv : d.dict->items) {
      if (name == "keys")
        out.push_back(kv.first);
      else if (name == "values")
        out.push_back(kv.second);
      else
        out.push_back(Value::make_tuple({kv.first, kv.second}));
    }
    return Value::make_list(std::move(out));
  }
  if (name == "get") {
    const Value* v = d.dict->find(a.get(0, "key"));
    return v ? *v : a.get(1, "default", Value::none());
  }
  Value copy = Value::make_dict();
  *copy.dict = *d.dict;
  return copy;
}

Value list_method(const Value& l, const std::string& name, CallArgs& a) {
  Value x = a.get(0, "value");
  if (name == "count") {
    int64_t n = 0;
    for (const auto& item : *l.list) n += equals(item, x) ? 1 : 0;
    return Value::integer(n);
  }
  if (name == "index") {
    for (size_t k = 0; k < l.list->size(); ++k)
      if (equals((*l.list)[k], x)) return Value::integer(static_cast<int64_t>(k));
    fail("{} is not in list", repr(x));
  }
  return Value::make_list(*l.list);
}

}  // namespace

size_t size_arg(const Value& v, std::string_view what) {
  int64_t n = v.as_int();
  if (n <= 0) return 0;
  check_string_size(static_cast<size_t>(n), what);
  return static_cast<size_t>(n);
}

ValueList str_split(const std::string& s, const std::string* sep, int64_t maxsplit, bool from_right) {
  ValueList out;
  if (sep) {
    if (sep->empty()) fail("empty separator");
    std::vector<std::string> parts;
    if (!from_right) {
      size_t pos = 0;
      int64_t n = 0;
      for (;;) {
        size_t hit = (maxsplit >= 0 && n >= maxsplit) ? std::string::npos : s.find(*sep, pos);
        if (hit == std::string::npos) break;
        parts.push_back(s.substr(pos, hit - pos));
        pos = hit + sep->size();
        ++n;
      }
      parts.push_back(s.substr(pos));
    } else {
      size_t end = s.size();
      int64_t n = 0;
      for (;;) {
        if (maxsplit >= 0 && n >= maxsplit) break;
        if (end < sep->size()) break;
        size_t hit = s.rfind(*sep, end - sep->size());
        if (hit == std::string::npos) break;
        parts.push_back(s.substr(hit + sep->size(), end - hit - sep->size()));
        end = hit;
        ++n;
      }
      parts.push_back(s.substr(0, end));
      std::reverse(parts.begin(), parts.end());
    }
    for (auto& p : parts) out.push_back(Value::string(std::move(p)));
    return out;
  }
  std::u32string cps = utf8_decode(s);
  std::vector<std::u32string> parts;
  if (!from_right) {
    size_t k = 0;
    int64_t n = 0;
    while (k < cps.size()) {
      while (k < cps.size() && py_isspace(cps[k])) ++k;
      if (k >= cps.size()) break;
      if (maxsplit >= 0 && n >= maxsplit) {
        parts.push_back(cps.substr(k));
        break;
      }
      size_t b = k;
      while (k < cps.size() && !py_isspace(cps[k])) ++k;
      parts.push_back(cps.substr(b, k - b));
      ++n;
    }
  } else {
    size_t k = cps.size();
    int64_t n = 0;
    while (k > 0) {
      while (k > 0 && py_isspace(cps[k - 1])) --k;
      if (k == 0) break;
      if (maxsplit >= 0 && n >= maxsplit) {
        parts.push_back(cps.substr(0, k));
        break;
      }
      size_t e = k;
      while (k > 0 && !py_isspace(cps[k - 1])) --k;
      parts.push_back(cps.substr(k, e - k));
      ++n;
    }
    std::reverse(parts.begin(), parts.end());
  }
  for (auto& p : parts) out.push_back(Value::string(utf8_encode(p)));
  return out;
}

Value bound_method(const Value& obj, const std::string& name) {
  auto unsafe = [&]() {
    return Value::undefined("access to attribute '" + name + "' of '" + type_name(obj) +
                            "' object is unsafe");
  };
  if (obj.kind == Kind::String && is_str_method(name)) {
    std::string s = obj.s;
    return Value::callable(name, [s, name](CallArgs& a) { return str_method(s, name, a); });
  }
  if (obj.kind == Kind::Dict) {
    if (name == "keys" || name == "values" || name == "items" || name == "get" || name == "copy")
      return Value::callable(name, [obj, name](CallArgs& a) { return dict_method(obj, name, a); });
    if (name == "pop" || name == "popitem" || name == "setdefault" || name == "update" || name == "clear")
      return unsafe();
  }
  if (obj.is_sequence()) {
    if (name == "count" || name == "index" || (name == "copy" && obj.kind == Kind::List))
      return Value::callable(name, [obj, name](CallArgs& a) { return list_method(obj, name, a); });
    if (obj.kind == Kind::List &&
        (name == "append" || name == "extend" || name == "insert" || name == "pop" || name == "remove" ||
         name == "reverse" || name == "sort" || name == "clear"))
      return unsafe();
  }
  return Value::undefined();
}

}  // namespace tqlm::jinja
