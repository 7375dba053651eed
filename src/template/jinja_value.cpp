// Jinja runtime values: construction, Python truthiness / equality / ordering, str() and repr().
#include "template/jinja_value.h"

#include <charconv>
#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "template/jinja_limits.h"
#include "template/jinja_unicode.h"

namespace tqlm::jinja {

namespace {
// Containers waiting to be freed by the outermost ~Value running on this thread (see release_nested); a
// pointer to that destructor's local queue, so nothing here outlives a thread or depends on static order.
thread_local std::vector<std::shared_ptr<void>>* t_pending = nullptr;

template <typename T>
void defer_release(std::shared_ptr<T>& p) noexcept {
  if (!p || p.use_count() != 1) return;  // not the last owner: dropping it frees nothing nested
  try {
    t_pending->push_back(std::move(p));
  } catch (...) {  // no memory for the queue: p stays and is freed recursively by the member's destructor
  }
}
}  // namespace

size_t shallow_bytes(const ValueList& items) {
  size_t n = items.size() * sizeof(Value);
  for (const auto& v : items) n += v.s.size();
  return n;
}

void Value::release_nested() noexcept {
  if (t_pending) {  // inside an outer ~Value: queue what this value alone holds
    defer_release(list);
    defer_release(dict);
    defer_release(fn);
    return;
  }
  std::vector<std::shared_ptr<void>> pending;
  t_pending = &pending;
  list.reset();  // the Values inside queue their own containers instead of freeing them recursively
  dict.reset();
  fn.reset();
  while (!pending.empty()) {
    std::shared_ptr<void> p = std::move(pending.back());
    pending.pop_back();
    p.reset();
  }
  t_pending = nullptr;
}

Value Value::undefined(std::string why) {
  Value v;
  v.s = std::move(why);
  return v;
}
Value Value::none() {
  Value v;
  v.kind = Kind::None;
  return v;
}
Value Value::boolean(bool b) {
  Value v;
  v.kind = Kind::Bool;
  v.b = b;
  v.i = b ? 1 : 0;
  return v;
}
Value Value::integer(int64_t i) {
  Value v;
  v.kind = Kind::Int;
  v.i = i;
  return v;
}
Value Value::number(double f) {
  Value v;
  v.kind = Kind::Float;
  v.f = f;
  return v;
}
Value Value::string(std::string s) {
  Value v;
  check_string_size(s.size(), "a string operation");
  charge_bytes(s.size());
  v.kind = Kind::String;
  v.s = std::move(s);
  return v;
}
Value Value::make_list(ValueList items) {
  Value v;
  check_list_size(items.size(), "a list operation");
  charge_bytes(shallow_bytes(items));
  v.kind = Kind::List;
  v.list = std::make_shared<ValueList>(std::move(items));
  return v;
}
Value Value::make_tuple(ValueList items) {
  Value v = make_list(std::move(items));
  v.kind = Kind::Tuple;
  return v;
}
Value Value::make_dict() {
  Value v;
  v.kind = Kind::Dict;
  v.dict = std::make_shared<Dict>();
  return v;
}
Value Value::make_namespace() {
  Value v = make_dict();
  v.kind = Kind::Namespace;
  return v;
}
Value Value::callable(std::string name, std::function<Value(CallArgs&)> fn) {
  Value v;
  v.kind = Kind::Callable;
  v.fn = std::make_shared<Callable>(Callable{std::move(name), std::move(fn)});
  return v;
}

double Value::as_double() const {
  return kind == Kind::Float ? f : static_cast<double>(i);
}
int64_t Value::as_int() const {
  if (kind != Kind::Float) return i;
  if (!(f > -9.3e18 && f < 9.2e18)) fail("float {} does not fit in a 64-bit integer", py_float_repr(f));
  return static_cast<int64_t>(f);
}

const Value* Dict::find(const Value& key) const {
  for (const auto& kv : items)
    if (equals(kv.first, key)) return &kv.second;
  return nullptr;
}
const Value* Dict::find(std::string_view key) const {
  for (const auto& kv : items)
    if (kv.first.kind == Kind::String && kv.first.s == key) return &kv.second;
  return nullptr;
}
void Dict::set(const Value& key, Value v) {
  for (auto& kv : items)
    if (equals(kv.first, key)) {
      kv.second = std::move(v);
      return;
    }
  check_list_size(items.size() + 1, "a dict operation");
  charge_bytes(2 * sizeof(Value) + key.s.size() + v.s.size());
  items.emplace_back(key, std::move(v));
}

const Value* CallArgs::kwarg(std::string_view name) const {
  for (const auto& kv : kw)
    if (kv.first == name) return &kv.second;
  return nullptr;
}
Value CallArgs::get(size_t idx, std::string_view name, Value dflt) const {
  if (idx < pos.size()) return pos[idx];
  if (const Value* v = kwarg(name)) return *v;
  return dflt;
}
void CallArgs::check(std::string_view fn, size_t max_pos,
                     std::initializer_list<std::string_view> names) const {
  if (pos.size() > max_pos)
    fail("{}() takes at most {} positional arguments ({} given)", fn, max_pos, pos.size());
  for (const auto& kv : kw) {
    bool known = false;
    for (auto n : names) known = known || n == kv.first;
    if (!known) fail("{}() got an unexpected keyword argument '{}'", fn, kv.first);
  }
}

bool truthy(const Value& v) {
  switch (v.kind) {
    case Kind::Undefined:
    case Kind::None:
      return false;
    case Kind::Bool:
      return v.b;
    case Kind::Int:
      return v.i != 0;
    case Kind::Float:
      return v.f != 0.0;
    case Kind::String:
      return !v.s.empty();
    case Kind::List:
    case Kind::Tuple:
      return !v.list->empty();
    case Kind::Dict:
      return !v.dict->items.empty();
    case Kind::Callable:
    case Kind::Namespace:
      return true;
  }
  return false;
}

bool equals(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.kind == Kind::Float || b.kind == Kind::Float) return a.as_double() == b.as_double();
    return a.i == b.i;
  }
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Kind::Undefined:
    case Kind::None:
      return true;
    case Kind::String:
      charge_bytes(std::min(a.s.size(), b.s.size()));
      return a.s == b.s;
    case Kind::List:
    case Kind::Tuple: {
      if (a.list->size() != b.list->size()) return false;
      ValueDepthGuard guard("nesting of compared values");
      charge_iterations(a.list->size());
      for (size_t k = 0; k < a.list->size(); ++k)
        if (!equals((*a.list)[k], (*b.list)[k])) return false;
      return true;
    }
    case Kind::Dict: {
      if (a.dict->items.size() != b.dict->items.size()) return false;
      ValueDepthGuard guard("nesting of compared values");
      charge_iterations(a.dict->items.size());
      for (const auto& kv : a.dict->items) {
        const Value* other = b.dict->find(kv.first);
        if (!other || !equals(kv.second, *other)) return false;
      }
      return true;
    }
    case Kind::Callable:
      return a.fn == b.fn;
    case Kind::Namespace:
      return a.dict == b.dict;
    default:
      return false;
  }
}

int compare(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.kind == Kind::Float || b.kind == Kind::Float) {
      double x = a.as_double(), y = b.as_double();
      return x < y ? -1 : x > y ? 1 : 0;
    }
    return a.i < b.i ? -1 : a.i > b.i ? 1 : 0;
  }
  if (a.kind == Kind::String && b.kind == Kind::String) {
    charge_bytes(std::min(a.s.size(), b.s.size()));
    return a.s < b.s ? -1 : a.s > b.s ? 1 : 0;
  }
  if (a.is_sequence() && a.kind == b.kind) {
    ValueDepthGuard guard("nesting of compared values");
    size_t n = std::min(a.list->size(), b.list->size());
    charge_iterations(n);
    for (size_t k = 0; k < n; ++k) {
      if (equals((*a.list)[k], (*b.list)[k])) continue;
      return compare((*a.list)[k], (*b.list)[k]);
    }
    return a.list->size() < b.list->size() ? -1 : a.list->size() > b.list->size() ? 1 : 0;
  }
  fail("'<' not supported between instances of '{}' and '{}'", type_name(a), type_name(b));
}

std::string type_name(const Value& v) {
  switch (v.kind) {
    case Kind::Undefined:
      return "Undefined";
    case Kind::None:
      return "NoneType";
    case Kind::Bool:
      return "bool";
    case Kind::Int:
      return "int";
    case Kind::Float:
      return "float";
    case Kind::String:
      return "str";
    case Kind::List:
      return "list";
    case Kind::Tuple:
      return "tuple";
    case Kind::Dict:
      return "dict";
    case Kind::Callable:
      return "function";
    case Kind::Namespace:
      return "Namespace";
  }
  return "object";
}

std::string py_float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  if (d == 0) return std::signbit(d) ? "-0.0" : "0.0";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string sci(buf, res.ptr);  // e.g. "-1.2345e+02" (shortest round-trip digits)
  bool neg = sci[0] == '-';
  if (neg) sci.erase(0, 1);
  size_t epos = sci.find('e');
  std::string mant = sci.substr(0, epos);
  int exp10 = std::stoi(sci.substr(epos + 1));
  std::string digits;
  for (char c : mant)
    if (c != '.') digits.push_back(c);
  std::string out;
  if (exp10 < -4 || exp10 >= 16) {
    out = digits.substr(0, 1);
    if (digits.size() > 1) out.append(".").append(digits, 1, std::string::npos);
    char eb[16];
    std::snprintf(eb, sizeof eb, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
    out += eb;
  } else if (exp10 < 0) {
    out = fmt::format("0.{}{}", std::string(static_cast<size_t>(-exp10 - 1), '0'), digits);
  } else {
    size_t intlen = static_cast<size_t>(exp10) + 1;
    if (digits.size() <= intlen) {
      out = digits + std::string(intlen - digits.size(), '0') + ".0";
    } else {
      out = digits.substr(0, intlen) + "." + digits.substr(intlen);
    }
  }
  return neg ? "-" + out : out;
}

static bool py_isprintable(char32_t c) {
  if (c < 0x20 || (c >= 0x7F && c <= 0xA0) || c == 0xAD) return false;
  if ((c >= 0x2000 && c <= 0x200F) || (c >= 0x2028 && c <= 0x202F) || (c >= 0x205F && c <= 0x206F))
    return false;
  if (c == 0x3000 || c == 0xFEFF || c == 0x1680 || (c >= 0xD800 && c <= 0xDFFF)) return false;
  if ((c >= 0xE000 && c <= 0xF8FF) || (c >= 0xFFF0 && c <= 0xFFFB) || c == 0xFFFE || c == 0xFFFF)
    return false;
  return true;
}

std::string py_str_repr(std::string_view s) {
  bool has_sq = s.find('\'') != std::string_view::npos;
  bool has_dq = s.find('"') != std::string_view::npos;
  char q = (has_sq && !has_dq) ? '"' : '\'';
  std::string out(1, q);
  for (char32_t c : utf8_decode(s)) {
    if (c == static_cast<char32_t>(q) || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (py_isprintable(c) && !(c >= 0xDC80 && c <= 0xDCFF)) {
      utf8_append(out, c);
    } else {
      py_escape_append(out, c);
    }
  }
  out.push_back(q);
  return out;
}

static void repr_into(std::string& out, const Value& v);

static void seq_into(std::string& out, const Value& v, char open, char close) {
  ValueDepthGuard guard("nesting of a value converted to a string");
  out.push_back(open);
  bool first = true;
  for (const auto& x : *v.list) {
    if (!first) out += ", ";
    first = false;
    repr_into(out, x);
    check_string_size(out.size(), "str() of a list");
  }
  if (v.kind == Kind::Tuple && v.list->size() == 1) out.push_back(',');
  out.push_back(close);
}

static void dict_into(std::string& out, const Dict& d) {
  ValueDepthGuard guard("nesting of a value converted to a string");
  out.push_back('{');
  bool first = true;
  for (const auto& kv : d.items) {
    if (!first) out += ", ";
    first = false;
    repr_into(out, kv.first);
    out += ": ";
    repr_into(out, kv.second);
    check_string_size(out.size(), "str() of a dict");
  }
  out.push_back('}');
}

// str() of containers and repr() of everything, appended to `out` (one buffer for the whole tree).
static void repr_into(std::string& out, const Value& v) {
  switch (v.kind) {
    case Kind::String:
      out += py_str_repr(v.s);
      break;
    case Kind::Undefined:
      out += "Undefined";
      break;
    case Kind::List:
    case Kind::Tuple:
      seq_into(out, v, v.kind == Kind::List ? '[' : '(', v.kind == Kind::List ? ']' : ')');
      break;
    case Kind::Dict:
      dict_into(out, *v.dict);
      break;
    case Kind::Namespace:
      out += "<Namespace ";
      dict_into(out, *v.dict);
      out += ">";
      break;
    default:
      out += to_str(v);
  }
}

std::string to_str(const Value& v) {
  switch (v.kind) {
    case Kind::Undefined:
      return "";
    case Kind::None:
      return "None";
    case Kind::Bool:
      return v.b ? "True" : "False";
    case Kind::Int:
      return std::to_string(v.i);
    case Kind::Float:
      return py_float_repr(v.f);
    case Kind::String:
      return v.s;
    case Kind::Callable:
      return "<function " + v.fn->name + ">";
    default: {
      std::string out;
      repr_into(out, v);
      charge_bytes(out.size());
      return out;
    }
  }
}

std::string repr(const Value& v) {
  std::string out;
  repr_into(out, v);
  return out;
}

Value from_json(const nlohmann::ordered_json& j) {
  ValueDepthGuard guard("nesting of a JSON value");
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null:
      return Value::none();
    case nlohmann::ordered_json::value_t::boolean:
      return Value::boolean(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
      return Value::integer(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      auto u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) return Value::number(static_cast<double>(u));
      return Value::integer(static_cast<int64_t>(u));
    }
    case nlohmann::ordered_json::value_t::number_float:
      return Value::number(j.get<double>());
    case nlohmann::ordered_json::value_t::string:
      return Value::string(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      ValueList items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(from_json(e));
      return Value::make_list(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      Value d = Value::make_dict();
      d.dict->items.reserve(j.size());
      for (auto it = j.begin(); it != j.end(); ++it)
        d.dict->items.emplace_back(Value::string(it.key()), from_json(it.value()));
      return d;
    }
    default:
      return Value::none();
  }
}

}  // namespace tqlm::jinja
