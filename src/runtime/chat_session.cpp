#include "runtime/chat_session.h"

#include "core/error.h"

namespace tqlm {

ChatSession::ChatSession(const ChatSessionOptions& opt) {
  model_ = std::make_unique<Model>(opt.model, opt.threads);
  tok_ = std::make_unique<Tokenizer>(Tokenizer::from_file(opt.model));
  if (!opt.raw) tpl_ = std::make_unique<ChatTemplate>(ChatTemplate::load(opt.model, opt.chat_template_file));
  gen_ = std::make_unique<Generator>(*model_, *tok_, opt.kv, opt.kv_mem ? opt.kv_mem : default_kv_budget());
}

std::vector<int32_t> ChatSession::encode_chat(const nlohmann::ordered_json& messages,
                                              const nlohmann::ordered_json& tools, bool add_generation_prompt,
                                              const nlohmann::ordered_json& kwargs,
                                              std::string* rendered) const {
  return encoder().encode_chat(messages, tools, add_generation_prompt, kwargs, rendered);
}

std::vector<int32_t> ChatSession::encode_raw(const std::string& text) const {
  return encoder().encode_raw(text);
}

}  // namespace tqlm
