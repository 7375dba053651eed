// Small helpers for reading tokenizer.json sections with errors that name the file and the field.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"

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
