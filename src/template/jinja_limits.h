// Limits that keep an untrusted chat template (and the context rendered with it) from crashing, hanging or
// exhausting memory. Every limit is a named constant; passing one is a tqlm::Error naming the constant,
// never a signal. docs/limits.md lists them with what happens at each.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace tqlm::jinja {

// Parser: nesting of blocks ({% if %} in {% for %}, elif chains), brackets, parentheses, unary operators,
// and the depth of one expression tree (a chain `a + b + c ...` of N operators is N deep). jinja2 itself
// stops near 100 nested parentheses (Python's recursion limit); real chat templates nest fewer than 20.
inline constexpr int kMaxNesting = 256;
// Interpreter: statements and expressions being evaluated inside each other, macro calls included.
inline constexpr int kMaxRenderDepth = 1024;
// Macro calls inside each other (recursive macros); jinja2 reaches Python's recursion limit near 150.
inline constexpr int kMaxMacroDepth = 200;
// Lists / dicts inside each other, walked by str(), tojson, ==, <, `in` and JSON conversion.
inline constexpr int kMaxValueDepth = 1024;
// One string value (a block's or a macro's output included).
inline constexpr size_t kMaxStringBytes = size_t{64} << 20;
// The rendered prompt.
inline constexpr size_t kMaxOutputBytes = size_t{64} << 20;
// One list, tuple or dict.
inline constexpr size_t kMaxListItems = 1'000'000;
// One render: for-loop iterations plus the elements that filters, tests and operators walk.
inline constexpr int64_t kMaxIterations = 10'000'000;
// One render: bytes of all strings and lists it builds or copies, freed or not (bounds memory and time).
inline constexpr size_t kMaxRenderBytes = size_t{512} << 20;

[[noreturn]] void fail_limit(std::string_view what, std::string_view limit, uint64_t value);

// One more level of `what` while alive; fails naming `limit` when `depth` would pass `max`.
class DepthGuard {
 public:
  DepthGuard(int& depth, int max, std::string_view what, std::string_view limit) : depth_(depth) {
    if (depth_ >= max) fail_limit(what, limit, static_cast<uint64_t>(max));
    ++depth_;
  }
  ~DepthGuard() { --depth_; }
  DepthGuard(const DepthGuard&) = delete;
  DepthGuard& operator=(const DepthGuard&) = delete;

 private:
  int& depth_;
};

// Nesting of values walked on this thread (see kMaxValueDepth).
int& value_depth();
struct ValueDepthGuard : DepthGuard {
  explicit ValueDepthGuard(std::string_view what)
      : DepthGuard(value_depth(), kMaxValueDepth, what, "kMaxValueDepth") {}
};

// The budgets of the render running on this thread (kMaxIterations, kMaxRenderBytes); charges made while
// no render runs (building a context from JSON, unit tests of single functions) are not counted.
class RenderBudget {
 public:
  RenderBudget();
  ~RenderBudget();
  RenderBudget(const RenderBudget&) = delete;
  RenderBudget& operator=(const RenderBudget&) = delete;
  int64_t iterations = 0;
  size_t bytes = 0;

 private:
  RenderBudget* outer_;
};
void charge_iterations(size_t n);
void charge_bytes(size_t n);

// Fail when a string of `n` bytes (kMaxStringBytes) or a list of `n` items (kMaxListItems) would be made.
void check_string_size(size_t n, std::string_view what);
void check_list_size(size_t n, std::string_view what);
// out += piece, failing first if the result would pass kMaxStringBytes.
void append_checked(std::string& out, std::string_view piece, std::string_view what);

}  // namespace tqlm::jinja
