// Jinja runtime values with Python semantics: none, bool, int, float, str, list, tuple, dict (insertion
// ordered), callable (builtin, bound method or macro), namespace, and jinja2's default Undefined.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tqlm::jinja {

struct Value;
struct Dict;
struct Callable;
using ValueList = std::vector<Value>;

enum class Kind : uint8_t {
  Undefined,
  None,
  Bool,
  Int,
  Float,
  String,
  List,
  Tuple,
  Dict,
  Callable,
  Namespace
};

struct Value {
  Kind kind = Kind::Undefined;
  bool b = false;
  int64_t i = 0;
  double f = 0.0;
  std::string s;                    // String payload; for Undefined: the reason ("'x' is undefined")
  std::shared_ptr<ValueList> list;  // List / Tuple
  std::shared_ptr<Dict> dict;       // Dict / Namespace
  std::shared_ptr<Callable> fn;     // Callable

  Value() = default;
  Value(const Value&) = default;
  Value(Value&&) noexcept = default;
  Value& operator=(const Value&) = default;
  Value& operator=(Value&&) noexcept = default;
  // Releases nested lists / dicts / closures one at a time rather than recursively, so that a value nested
  // millions deep (built in a loop) cannot overflow the stack when it is freed.
  ~Value() {
    if (list || dict || fn) release_nested();
  }
  static Value undefined(std::string why = {});
  static Value none();
  static Value boolean(bool v);
  static Value integer(int64_t v);
  static Value number(double v);
  static Value string(std::string v);
  static Value make_list(ValueList items = {});
  static Value make_tuple(ValueList items);
  static Value make_dict();
  static Value make_namespace();
  static Value callable(std::string name, std::function<Value(struct CallArgs&)> fn);

  bool is_undefined() const { return kind == Kind::Undefined; }
  bool is_none() const { return kind == Kind::None; }
  bool is_string() const { return kind == Kind::String; }
  bool is_int() const { return kind == Kind::Int || kind == Kind::Bool; }  // Python: bool is an int
  bool is_number() const { return kind == Kind::Int || kind == Kind::Bool || kind == Kind::Float; }
  bool is_sequence() const { return kind == Kind::List || kind == Kind::Tuple; }
  bool is_dict() const { return kind == Kind::Dict; }
  double as_double() const;
  int64_t as_int() const;  // for Int/Bool; a Float must be finite and in range

 private:
  void release_nested() noexcept;
};

struct Dict {
  std::vector<std::pair<Value, Value>> items;
  bool tracked = false;  // a namespace an interpreter will empty after its render (cycles)
  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
  void set(const Value& key, Value v);
  void set(std::string_view key, Value v) { set(Value::string(std::string(key)), std::move(v)); }
};

struct CallArgs {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
  // Binds Python-style parameters: returns positional-or-keyword argument `idx` named `name`, or `dflt`.
  Value get(size_t idx, std::string_view name, Value dflt = Value::undefined()) const;
  const Value* kwarg(std::string_view name) const;
  // Fails naming `fn` if more than `max_pos` positionals or an unknown keyword is given.
  void check(std::string_view fn, size_t max_pos, std::initializer_list<std::string_view> names) const;
};

struct Callable {
  std::string name;
  std::function<Value(CallArgs&)> fn;
  const void* owner = nullptr;  // a macro: the scope it closes over (which may hold it: a reference cycle)
};

// Bytes a copy of `items` costs: each Value plus its string (nested lists are shared, not copied).
size_t shallow_bytes(const ValueList& items);

bool truthy(const Value& v);
bool equals(const Value& a, const Value& b);
// Python `<`; fails on unorderable types. Returns -1/0/1.
int compare(const Value& a, const Value& b);
std::string to_str(const Value& v);     // Python str()
std::string repr(const Value& v);       // Python repr()
std::string type_name(const Value& v);  // Python type name for messages ("dict", "str", ...)
std::string py_float_repr(double d);    // Python repr(float)
std::string py_str_repr(std::string_view s);

Value from_json(const nlohmann::ordered_json& j);

// Python json.dumps(v, ensure_ascii, indent, separators, sort_keys) as transformers' `tojson` filter uses it.
struct JsonOptions {
  bool ensure_ascii = false;
  bool has_indent = false;
  std::string indent;  // indent string when has_indent
  std::string item_sep = ", ";
  std::string key_sep = ": ";
  bool sort_keys = false;
};
std::string py_json_dumps(const Value& v, const JsonOptions& opt);

}  // namespace tqlm::jinja
