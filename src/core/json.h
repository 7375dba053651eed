// Untrusted JSON (model repositories, --messages files, request bodies): parsed with an explicit nesting
// limit, so that a document nested 100,000 deep is a clear error instead of a stack overflow in the code
// that walks it, and every error names the file or field.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "core/error.h"

namespace tqlm {

// Arrays and objects inside each other; real configs, tokenizers and conversations nest fewer than 10.
inline constexpr int kMaxJsonDepth = 512;
// A text file read whole (JSON, a chat template; tokenizer.json of a large vocabulary is ~20 MB).
inline constexpr size_t kMaxTextFileBytes = size_t{1} << 30;

// Fails with "WHAT: JSON nested deeper than the limit kMaxJsonDepth = N (at byte B)" when arrays / objects
// in `text` nest deeper than `max_depth`. Says nothing about the rest of the syntax.
void check_json_depth(std::string_view text, std::string_view what, int max_depth = kMaxJsonDepth);

// The text of a regular file (a FIFO, device or directory is refused by name), at most kMaxTextFileBytes.
std::string read_text_file(const std::string& path, std::string_view what);

// Parses `text` after check_json_depth; a syntax error is "WHAT: invalid JSON: ...". Json is
// nlohmann::ordered_json (keys in file order, as Python's json keeps them) or nlohmann::json.
template <typename Json = nlohmann::ordered_json>
Json parse_json_limited(std::string_view text, std::string_view what, int max_depth = kMaxJsonDepth) {
  check_json_depth(text, what, max_depth);
  try {
    return Json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: invalid JSON: {}", what, e.what());
  }
}

// read_text_file + parse_json_limited, errors naming `path`.
template <typename Json = nlohmann::ordered_json>
Json read_json_file_limited(const std::string& path, int max_depth = kMaxJsonDepth) {
  return parse_json_limited<Json>(read_text_file(path, "JSON file"), path, max_depth);
}

// A JSON value for an error message, cut to 60 characters ("[1, 2, ...").
template <typename Json>
std::string json_brief(const Json& v) {
  std::string s = v.dump();
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

// An integer field's value, checked against [lo, hi] without wrapping: a float, string, or an integer
// beyond 64 bits is "WHERE: expected an integer in [lo, hi], got V", never truncated or defaulted.
template <typename Json>
int64_t json_int(const Json& v, std::string_view where, int64_t lo = std::numeric_limits<int64_t>::min(),
                 int64_t hi = std::numeric_limits<int64_t>::max()) {
  const bool too_big =
      v.is_number_unsigned() && v.template get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max());
  if (!v.is_number_integer() || too_big)
    fail("{}: expected an integer in [{}, {}], got {}", where, lo, hi, json_brief(v));
  const int64_t x = v.template get<int64_t>();
  if (x < lo || x > hi) fail("{}: {} is out of range [{}, {}]", where, x, lo, hi);
  return x;
}

}  // namespace tqlm
