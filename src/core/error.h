// Errors: one exception type carrying a message that names the file, tensor or field at fault.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace tqlm {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace tqlm
