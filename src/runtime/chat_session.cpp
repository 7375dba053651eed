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
  if (!tpl_) fail("no chat template in use (--raw); cannot format a conversation");
  std::string text = tpl_->render(messages, tools, add_generation_prompt, kwargs);
  if (rendered) *rendered = text;
  const std::string& bos = tpl_->bos_token();
  const bool has_bos = !bos.empty() && text.rfind(bos, 0) == 0;
  return tok_->encode(text, /*add_special_tokens=*/!has_bos);
}

std::vector<int32_t> ChatSession::encode_raw(const std::string& text) const {
  return tok_->encode(text, true);
}

}  // namespace tqlm
