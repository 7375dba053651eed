// `tqlm serve`: flags only; the server is src/server/.
#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "server/http_server.h"

namespace tqlm::cli {

void add_serve(CLI::App& app) {
  struct Opts {
    ServeOptions s;
    ModelOptions m;
    std::string kv_mem, reasoning_format = "deepseek";
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand(
      "serve",
      "OpenAI-compatible HTTP server: POST /v1/chat/completions and /v1/completions (streamed as server-sent "
      "events or whole), GET /v1/models, /health, /metrics (Prometheus). Many requests run at once in one "
      "batch (continuous batching over one KV pool, prompt prefixes reused).");
  add_model_options(cmd, o->m);
  cmd->add_option("--host", o->s.host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", o->s.port, "Port (0: any free port, printed at start)")->capture_default_str();
  cmd->add_option("--api-key", o->s.api_key, "Require 'Authorization: Bearer KEY' on every API route");
  cmd->add_option("--kv-mem", o->kv_mem, "KV pool budget, e.g. 6GB (default: half the available memory)");
  cmd->add_option("--max-seqs", o->s.max_seqs, "Sequences running at once")->capture_default_str();
  cmd->add_option("--max-queue", o->s.max_queue, "Requests waiting at most; more get HTTP 503")
      ->capture_default_str();
  cmd->add_option("--step-tokens", o->s.step_tokens, "Tokens per forward step (decode first, then prefill)")
      ->capture_default_str();
  cmd->add_option("--max-tokens", o->s.max_tokens,
                  "Default max_tokens of a request (0: up to the end of the context)")
      ->capture_default_str();
  cmd->add_option("--reasoning-format", o->reasoning_format,
                  "deepseek: <think> text goes to reasoning_content / reasoning; none: it stays in content")
      ->check(CLI::IsMember({"deepseek", "none"}))
      ->capture_default_str();
  cmd->add_option("--reasoning-budget", o->s.reasoning_budget,
                  "Reasoning tokens per request (-1: unlimited): after that many tokens inside <think>, the "
                  "server closes the block itself and the answer follows. Per request: thinking_budget "
                  "(tokens) or reasoning_effort (none/minimal 0, low 512, medium 2048, high 8192)")
      ->capture_default_str();
  cmd->add_option("--cors-origin", o->s.cors_origin,
                  "Allow browser pages from this origin (e.g. http://localhost:3000, or *) to call the API "
                  "(default: same origin only)");
  cmd->add_option("--chat-template", o->s.chat_template_file,
                  "Jinja chat template file (overrides the model's)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--model-id", o->s.model_id,
                  "Model id reported by /v1/models (default: the directory name)");
  cmd->add_option("--http-threads", o->s.http_threads, "Connections served at once")->capture_default_str();
  cmd->callback([o] {
    if (o->s.port < 0 || o->s.port > 65535) fail("--port must be between 0 and 65535 (got {})", o->s.port);
    if (o->s.max_seqs < 1 || o->s.max_queue < 1 || o->s.step_tokens < 1 || o->s.http_threads < 1 ||
        o->s.max_tokens < 0 || o->s.reasoning_budget < -1)
      fail(
          "serve: --max-seqs, --max-queue, --step-tokens and --http-threads must be >= 1, --max-tokens >= 0, "
          "--reasoning-budget >= -1");
    o->s.model = o->m.model;
    o->s.threads = o->m.threads;
    o->s.kv = o->m.kv_spec();
    o->s.ctx = o->m.ctx;
    o->s.kv_mem = o->kv_mem.empty() ? 0 : uint64_t(parse_size(o->kv_mem, "--kv-mem"));
    o->s.split_reasoning = o->reasoning_format != "none";
    run_server(o->s);
  });
}

}  // namespace tqlm::cli
