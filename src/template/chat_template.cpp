// Chat template loading (model dir / tokenizer_config.json / override file) and rendering with the context
// transformers passes: messages, tools, documents, add_generation_prompt, special tokens and extra kwargs.
#include "template/chat_template.h"

#include <filesystem>

#include "core/error.h"
#include "core/json.h"
#include "template/jinja.h"

namespace tqlm {

namespace fs = std::filesystem;

namespace {

std::string read_text(const fs::path& p) {
  return read_text_file(p.string(), "chat template file");
}

nlohmann::ordered_json read_json(const fs::path& p) {
  return read_json_file_limited(p.string());
}

// A special token is a string or an AddedToken object {"content": ...}.
std::string token_text(const nlohmann::ordered_json& cfg, const char* key) {
  if (!cfg.contains(key)) return "";
  const auto& t = cfg[key];
  if (t.is_string()) return t.get<std::string>();
  if (t.is_object() && t.contains("content") && t["content"].is_string())
    return t["content"].get<std::string>();
  return "";
}

// "chat_template": string, or [{"name": ..., "template": ...}] (use "default").
bool template_from_field(const nlohmann::ordered_json& v, const std::string& where, std::string& out) {
  if (v.is_string()) {
    out = v.get<std::string>();
    return true;
  }
  if (!v.is_array()) return false;
  std::string names;
  for (const auto& e : v) {
    if (!e.is_object() || !e.contains("name") || !e.contains("template")) continue;
    std::string name = e["name"].is_string() ? e["name"].get<std::string>() : "";
    names += (names.empty() ? "" : ", ") + name;
    if (name == "default" && e["template"].is_string()) {
      out = e["template"].get<std::string>();
      return true;
    }
  }
  fail(
      "{}: chat_template is a list of named templates ({}) without a \"default\" entry; pass --chat-template "
      "FILE",
      where, names);
}

}  // namespace

ChatTemplate::ChatTemplate(ChatTemplate&&) noexcept = default;
ChatTemplate& ChatTemplate::operator=(ChatTemplate&&) noexcept = default;
ChatTemplate::~ChatTemplate() = default;

ChatTemplate ChatTemplate::from_string(const std::string& source, const std::string& origin) {
  ChatTemplate ct;
  ct.source_ = source;
  ct.origin_ = origin;
  try {
    ct.tpl_ = std::make_unique<jinja::Template>(source);
  } catch (const Error& e) {
    fail("{}: {}", origin, e.what());
  }
  return ct;
}

ChatTemplate ChatTemplate::load(const std::string& model_dir, const std::string& override_file) {
  fs::path dir(model_dir);
  nlohmann::ordered_json cfg = nlohmann::ordered_json::object();
  fs::path cfg_path = dir / "tokenizer_config.json";
  if (!model_dir.empty() && fs::exists(cfg_path)) cfg = read_json(cfg_path);
  std::string source, origin;
  if (!override_file.empty()) {
    source = read_text(override_file);
    origin = override_file;
  } else if (fs::exists(dir / "chat_template.jinja")) {
    origin = (dir / "chat_template.jinja").string();
    source = read_text(origin);
  } else if (cfg.contains("chat_template") &&
             template_from_field(cfg["chat_template"], cfg_path.string(), source)) {
    origin = cfg_path.string() + " (chat_template)";
  } else if (fs::exists(dir / "chat_template.json")) {
    auto j = read_json(dir / "chat_template.json");
    if (!j.contains("chat_template") ||
        !template_from_field(j["chat_template"], (dir / "chat_template.json").string(), source))
      fail("{}: no \"chat_template\" string", (dir / "chat_template.json").string());
    origin = (dir / "chat_template.json").string();
  } else {
    fail(
        "{}: model has no chat template (no chat_template.jinja, and tokenizer_config.json has no "
        "\"chat_template\"); "
        "pass one with --chat-template FILE",
        model_dir);
  }
  ChatTemplate ct = from_string(source, origin);
  ct.bos_ = token_text(cfg, "bos_token");
  ct.eos_ = token_text(cfg, "eos_token");
  return ct;
}

std::string ChatTemplate::render(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools,
                                 bool add_generation_prompt,
                                 const nlohmann::ordered_json& extra_kwargs) const {
  return render(messages, tools, add_generation_prompt, extra_kwargs, bos_, eos_);
}

std::string ChatTemplate::render(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools,
                                 bool add_generation_prompt, const nlohmann::ordered_json& extra_kwargs,
                                 const std::string& bos_token, const std::string& eos_token) const {
  using jinja::Value;
  if (!messages.is_array()) fail("{}: messages must be a JSON array of message objects", origin_);
  if (!tools.is_null() && !tools.is_array()) fail("{}: tools must be a JSON array (or null)", origin_);
  if (!extra_kwargs.is_null() && !extra_kwargs.is_object())
    fail("{}: template kwargs must be a JSON object", origin_);
  Value ctx = Value::make_dict();
  auto& d = *ctx.dict;
  d.set("messages", jinja::from_json(messages));
  d.set("tools", tools.is_null() ? Value::none() : jinja::from_json(tools));
  d.set("documents", Value::none());
  d.set("add_generation_prompt", Value::boolean(add_generation_prompt));
  // transformers passes only the special tokens the tokenizer defines; an absent token stays undefined.
  if (!bos_token.empty()) d.set("bos_token", Value::string(bos_token));
  if (!eos_token.empty()) d.set("eos_token", Value::string(eos_token));
  if (extra_kwargs.is_object()) {
    for (auto it = extra_kwargs.begin(); it != extra_kwargs.end(); ++it) {
      const std::string& k = it.key();
      if (k == "messages" || k == "tools" || k == "documents" || k == "add_generation_prompt")
        fail("{}: template kwarg '{}' conflicts with a built-in chat template argument", origin_, k);
      d.set(k, jinja::from_json(it.value()));
    }
  }
  try {
    return tpl_->render(ctx);
  } catch (const jinja::TemplateRaised& e) {
    fail("{}: chat template raised an exception: {}", origin_, e.what());
  } catch (const Error& e) {
    fail("{}: {}", origin_, e.what());
  }
}

}  // namespace tqlm
