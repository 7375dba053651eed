// Internal interface between the Jinja interpreter and its builtins: Python operators, attribute/item
// access (sandbox rules), iteration, filters, tests and the str/dict/list methods templates call.
#pragma once

#include <string>
#include <string_view>

#include "template/jinja_value.h"

namespace tqlm::jinja {

class Interp;

[[noreturn]] void undefined_error(const Value& v);

// Python operators: + - * / // % ** and comparisons / membership.
Value binary_op(std::string_view op, const Value& a, const Value& b);
bool compare_op(std::string_view op, const Value& a, const Value& b);
bool contains(const Value& container, const Value& item);
Value negate(const Value& v, bool neg);

// jinja2 sandbox getattr (methods first, then items) and getitem (items first, then attributes).
Value get_attr(const Value& obj, const std::string& name);
Value get_item(const Value& obj, const Value& key);
Value slice_value(const Value& obj, const Value& start, const Value& stop, const Value& step);

ValueList iterate(const Value& v);  // Python iter(): dict -> keys, str -> characters, Undefined -> empty
int64_t py_len(const Value& v);
ValueList str_chars(const std::string& s);

// Bound Python method `obj.name` (str / dict / list); kind Undefined when there is none.
Value bound_method(const Value& obj, const std::string& name);

Value call_filter(Interp& in, const std::string& name, const Value& input, CallArgs& args);
bool call_test(Interp& in, const std::string& name, const Value& v, CallArgs& args);

// A width / count argument as a size: negative is 0 (as Python's str * n), above kMaxStringBytes an error.
size_t size_arg(const Value& v, std::string_view what);

// Python str.split / str.rsplit (sep == nullptr: runs of whitespace).
ValueList str_split(const std::string& s, const std::string* sep, int64_t maxsplit, bool from_right);

}  // namespace tqlm::jinja
