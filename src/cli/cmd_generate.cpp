#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "cli/commands.h"
#include "cli/options.h"
#include "cli/progress.h"
#include "core/memory.h"
#include "runtime/chat_session.h"
#include "runtime/reasoning.h"

namespace tqlm::cli {

namespace {

struct ChatOpts {
  ModelOptions m;
  SamplingOptions s;
  std::string system, chat_template, kv_mem;
  bool raw = false, hide_reasoning = false, quiet = false;
};

void add_chat_flags(CLI::App* cmd, ChatOpts& o) {
  add_model_options(cmd, o.m);
  add_sampling_options(cmd, o.s);
  cmd->add_option("--system", o.system, "System message");
  cmd->add_option("--chat-template", o.chat_template, "Jinja chat template file (overrides the model's)")
      ->check(regular_file_check("--chat-template"));
  cmd->add_flag("--hide-reasoning", o.hide_reasoning, "Do not print <think> reasoning");
  cmd->add_flag("-q,--quiet", o.quiet, "No statistics line at the end");
  cmd->add_option("--kv-mem", o.kv_mem, "KV pool budget, e.g. 6GB (default: half the available memory)");
}

ChatSessionOptions session_options(const ChatOpts& o) {
  return {o.m.model,       o.m.threads, o.m.kv_spec(),
          o.chat_template, o.raw,       o.kv_mem.empty() ? 0 : uint64_t(parse_size(o.kv_mem, "--kv-mem"))};
}

// Streams one reply; reasoning is dimmed on a terminal (or hidden). Returns the answer text.
std::string stream_reply(ChatSession& cs, const std::vector<int32_t>& prompt, bool starts_in_think,
                         Sampler& sampler, const ChatOpts& o) {
  const bool tty = ::isatty(STDOUT_FILENO) == 1;
  ReasoningSplitter split(starts_in_think);
  std::string answer;
  bool was_reasoning = false;
  auto print = [&](const std::vector<ReasoningSplitter::Piece>& pieces) {
    for (const auto& p : pieces) {
      if (p.reasoning) {
        if (o.hide_reasoning) continue;
        if (!was_reasoning) std::fputs(tty ? "\x1b[2m<think>" : "<think>", stdout);
        was_reasoning = true;
      } else {
        if (was_reasoning) std::fputs(tty ? "</think>\x1b[0m" : "</think>", stdout);
        was_reasoning = false;
        answer += p.text;
      }
      std::fputs(p.text.c_str(), stdout);
    }
    std::fflush(stdout);
  };
  GenerateStats st =
      cs.generator().generate(prompt, sampler, o.s.generate_options(o.m.ctx), [&](const std::string& t) {
        print(split.push(t));
        return true;
      });
  print(split.finish());
  if (was_reasoning) std::fputs(tty ? "</think>\x1b[0m" : "</think>", stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
  if (!o.quiet) {
    const KVPoolStats ps = cs.generator().pool().stats();
    std::fprintf(
        stderr,
        "[prompt %lld tokens (%lld cached) %.1f tok/s | generated %lld tokens %.1f tok/s | %s | KV %s "
        "%.1f MB held (%.1f MB this reply, pool budget %.2f GB) | RSS %.1f MB]\n",
        (long long)st.prompt_tokens, (long long)st.cached_tokens, st.prompt_tps(), (long long)st.generated,
        st.gen_tps(), st.finish_reason.c_str(), cs.generator().kv_layout().mode.c_str(),
        double(ps.bytes()) / 1e6, double(st.kv_bytes) / 1e6, double(ps.budget) / 1e9,
        double(resident_bytes()) / 1e6);
  }
  return answer;
}

}  // namespace

void add_generate(CLI::App& app) {
  auto o = std::make_shared<ChatOpts>();
  auto prompt = std::make_shared<std::string>();
  auto* cmd =
      app.add_subcommand("generate", "Generate a reply to one prompt (chat template applied), streamed");
  add_chat_flags(cmd, *o);
  cmd->add_option("-p,--prompt", *prompt, "Prompt text ('-' reads stdin)")->required();
  cmd->add_flag("--raw", o->raw, "Use the prompt as plain text, without the chat template");
  cmd->callback([o, prompt] {
    if (*prompt == "-") *prompt = std::string(std::istreambuf_iterator<char>(std::cin), {});
    ChatSession cs(session_options(*o));
    check_loaded_config(cs.model().config(), o->m.ctx);
    Sampler sampler(o->s.resolve(cs.model().checkpoint().generation_config()
                                     ? &*cs.model().checkpoint().generation_config()
                                     : nullptr));
    std::vector<int32_t> ids;
    bool in_think = false;
    if (o->raw) {
      ids = cs.encode_raw(*prompt);
    } else {
      nlohmann::ordered_json msgs = nlohmann::ordered_json::array();
      if (!o->system.empty()) msgs.push_back({{"role", "system"}, {"content", o->system}});
      msgs.push_back({{"role", "user"}, {"content", *prompt}});
      std::string rendered;
      ids = cs.encode_chat(msgs, nullptr, true, nlohmann::ordered_json::object(), &rendered);
      in_think = ReasoningSplitter::prompt_opens_think(rendered);
    }
    stream_reply(cs, ids, in_think, sampler, *o);
  });
}

void add_chat(CLI::App& app) {
  auto o = std::make_shared<ChatOpts>();
  auto* cmd =
      app.add_subcommand("chat",
                         "Interactive multi-turn chat: type a message and press Enter; /reset clears the "
                         "conversation, /exit (or Ctrl-D) quits. Tokens stream as they are generated.");
  add_chat_flags(cmd, *o);
  cmd->callback([o] {
    ChatSession cs(session_options(*o));
    check_loaded_config(cs.model().config(), o->m.ctx);
    Sampler sampler(o->s.resolve(cs.model().checkpoint().generation_config()
                                     ? &*cs.model().checkpoint().generation_config()
                                     : nullptr));
    nlohmann::ordered_json msgs = nlohmann::ordered_json::array();
    auto reset = [&] {
      msgs = nlohmann::ordered_json::array();
      if (!o->system.empty()) msgs.push_back({{"role", "system"}, {"content", o->system}});
    };
    reset();
    const bool tty = ::isatty(STDIN_FILENO) == 1;
    std::string line;
    for (;;) {
      if (tty) std::fputs("\n> ", stdout), std::fflush(stdout);
      if (!std::getline(std::cin, line)) break;
      if (line == "/exit" || line == "/quit") break;
      if (line == "/reset") {
        reset();
        continue;
      }
      if (line.empty()) continue;
      msgs.push_back({{"role", "user"}, {"content", line}});
      std::string rendered;
      auto ids = cs.encode_chat(msgs, nullptr, true, nlohmann::ordered_json::object(), &rendered);
      std::string answer =
          stream_reply(cs, ids, ReasoningSplitter::prompt_opens_think(rendered), sampler, *o);
      msgs.push_back({{"role", "assistant"}, {"content", answer}});
    }
  });
}

}  // namespace tqlm::cli
