// tokenizer.json "post_processor" for single sequences with add_special_tokens: the ids placed before
// and after the encoded text (TemplateProcessing, BertProcessing, RobertaProcessing, ByteLevel, Sequence).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace tqlm {

struct PostProcessor {
  std::vector<int32_t> prefix, suffix;
};

// A JSON null gives an empty PostProcessor.
PostProcessor make_post_processor(const nlohmann::json& j, const std::string& where);

}  // namespace tqlm
