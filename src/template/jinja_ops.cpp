// Python operator semantics for Jinja values, plus jinja2's sandboxed attribute / item lookup, slicing,
// membership and iteration.
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "template/jinja_builtins.h"
#include "template/jinja_limits.h"
#include "template/jinja_unicode.h"

namespace tqlm::jinja {

void undefined_error(const Value& v) {
  fail("{}", v.s.empty() ? std::string("undefined value") : v.s);
}

static std::string obj_desc(const Value& v) {
  if (v.kind == Kind::None) return "None";
  return fmt::format("'{} object'", type_name(v));
}

// Template integers are 64-bit: a result Python would make larger is an error, never a wrapped value.
[[noreturn]] static void int_overflow(std::string_view op, int64_t a, int64_t b) {
  fail("integer overflow: {} {} {} does not fit in a 64-bit integer", a, op, b);
}

static int64_t floordiv_i(int64_t a, int64_t b) {
  if (b == -1) {
    if (a == INT64_MIN) int_overflow("//", a, b);
    return -a;
  }
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

static int64_t mod_i(int64_t a, int64_t b) {
  if (b == -1) return 0;  // INT64_MIN % -1 traps in C++; Python gives 0
  int64_t m = a % b;
  if (m != 0 && ((m < 0) != (b < 0))) m += b;
  return m;
}

static int64_t pow_i(int64_t a, int64_t e) {  // e >= 0; by squaring, every step checked
  int64_t result = 1, base = a;
  for (int64_t k = e;;) {
    if ((k & 1) && __builtin_mul_overflow(result, base, &result)) int_overflow("**", a, e);
    k >>= 1;
    if (!k) return result;
    if (__builtin_mul_overflow(base, base, &base)) int_overflow("**", a, e);
  }
}

static Value int_arith(std::string_view op, int64_t a, int64_t b) {
  int64_t r = 0;
  bool overflow = op == "+"   ? __builtin_add_overflow(a, b, &r)
                  : op == "-" ? __builtin_sub_overflow(a, b, &r)
                              : __builtin_mul_overflow(a, b, &r);
  if (overflow) int_overflow(op, a, b);
  return Value::integer(r);
}

static Value repeat(const Value& seq, int64_t n) {
  if (n <= 0)
    return seq.kind == Kind::String  ? Value::string("")
           : seq.kind == Kind::Tuple ? Value::make_tuple({})
                                     : Value::make_list();
  const auto times = static_cast<uint64_t>(n);
  if (seq.kind == Kind::String) {
    if (seq.s.size() > kMaxStringBytes / times) check_string_size(kMaxStringBytes + 1, "repetition");
    std::string out;
    out.reserve(seq.s.size() * times);
    for (uint64_t k = 0; k < times; ++k) out += seq.s;
    return Value::string(std::move(out));
  }
  if (seq.list->size() > kMaxListItems / times) check_list_size(kMaxListItems + 1, "repetition");
  charge_bytes(shallow_bytes(*seq.list) * times);
  ValueList out;
  out.reserve(seq.list->size() * times);
  for (uint64_t k = 0; k < times; ++k) out.insert(out.end(), seq.list->begin(), seq.list->end());
  return seq.kind == Kind::Tuple ? Value::make_tuple(std::move(out)) : Value::make_list(std::move(out));
}

Value binary_op(std::string_view op, const Value& a, const Value& b) {
  if (a.is_undefined()) undefined_error(a);
  if (b.is_undefined()) undefined_error(b);
  auto type_error = [&]() -> Value {
    if (op == "+" && a.kind == Kind::String)
      fail("can only concatenate str (not \"{}\") to str", type_name(b));
    fail("unsupported operand type(s) for {}: '{}' and '{}'", op, type_name(a), type_name(b));
  };
  bool nums = a.is_number() && b.is_number();
  bool ints = a.is_int() && b.is_int();
  if (op == "+") {
    if (ints) return int_arith(op, a.i, b.i);
    if (nums) return Value::number(a.as_double() + b.as_double());
    if (a.kind == Kind::String && b.kind == Kind::String) {
      check_string_size(a.s.size() + b.s.size(), "+");
      return Value::string(a.s + b.s);
    }
    if (a.is_sequence() && a.kind == b.kind) {
      check_list_size(a.list->size() + b.list->size(), "+");
      ValueList out = *a.list;
      out.insert(out.end(), b.list->begin(), b.list->end());
      return a.kind == Kind::Tuple ? Value::make_tuple(std::move(out)) : Value::make_list(std::move(out));
    }
    return type_error();
  }
  if (op == "-") {
    if (ints) return int_arith(op, a.i, b.i);
    if (nums) return Value::number(a.as_double() - b.as_double());
    return type_error();
  }
  if (op == "*") {
    if (ints) return int_arith(op, a.i, b.i);
    if (nums) return Value::number(a.as_double() * b.as_double());
    if ((a.kind == Kind::String || a.is_sequence()) && b.is_int()) return repeat(a, b.i);
    if ((b.kind == Kind::String || b.is_sequence()) && a.is_int()) return repeat(b, a.i);
    return type_error();
  }
  if (!nums) {
    if (op == "%" && a.kind == Kind::String) {  // printf-style formatting: %s / %d / %r / %%
      ValueList args = b.kind == Kind::Tuple ? *b.list : ValueList{b};
      std::string out;
      size_t ai = 0;
      for (size_t k = 0; k < a.s.size(); ++k) {
        if (a.s[k] != '%' || k + 1 >= a.s.size()) {
          out.push_back(a.s[k]);
          continue;
        }
        char c = a.s[++k];
        if (c == '%') {
          out.push_back('%');
          continue;
        }
        if (ai >= args.size()) fail("not enough arguments for format string");
        const Value& x = args[ai++];
        if (c == 's')
          append_checked(out, to_str(x), "%-formatting");
        else if (c == 'r')
          append_checked(out, repr(x), "%-formatting");
        else if (c == 'd' || c == 'i')
          out += std::to_string(x.as_int());
        else
          fail("unsupported format character '{}'", c);
      }
      return Value::string(std::move(out));
    }
    return type_error();
  }
  if (op == "/") {
    if (b.as_double() == 0.0) fail("division by zero");
    return Value::number(a.as_double() / b.as_double());
  }
  if (op == "//") {
    if (b.as_double() == 0.0) fail("integer division or modulo by zero");
    if (ints) return Value::integer(floordiv_i(a.i, b.i));
    return Value::number(std::floor(a.as_double() / b.as_double()));
  }
  if (op == "%") {
    if (b.as_double() == 0.0) fail("integer division or modulo by zero");
    if (ints) return Value::integer(mod_i(a.i, b.i));
    double x = a.as_double(), y = b.as_double();
    double m = std::fmod(x, y);
    if (m != 0 && ((m < 0) != (y < 0))) m += y;
    return Value::number(m);
  }
  if (op == "**") {
    if (ints && b.i >= 0) return Value::integer(pow_i(a.i, b.i));
    return Value::number(std::pow(a.as_double(), b.as_double()));
  }
  fail("unknown operator '{}'", op);
}

bool contains(const Value& container, const Value& item) {
  switch (container.kind) {
    case Kind::String:
      if (item.kind != Kind::String)
        fail("'in <string>' requires string as left operand, not {}", type_name(item));
      charge_bytes(container.s.size());
      return container.s.find(item.s) != std::string::npos;
    case Kind::List:
    case Kind::Tuple:
      charge_iterations(container.list->size());
      for (const auto& x : *container.list)
        if (equals(x, item)) return true;
      return false;
    case Kind::Dict:
      return container.dict->find(item) != nullptr;
    case Kind::Undefined:
      return false;
    default:
      fail("argument of type '{}' is not iterable", type_name(container));
  }
}

bool compare_op(std::string_view op, const Value& a, const Value& b) {
  if (op == "==") return equals(a, b);
  if (op == "!=") return !equals(a, b);
  if (op == "in") return contains(b, a);
  if (op == "notin") return !contains(b, a);
  if (a.is_undefined()) undefined_error(a);
  if (b.is_undefined()) undefined_error(b);
  int c = compare(a, b);
  if (op == "<") return c < 0;
  if (op == "<=") return c <= 0;
  if (op == ">") return c > 0;
  return c >= 0;
}

Value negate(const Value& v, bool neg) {
  if (v.is_undefined()) undefined_error(v);
  if (!v.is_number()) fail("bad operand type for unary {}: '{}'", neg ? "-" : "+", type_name(v));
  if (v.kind == Kind::Float) return Value::number(neg ? -v.f : v.f);
  if (neg && v.i == INT64_MIN) fail("integer overflow: -({}) does not fit in a 64-bit integer", v.i);
  return Value::integer(neg ? -v.i : v.i);
}

ValueList str_chars(const std::string& s) {
  charge_iterations(s.size());
  charge_bytes(s.size() * sizeof(Value));
  ValueList out;
  if (is_ascii(s)) {
    for (char c : s) out.push_back(Value::string(std::string(1, c)));
    return out;
  }
  for (char32_t c : utf8_decode(s)) {
    std::string ch;
    utf8_append(ch, c);
    out.push_back(Value::string(std::move(ch)));
  }
  return out;
}

ValueList iterate(const Value& v) {
  switch (v.kind) {
    case Kind::List:
    case Kind::Tuple: {
      charge_iterations(v.list->size());
      charge_bytes(shallow_bytes(*v.list));
      return *v.list;
    }
    case Kind::Dict: {
      charge_iterations(v.dict->items.size());
      ValueList keys;
      for (const auto& kv : v.dict->items) keys.push_back(kv.first);
      return keys;
    }
    case Kind::String:
      return str_chars(v.s);
    case Kind::Undefined:
      return {};
    default:
      fail("'{}' object is not iterable", type_name(v));
  }
}

int64_t py_len(const Value& v) {
  switch (v.kind) {
    case Kind::String:
      charge_bytes(v.s.size());
      return static_cast<int64_t>(codepoint_count(v.s));
    case Kind::List:
    case Kind::Tuple:
      return static_cast<int64_t>(v.list->size());
    case Kind::Dict:
      return static_cast<int64_t>(v.dict->items.size());
    case Kind::Undefined:
      return 0;
    default:
      fail("object of type '{}' has no len()", type_name(v));
  }
}

Value get_attr(const Value& obj, const std::string& name) {
  if (obj.is_undefined()) undefined_error(obj);
  if (!name.empty() && name[0] == '_')
    return Value::undefined("access to attribute '" + name + "' of '" + type_name(obj) +
                            "' object is unsafe");
  if (obj.kind == Kind::Namespace) {
    if (const Value* v = obj.dict->find(std::string_view(name))) return *v;
    return Value::undefined("'Namespace object' has no attribute '" + name + "'");
  }
  Value m = bound_method(obj, name);
  if (!m.is_undefined() || !m.s.empty()) return m;
  if (obj.kind == Kind::Dict) {
    if (const Value* v = obj.dict->find(std::string_view(name))) return *v;
  }
  return Value::undefined(obj_desc(obj) + " has no attribute '" + name + "'");
}

Value get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) undefined_error(obj);
  if (obj.kind == Kind::Dict) {
    if (const Value* v = obj.dict->find(key)) return *v;
  } else if ((obj.is_sequence() || obj.kind == Kind::String) && key.is_int()) {
    int64_t n = py_len(obj);  // charges a string's bytes: indexing decodes it
    int64_t k = key.i < 0 ? key.i + n : key.i;
    if (k >= 0 && k < n) {
      if (obj.kind != Kind::String) return (*obj.list)[static_cast<size_t>(k)];
      if (is_ascii(obj.s)) return Value::string(std::string(1, obj.s[static_cast<size_t>(k)]));
      std::string ch;
      utf8_append(ch, utf8_decode(obj.s)[static_cast<size_t>(k)]);
      return Value::string(std::move(ch));
    }
    return Value::undefined(obj_desc(obj) + " has no element " + std::to_string(key.i));
  }
  if (key.kind == Kind::String) return get_attr(obj, key.s);
  return Value::undefined(obj_desc(obj) + " has no element " + repr(key));
}

static int64_t slice_index(const Value& v, const char* what) {
  if (v.is_int()) return v.i;
  fail("slice {} must be an integer or None, not {}", what, type_name(v));
}

Value slice_value(const Value& obj, const Value& start, const Value& stop, const Value& step) {
  if (obj.is_undefined()) undefined_error(obj);
  charge_bytes(obj.s.size());
  if (!obj.is_sequence() && obj.kind != Kind::String)
    return Value::undefined(obj_desc(obj) + " is not subscriptable");
  auto given = [](const Value& v) { return !v.is_none() && !v.is_undefined(); };
  int64_t n = py_len(obj);
  int64_t st = given(step) ? slice_index(step, "step") : 1;
  if (st == 0) fail("slice step cannot be zero");
  int64_t lo, hi;
  auto clamp = [&](const Value& v, int64_t dflt, bool is_start) {
    if (!given(v)) return dflt;
    int64_t x = slice_index(v, is_start ? "start" : "stop");
    if (x < 0) x += n;
    if (st > 0) return std::clamp<int64_t>(x, 0, n);
    return std::clamp<int64_t>(x, -1, n - 1);
  };
  lo = clamp(start, st > 0 ? 0 : n - 1, true);
  hi = clamp(stop, st > 0 ? n : -1, false);
  std::vector<size_t> idx;
  for (int64_t k = lo; st > 0 ? k < hi : k > hi;) {
    idx.push_back(static_cast<size_t>(k));
    if (__builtin_add_overflow(k, st, &k)) break;  // a step past the ends of int64 is past the sequence too
  }
  if (obj.kind == Kind::String) {
    std::u32string cps = utf8_decode(obj.s), out;
    for (size_t k : idx) out.push_back(cps[k]);
    return Value::string(utf8_encode(out));
  }
  ValueList out;
  for (size_t k : idx) out.push_back((*obj.list)[k]);
  return obj.kind == Kind::Tuple ? Value::make_tuple(std::move(out)) : Value::make_list(std::move(out));
}

}  // namespace tqlm::jinja
