#include <cstdio>

#include "cli/commands.h"
#include "core/error.h"
#include "core/json.h"
#include "template/chat_template.h"

namespace tqlm::cli {

namespace {

nlohmann::ordered_json read_json_file(const std::string& path, const char* what) {
  std::string text = read_text_file(path, std::string(what) + " file");
  return parse_json_limited(text, fmt::format("{} file {}", what, path));
}

}  // namespace

void add_chat_template(CLI::App& app) {
  struct Opts {
    std::string model, messages, tools, kwargs, chat_template;
    bool add_generation_prompt = false;
  };
  auto opts = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("chat-template",
                                 "Render a conversation with the model's chat template and print the prompt "
                                 "exactly (no trailing newline added)");
  cmd->add_option("model", opts->model, "Model directory (tokenizer_config.json / chat_template.jinja)")
      ->required();
  cmd->add_option("--messages", opts->messages, "JSON file: array of messages")->required();
  cmd->add_option("--tools", opts->tools, "JSON file: array of tool definitions");
  cmd->add_flag("--add-generation-prompt", opts->add_generation_prompt, "Append the assistant turn opener");
  cmd->add_option("--kwargs", opts->kwargs,
                  "JSON object of extra template variables, e.g. '{\"enable_thinking\": false}'");
  cmd->add_option("--chat-template", opts->chat_template,
                  "Jinja template file overriding the model's template");
  cmd->callback([opts] {
    ChatTemplate ct = ChatTemplate::load(opts->model, opts->chat_template);
    auto messages = read_json_file(opts->messages, "messages");
    nlohmann::ordered_json tools =
        opts->tools.empty() ? nlohmann::ordered_json() : read_json_file(opts->tools, "tools");
    nlohmann::ordered_json kwargs = nlohmann::ordered_json::object();
    if (!opts->kwargs.empty()) kwargs = parse_json_limited(opts->kwargs, "--kwargs");
    std::string prompt = ct.render(messages, tools, opts->add_generation_prompt, kwargs);
    std::fwrite(prompt.data(), 1, prompt.size(), stdout);
  });
}

}  // namespace tqlm::cli
