#include "runtime/prompt_encoder.h"

#include "core/error.h"

namespace tqlm {

std::vector<int32_t> PromptEncoder::encode_chat(const nlohmann::ordered_json& messages,
                                                const nlohmann::ordered_json& tools,
                                                bool add_generation_prompt,
                                                const nlohmann::ordered_json& kwargs,
                                                std::string* rendered) const {
  if (!tpl_) fail("no chat template in use (--raw); cannot format a conversation");
  std::string text = tpl_->render(messages, tools, add_generation_prompt, kwargs);
  if (rendered) *rendered = text;
  const std::string& bos = tpl_->bos_token();
  const bool has_bos = !bos.empty() && text.rfind(bos, 0) == 0;
  return tok_.encode(text, /*add_special_tokens=*/!has_bos);
}

std::vector<int32_t> PromptEncoder::encode_raw(const std::string& text) const {
  return tok_.encode(text, true);
}

}  // namespace tqlm
