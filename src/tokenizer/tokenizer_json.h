// Small helpers for reading tokenizer.json sections with errors that name the file and the field.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"

namespace tqlm {

// Limits on tokenizer.json (docs/limits.md): errors name the file and field before anything is allocated.
inline constexpr int64_t kMaxTokenizerVocab = int64_t(1) << 22;  // ids in [0, 4,194,304)
inline constexpr size_t kMaxAddedTokenBytes = 1024;              // one added token's content
inline constexpr size_t kMaxAddedTokensBytes = size_t(1) << 20;  // all added tokens together
// A normalizer's output: at most kMaxNormalizedGrowth x its input + kNormalizedSlack bytes.
inline constexpr size_t kMaxNormalizedGrowth = 4;
inline constexpr size_t kNormalizedSlack = 1024;

}  // namespace tqlm

namespace tqlm::tokjson {

using nlohmann::json;

// j[key]; fails naming `where`.key when absent.
inline const json& req(const json& j, const char* key, const std::string& where) {
  if (!j.is_object() || !j.contains(key)) fail("{}: missing field '{}'", where, key);
  return j[key];
}

inline std::string req_string(const json& j, const char* key, const std::string& where) {
  const json& v = req(j, key, where);
  if (!v.is_string()) fail("{}.{}: expected a string", where, key);
  return v.get<std::string>();
}

inline bool opt_bool(const json& j, const char* key, bool dflt) {
  if (!j.is_object() || !j.contains(key) || j[key].is_null()) return dflt;
  if (!j[key].is_boolean())
    fail("field '{}' must be true or false, got {}", key, j[key].dump().substr(0, 40));
  return j[key].get<bool>();
}

inline std::string opt_string(const json& j, const char* key, const std::string& dflt) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_string()) return dflt;
  return j[key].get<std::string>();
}

// The "type" of a component, e.g. "ByteLevel".
inline std::string type_of(const json& j, const std::string& where) {
  if (!j.is_object()) fail("{}: expected an object", where);
  return req_string(j, "type", where);
}

}  // namespace tqlm::tokjson
