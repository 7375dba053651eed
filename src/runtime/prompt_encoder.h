// A conversation or a plain text turned into prompt token ids: the chat template and the tokenizer, without
// the model's weights. ChatSession and the server's request parser use it; so does the request fuzz target.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "template/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace tqlm {

class PromptEncoder {
 public:
  // `tpl` null: no chat template (--raw); encode_chat is then an error.
  PromptEncoder(const Tokenizer& tok, const ChatTemplate* tpl) : tok_(tok), tpl_(tpl) {}

  // Renders messages with the chat template and tokenizes the result; a BOS is added only when the
  // tokenizer adds one and the rendered text does not already start with it.
  std::vector<int32_t> encode_chat(const nlohmann::ordered_json& messages,
                                   const nlohmann::ordered_json& tools, bool add_generation_prompt,
                                   const nlohmann::ordered_json& kwargs,
                                   std::string* rendered = nullptr) const;
  // Plain text prompt, tokenized with the tokenizer's special tokens (BOS) as HF would add them.
  std::vector<int32_t> encode_raw(const std::string& text) const;
  const Tokenizer& tokenizer() const { return tok_; }

 private:
  const Tokenizer& tok_;
  const ChatTemplate* tpl_;
};

}  // namespace tqlm
