// Everything a chat needs in one place: model, tokenizer, chat template, generator (with its KV cache).
// Used by `tqlm generate`, `tqlm chat` and the server.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/model.h"
#include "runtime/generator.h"
#include "runtime/prompt_encoder.h"
#include "template/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace tqlm {

struct ChatSessionOptions {
  std::string model;
  int threads = 0;
  KVSpec kv;
  std::string chat_template_file;  // --chat-template FILE
  bool raw = false;                // no chat template: prompts are plain text
  uint64_t kv_mem = 0;             // KV pool budget in bytes (0: default_kv_budget())
};

class ChatSession {
 public:
  explicit ChatSession(const ChatSessionOptions& opt);

  Model& model() { return *model_; }
  const Tokenizer& tokenizer() const { return *tok_; }
  Generator& generator() { return *gen_; }
  bool has_template() const { return tpl_ != nullptr; }
  // The template and tokenizer of this session (valid while it lives).
  PromptEncoder encoder() const { return PromptEncoder(*tok_, tpl_.get()); }

  // Renders messages with the chat template (errors if there is none) and tokenizes the result; a BOS
  // is added only when the tokenizer adds one and the rendered text does not already start with it.
  std::vector<int32_t> encode_chat(const nlohmann::ordered_json& messages,
                                   const nlohmann::ordered_json& tools, bool add_generation_prompt,
                                   const nlohmann::ordered_json& kwargs,
                                   std::string* rendered = nullptr) const;
  // Plain text prompt, tokenized with the tokenizer's special tokens (BOS) as HF would add them.
  std::vector<int32_t> encode_raw(const std::string& text) const;

 private:
  std::unique_ptr<Model> model_;
  std::unique_ptr<Tokenizer> tok_;
  std::unique_ptr<ChatTemplate> tpl_;
  std::unique_ptr<Generator> gen_;
};

}  // namespace tqlm
