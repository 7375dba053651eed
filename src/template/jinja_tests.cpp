// Jinja tests (`x is defined`, `x is string`, `n is divisibleby 3`, ...) with jinja2/tests.py semantics.
#include "core/error.h"
#include "template/jinja_builtins.h"
#include "template/jinja_parser.h"
#include "template/jinja_unicode.h"

namespace tqlm::jinja {

static const char* kTests[] = {
    "defined", "undefined", "none",    "boolean",  "false",       "true",     "integer", "float",
    "number",  "string",    "mapping", "iterable", "sequence",    "callable", "sameas",  "escaped",
    "lower",   "upper",     "odd",     "even",     "divisibleby", "equalto",  "eq",      "==",
    "ne",      "!=",        "lt",      "<",        "le",          "<=",       "gt",      ">",
    "ge",      ">=",        "in",      "filter",   "test"};

bool test_exists(std::string_view name) {
  for (const char* t : kTests)
    if (name == t) return true;
  return false;
}

bool call_test(Interp&, const std::string& name, const Value& v, CallArgs& args) {
  auto arg = [&]() { return args.get(0, "other"); };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.kind == Kind::Bool;
  if (name == "false") return v.kind == Kind::Bool && !v.b;
  if (name == "true") return v.kind == Kind::Bool && v.b;
  if (name == "integer") return v.kind == Kind::Int;
  if (name == "float") return v.kind == Kind::Float;
  if (name == "number") return v.is_number();
  if (name == "string") return v.kind == Kind::String;
  if (name == "mapping") return v.kind == Kind::Dict;
  if (name == "iterable")
    return v.kind == Kind::String || v.is_sequence() || v.kind == Kind::Dict || v.is_undefined();
  if (name == "sequence")
    return v.kind == Kind::String || v.is_sequence() || v.kind == Kind::Dict || v.is_undefined();
  if (name == "callable") return v.kind == Kind::Callable;
  if (name == "sameas") {
    Value o = arg();
    if (v.kind != o.kind) return false;
    if (v.is_sequence()) return v.list == o.list;
    if (v.kind == Kind::Dict || v.kind == Kind::Namespace) return v.dict == o.dict;
    if (v.kind == Kind::Callable) return v.fn == o.fn;
    return v.kind == Kind::None || v.kind == Kind::Undefined || (v.kind == Kind::Bool && v.b == o.b);
  }
  if (name == "escaped") return false;
  if (name == "lower" || name == "upper") {
    std::string s = to_str(v);
    bool cased = false, ok = true;
    for (char32_t c : utf8_decode(s)) {
      if (!py_iscased(c)) continue;
      cased = true;
      ok = ok && (name == "lower" ? py_islower(c) : py_isupper(c));
    }
    return cased && ok;
  }
  if (name == "odd" || name == "even" || name == "divisibleby") {
    Value d = name == "divisibleby" ? args.get(0, "num") : Value::integer(2);
    Value m = binary_op("%", v, d);
    bool zero = !truthy(m);
    return name == "odd" ? !zero : zero;
  }
  if (name == "equalto" || name == "eq" || name == "==") return compare_op("==", v, arg());
  if (name == "ne" || name == "!=") return compare_op("!=", v, arg());
  if (name == "lt" || name == "<") return compare_op("<", v, arg());
  if (name == "le" || name == "<=") return compare_op("<=", v, arg());
  if (name == "gt" || name == ">") return compare_op(">", v, arg());
  if (name == "ge" || name == ">=") return compare_op(">=", v, arg());
  if (name == "in") return contains(args.get(0, "seq"), v);
  if (name == "filter") return v.kind == Kind::String && filter_exists(v.s);
  if (name == "test") return v.kind == Kind::String && test_exists(v.s);
  fail("no test named '{}'", name);
}

}  // namespace tqlm::jinja
