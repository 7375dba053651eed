// tokenizer.json "normalizer": NFC, NFD, Prepend, Replace (string or regex), Strip and Sequence of them.
// Any other type fails at load time, naming it.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "tokenizer/tokenizer_json.h"

namespace tqlm {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // The output may be at most kMaxNormalizedGrowth x the input + kNormalizedSlack bytes (tokenizer_json.h),
  // checked while it grows: rules that grow strings without bound are an error, not gigabytes.
  std::string normalize(std::string s) const {
    const size_t limit = kMaxNormalizedGrowth * s.size() + kNormalizedSlack;
    return apply(std::move(s), limit);
  }
  virtual std::string apply(std::string s, size_t limit) const = 0;
};

// Returns nullptr for a JSON null (no normalizer). `where` names the file/field in errors.
std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& j, const std::string& where);

}  // namespace tqlm
