// tokenizer.json "normalizer": NFC, NFD, Prepend, Replace (string or regex), Strip and Sequence of them.
// Any other type fails at load time, naming it.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace tqlm {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual std::string normalize(std::string s) const = 0;
};

// Returns nullptr for a JSON null (no normalizer). `where` names the file/field in errors.
std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& j, const std::string& where);

}  // namespace tqlm
