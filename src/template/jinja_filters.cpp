// Jinja filters with jinja2/filters.py semantics; `tojson` is transformers' version (json.dumps with
// ensure_ascii=False, optional indent / separators / sort_keys).
#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "core/error.h"
#include "template/jinja_builtins.h"
#include "template/jinja_limits.h"
#include "template/jinja_parser.h"
#include "template/jinja_unicode.h"

namespace tqlm::jinja {

namespace {

const char* kFilters[] = {"abs",         "attr",     "capitalize", "center",  "count",   "d",
                          "default",     "dictsort", "e",          "escape",  "first",   "float",
                          "forceescape", "format",   "indent",     "int",     "items",   "join",
                          "last",        "length",   "list",       "lower",   "map",     "max",
                          "min",         "reject",   "rejectattr", "replace", "reverse", "round",
                          "safe",        "select",   "selectattr", "sort",    "string",  "sum",
                          "title",       "tojson",   "trim",       "unique",  "upper",   "wordcount"};

// environment.getitem chain for "a.b.0" attribute paths (make_attrgetter).
Value attr_path(const Value& item, const Value& attribute) {
  if (attribute.is_int()) return get_item(item, attribute);
  Value cur = item;
  std::string path = to_str(attribute);
  size_t start = 0;
  for (;;) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool digits =
        !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    int64_t idx = 0;
    bool index = digits && std::from_chars(part.data(), part.data() + part.size(), idx).ec == std::errc();
    cur = get_item(cur, index ? Value::integer(idx) : Value::string(part));  // too many digits: a key
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

Value ignore_case(const Value& v) {
  return v.kind == Kind::String ? Value::string(str_lower(v.s)) : v;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

Value py_int(const Value& v, const Value& dflt, int64_t base) {
  if (v.kind == Kind::Int || v.kind == Kind::Bool) return Value::integer(v.i);
  if (v.kind == Kind::Float) return std::isfinite(v.f) ? Value::integer(v.as_int()) : dflt;
  if (v.kind == Kind::String) {
    std::string t = str_strip(v.s, nullptr, true, true);
    std::string digits;
    for (char c : t)
      if (c != '_') digits.push_back(c);
    if (!digits.empty()) {
      char* end = nullptr;
      errno = 0;
      long long x = std::strtoll(digits.c_str(), &end, static_cast<int>(base));
      if (*end == '\0' && errno == ERANGE) fail("int(): {} does not fit in a 64-bit integer", py_str_repr(t));
      if (*end == '\0') return Value::integer(x);
      double d = std::strtod(digits.c_str(), &end);
      if (*end == '\0' && base == 10 && std::isfinite(d)) return Value::integer(Value::number(d).as_int());
    }
  }
  return dflt;
}

Value py_float(const Value& v, const Value& dflt) {
  if (v.is_number()) return Value::number(v.as_double());
  if (v.kind == Kind::String) {
    std::string t = str_strip(v.s, nullptr, true, true);
    if (!t.empty()) {
      char* end = nullptr;
      double d = std::strtod(t.c_str(), &end);
      if (*end == '\0') return Value::number(d);
    }
  }
  return dflt;
}

Value do_round(const Value& v, int64_t precision, const std::string& method) {
  double x = v.as_double();
  double scale = std::pow(10.0, static_cast<double>(precision));
  if (method == "ceil") return Value::number(std::ceil(x * scale) / scale);
  if (method == "floor") return Value::number(std::floor(x * scale) / scale);
  if (method != "common") fail("method must be common, ceil or floor");
  if (v.kind != Kind::Float) return v;  // round(int, n) stays an int
  if (!std::isfinite(x)) return Value::number(x);
  if (precision > 1100) return v;  // past every binary fraction digit: unchanged
  char buf[1500];
  std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(std::max<int64_t>(precision, 0)),
                x);  // half-even, exact
  double r = std::strtod(buf, nullptr);
  if (precision < 0) r = std::nearbyint(x * scale) / scale;
  return Value::number(r);
}

std::string do_indent(std::string s, const Value& width, bool first, bool blank) {
  std::string ind = width.kind == Kind::String ? width.s : std::string(size_arg(width, "indent"), ' ');
  s += "\n";
  CallArgs none;
  Value lines_v = bound_method(Value::string(s), "splitlines");
  ValueList lines = *lines_v.fn->fn(none).list;
  std::string rv;
  if (blank) {
    for (size_t k = 0; k < lines.size(); ++k)
      append_checked(rv, (k ? "\n" + ind : "") + lines[k].s, "indent");
  } else {
    rv = lines.empty() ? "" : lines[0].s;
    for (size_t k = 1; k < lines.size(); ++k)
      append_checked(rv, "\n" + (lines[k].s.empty() ? "" : ind) + lines[k].s, "indent");
  }
  check_string_size(ind.size() + rv.size(), "indent");
  return first ? ind + rv : rv;
}

ValueList sorted_by(ValueList items, bool reverse, bool case_sensitive, const Value& attribute) {
  auto key = [&](const Value& v) {
    Value k = attribute.is_none() || attribute.is_undefined() ? v : attr_path(v, attribute);
    return case_sensitive ? k : ignore_case(k);
  };
  std::vector<std::pair<Value, Value>> keyed;
  for (auto& v : items) keyed.emplace_back(key(v), std::move(v));
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& a, const auto& b) {
    return reverse ? compare(b.first, a.first) < 0 : compare(a.first, b.first) < 0;
  });
  ValueList out;
  for (auto& kv : keyed) out.push_back(std::move(kv.second));
  return out;
}

// select / reject / selectattr / rejectattr
Value select_filter(Interp& in, const Value& input, CallArgs& args, bool attr, bool keep) {
  size_t first_arg = attr ? 1 : 0;
  Value attribute = attr ? args.get(0, "attribute") : Value::none();
  bool has_test = args.pos.size() > first_arg;
  std::string test = has_test ? to_str(args.pos[first_arg]) : "";
  CallArgs targs;
  for (size_t k = first_arg + 1; k < args.pos.size(); ++k) targs.pos.push_back(args.pos[k]);
  ValueList out;
  for (const auto& item : iterate(input)) {
    Value v = attr ? attr_path(item, attribute) : item;
    bool ok = has_test ? call_test(in, test, v, targs) : truthy(v);
    if (ok == keep) out.push_back(item);
  }
  return Value::make_list(std::move(out));
}

Value map_filter(Interp& in, const Value& input, CallArgs& args) {
  ValueList out;
  if (args.pos.empty()) {
    Value attribute = args.get(99, "attribute");
    const Value* dflt = args.kwarg("default");
    for (const auto& item : iterate(input)) {
      Value v = attr_path(item, attribute);
      out.push_back(v.is_undefined() && dflt ? *dflt : v);
    }
    return Value::make_list(std::move(out));
  }
  std::string name = to_str(args.pos[0]);
  if (!filter_exists(name)) fail("no filter named '{}'", name);
  CallArgs fargs;
  fargs.pos.assign(args.pos.begin() + 1, args.pos.end());
  fargs.kw = args.kw;
  for (const auto& item : iterate(input)) out.push_back(call_filter(in, name, item, fargs));
  return Value::make_list(std::move(out));
}

}  // namespace

bool filter_exists(std::string_view name) {
  for (const char* f : kFilters)
    if (name == f) return true;
  return false;
}

Value call_filter(Interp& in, const std::string& name, const Value& input, CallArgs& args) {
  const Value& v = input;
  charge_bytes(v.s.size());  // scanned or copied by most filters
  auto str_input = [&]() { return to_str(v); };
  if (name == "tojson") {
    args.check("tojson", 4, {"ensure_ascii", "indent", "separators", "sort_keys"});
    JsonOptions o;
    o.ensure_ascii = truthy(args.get(0, "ensure_ascii", Value::boolean(false)));
    Value indent = args.get(1, "indent", Value::none());
    if (!indent.is_none()) {
      o.has_indent = true;
      o.indent = indent.kind == Kind::String ? indent.s : std::string(size_arg(indent, "tojson"), ' ');
      o.item_sep = ",";
    }
    Value seps = args.get(2, "separators", Value::none());
    if (!seps.is_none()) {
      ValueList sp = iterate(seps);
      if (sp.size() != 2) fail("separators must be an (item_separator, key_separator) pair");
      o.item_sep = to_str(sp[0]);
      o.key_sep = to_str(sp[1]);
    }
    o.sort_keys = truthy(args.get(3, "sort_keys", Value::boolean(false)));
    return Value::string(py_json_dumps(v, o));
  }
  if (name == "length" || name == "count") return Value::integer(py_len(v));
  if (name == "default" || name == "d") {
    bool boolean = truthy(args.get(1, "boolean", Value::boolean(false)));
    if (v.is_undefined() || (boolean && !truthy(v))) return args.get(0, "default_value", Value::string(""));
    return v;
  }
  if (name == "trim") {
    Value chars = args.get(0, "chars", Value::none());
    return Value::string(str_strip(str_input(), chars.kind == Kind::String ? &chars.s : nullptr, true, true));
  }
  if (name == "upper") return Value::string(str_upper(str_input()));
  if (name == "lower") return Value::string(str_lower(str_input()));
  if (name == "capitalize") return Value::string(str_capitalize(str_input()));
  if (name == "title") {  // jinja: split at runs of [-\s({[<], upper first char of each piece, lower the rest
    std::u32string cps = utf8_decode(str_input()), out;
    bool start = true;
    for (char32_t c : cps) {
      bool sep = c == '-' || py_isspace(c) || c == '(' || c == '{' || c == '[' || c == '<';
      out.push_back(sep ? c : start ? py_upper(c) : py_lower(c));
      start = sep;
    }
    return Value::string(utf8_encode(out));
  }
  if (name == "string") return Value::string(str_input());
  if (name == "safe") return v.kind == Kind::String ? v : Value::string(str_input());
  if (name == "escape" || name == "e" || name == "forceescape")
    return Value::string(html_escape(str_input()));
  if (name == "replace") {
    CallArgs m;
    m.pos = {args.get(0, "old"), args.get(1, "new")};
    Value count = args.get(2, "count", Value::none());
    if (!count.is_none()) m.pos.push_back(count);
    return bound_method(Value::string(str_input()), "replace").fn->fn(m);
  }
  if (name == "first" || name == "last") {
    ValueList items = iterate(v);
    if (items.empty()) return Value::undefined(std::string("No ") + name + " item, sequence was empty.");
    return name == "first" ? items.front() : items.back();
  }
  if (name == "join") {
    std::string sep = to_str(args.get(0, "d", Value::string("")));
    Value attribute = args.get(1, "attribute", Value::none());
    std::string out;
    size_t k = 0;
    for (const auto& item : iterate(v)) {
      if (k++) append_checked(out, sep, "join");
      append_checked(out, to_str(attribute.is_none() ? item : attr_path(item, attribute)), "join");
    }
    return Value::string(out);
  }
  if (name == "list") return Value::make_list(iterate(v));
  if (name == "items") {
    if (v.is_undefined()) return Value::make_list();
    if (v.kind != Kind::Dict) fail("Can only get item pairs from a mapping.");
    ValueList out;
    for (const auto& kv : v.dict->items) out.push_back(Value::make_tuple({kv.first, kv.second}));
    return Value::make_list(std::move(out));
  }
  if (name == "dictsort") {
    if (v.kind != Kind::Dict) fail("dictsort filter expects a mapping, got {}", type_name(v));
    bool cs = truthy(args.get(0, "case_sensitive", Value::boolean(false)));
    std::string by = to_str(args.get(1, "by", Value::string("key")));
    bool rev = truthy(args.get(2, "reverse", Value::boolean(false)));
    ValueList pairs;
    for (const auto& kv : v.dict->items) pairs.push_back(Value::make_tuple({kv.first, kv.second}));
    return Value::make_list(sorted_by(pairs, rev, cs, Value::integer(by == "value" ? 1 : 0)));
  }
  if (name == "sort") {
    return Value::make_list(sorted_by(iterate(v), truthy(args.get(0, "reverse", Value::boolean(false))),
                                      truthy(args.get(1, "case_sensitive", Value::boolean(false))),
                                      args.get(2, "attribute", Value::none())));
  }
  if (name == "unique") {
    bool cs = truthy(args.get(0, "case_sensitive", Value::boolean(false)));
    Value attribute = args.get(1, "attribute", Value::none());
    ValueList out, seen;
    for (const auto& item : iterate(v)) {
      Value key = attribute.is_none() ? item : attr_path(item, attribute);
      if (!cs) key = ignore_case(key);
      bool dup = false;
      charge_iterations(seen.size());
      for (const auto& s : seen) dup = dup || equals(s, key);
      if (dup) continue;
      seen.push_back(key);
      out.push_back(item);
    }
    return Value::make_list(std::move(out));
  }
  if (name == "min" || name == "max") {
    ValueList items =
        sorted_by(iterate(v), false, truthy(args.get(0, "case_sensitive", Value::boolean(false))),
                  args.get(1, "attribute", Value::none()));
    if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
    return name == "min" ? items.front() : items.back();
  }
  if (name == "sum") {
    Value attribute = args.get(0, "attribute", Value::none());
    Value total = args.get(1, "start", Value::integer(0));
    for (const auto& item : iterate(v))
      total = binary_op("+", total, attribute.is_none() ? item : attr_path(item, attribute));
    return total;
  }
  if (name == "reverse") {
    if (v.kind == Kind::String) return slice_value(v, Value::none(), Value::none(), Value::integer(-1));
    ValueList items = iterate(v);
    std::reverse(items.begin(), items.end());
    return Value::make_list(std::move(items));
  }
  if (name == "map") return map_filter(in, v, args);
  if (name == "select") return select_filter(in, v, args, false, true);
  if (name == "reject") return select_filter(in, v, args, false, false);
  if (name == "selectattr") return select_filter(in, v, args, true, true);
  if (name == "rejectattr") return select_filter(in, v, args, true, false);
  if (name == "attr") {  // getattr only: dict keys are items, not attributes
    std::string attr = to_str(args.get(0, "name"));
    if (v.kind == Kind::Dict) {
      Value m = bound_method(v, attr);
      return m.is_undefined() && m.s.empty()
                 ? Value::undefined("'dict object' has no attribute '" + attr + "'")
                 : m;
    }
    return get_attr(v, attr);
  }
  if (name == "int")
    return py_int(v, args.get(0, "default", Value::integer(0)),
                  args.get(1, "base", Value::integer(10)).as_int());
  if (name == "float") return py_float(v, args.get(0, "default", Value::number(0.0)));
  if (name == "abs") {
    if (!v.is_number()) fail("bad operand type for abs(): '{}'", type_name(v));
    if (v.kind == Kind::Float) return Value::number(std::fabs(v.f));
    return negate(v, v.i < 0);  // abs(INT64_MIN) is an overflow error
  }
  if (name == "round")
    return do_round(v, args.get(0, "precision", Value::integer(0)).as_int(),
                    to_str(args.get(1, "method", Value::string("common"))));
  if (name == "indent")
    return Value::string(do_indent(str_input(), args.get(0, "width", Value::integer(4)),
                                   truthy(args.get(1, "first", Value::boolean(false))),
                                   truthy(args.get(2, "blank", Value::boolean(false)))));
  if (name == "center") {
    CallArgs m;
    m.pos = {args.get(0, "width", Value::integer(80))};
    return bound_method(Value::string(str_input()), "center").fn->fn(m);
  }
  if (name == "format") {
    Value fmt_args = args.kw.empty() ? Value::make_tuple(args.pos) : Value::none();
    if (!args.kw.empty()) fail("format filter with keyword arguments is not supported");
    return binary_op("%", Value::string(str_input()), fmt_args);
  }
  if (name == "wordcount") {
    int64_t n = 0;
    bool in_word = false;
    for (char32_t c : utf8_decode(str_input())) {
      bool w = py_isalpha(c) || py_isdigit(c) || c == '_' || (c >= 0x80 && !py_isspace(c));
      if (w && !in_word) ++n;
      in_word = w;
    }
    return Value::integer(n);
  }
  fail("no filter named '{}'", name);
}

}  // namespace tqlm::jinja
