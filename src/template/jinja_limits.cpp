// Template limits: depth guards and the per-render budgets (thread-local, one render at a time per thread).
#include "template/jinja_limits.h"

#include <string>

#include "core/error.h"

namespace tqlm::jinja {

namespace {
thread_local RenderBudget* g_budget = nullptr;
thread_local int g_value_depth = 0;
}  // namespace

void fail_limit(std::string_view what, std::string_view limit, uint64_t value) {
  fail("{} exceeds the template limit {} = {}", what, limit, value);
}

int& value_depth() {
  return g_value_depth;
}

RenderBudget::RenderBudget() : outer_(g_budget) {
  g_budget = this;
}
RenderBudget::~RenderBudget() {
  g_budget = outer_;
}

void charge_iterations(size_t n) {
  if (!g_budget) return;
  g_budget->iterations += static_cast<int64_t>(n);
  if (g_budget->iterations > kMaxIterations)
    fail_limit("loop iterations and elements walked by this render", "kMaxIterations",
               static_cast<uint64_t>(kMaxIterations));
}

void charge_bytes(size_t n) {
  if (!g_budget) return;
  g_budget->bytes += n;
  if (g_budget->bytes > kMaxRenderBytes)
    fail_limit("bytes of strings and lists built by this render", "kMaxRenderBytes", kMaxRenderBytes);
}

void check_string_size(size_t n, std::string_view what) {
  if (n > kMaxStringBytes)
    fail_limit(std::string("string built by ") + std::string(what), "kMaxStringBytes", kMaxStringBytes);
}

void check_list_size(size_t n, std::string_view what) {
  if (n > kMaxListItems)
    fail_limit(std::string("list built by ") + std::string(what), "kMaxListItems", kMaxListItems);
}

void append_checked(std::string& out, std::string_view piece, std::string_view what) {
  check_string_size(out.size() + piece.size(), what);
  out.append(piece);
}

}  // namespace tqlm::jinja
