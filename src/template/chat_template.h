// Chat templates: load a model's Jinja chat template and render a conversation into a prompt string exactly
// as transformers' apply_chat_template(tokenize=False) does.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <string>

namespace tqlm {

namespace jinja {
class Template;
}

class ChatTemplate {
 public:
  // Template source precedence: `override_file` (--chat-template FILE), MODEL_DIR/chat_template.jinja,
  // tokenizer_config.json "chat_template" (a string, or a list of {name, template} using "default"),
  // chat_template.json. bos/eos tokens come from tokenizer_config.json when present. Fails with a message
  // suggesting --chat-template FILE when the model has no template.
  static ChatTemplate load(const std::string& model_dir, const std::string& override_file = "");
  // `origin` names the template in error messages.
  static ChatTemplate from_string(const std::string& source, const std::string& origin);

  ChatTemplate(ChatTemplate&&) noexcept;
  ChatTemplate& operator=(ChatTemplate&&) noexcept;
  ~ChatTemplate();

  // messages: array of message objects; tools: array or null (rendered as `tools=None`); extra_kwargs: object
  // of additional template variables (e.g. {"enable_thinking": false}), which may override
  // bos_token/eos_token.
  std::string render(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools,
                     bool add_generation_prompt, const nlohmann::ordered_json& extra_kwargs,
                     const std::string& bos_token, const std::string& eos_token) const;
  // Same, with the bos/eos tokens read from the model's tokenizer_config.json.
  std::string render(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools,
                     bool add_generation_prompt, const nlohmann::ordered_json& extra_kwargs = {}) const;

  const std::string& source() const { return source_; }
  const std::string& origin() const { return origin_; }
  const std::string& bos_token() const { return bos_; }
  const std::string& eos_token() const { return eos_; }

 private:
  ChatTemplate() = default;
  std::string source_, origin_, bos_, eos_;
  std::unique_ptr<jinja::Template> tpl_;
};

}  // namespace tqlm
