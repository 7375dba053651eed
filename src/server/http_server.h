// `tqlm serve`: the OpenAI-compatible HTTP server over the engine (server/engine.h).
//
//   POST /v1/chat/completions, /v1/completions     streamed (SSE) or whole; errors as OpenAI error bodies
//   GET  /v1/models, /health, /metrics (Prometheus text), /props, / (the web chat page)
//   POST /apply-template                           the prompt a chat request renders to (no generation)
//   the same routes without /v1
// HTTP threads parse, validate and render (templates one at a time); the engine thread runs every sequence.
#pragma once

#include <cstdint>
#include <string>

#include "kv/kv_spec.h"

namespace tqlm {

struct ServeOptions {
  std::string model;
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string api_key;  // empty: no authentication
  int threads = 0;
  KVSpec kv;
  uint64_t kv_mem = 0;  // 0: default_kv_budget()
  int64_t max_seqs = 16, max_queue = 256, step_tokens = 512, ctx = 0;
  int64_t max_tokens = 0;         // default per request (0: up to the end of the context)
  bool split_reasoning = true;    // --reasoning-format none: false
  int64_t reasoning_budget = -1;  // reasoning tokens per request (-1: unlimited)
  std::string cors_origin;        // Access-Control-Allow-Origin (empty: no CORS headers)
  int http_threads = 64;          // connections served at once
  size_t max_body = 16u << 20;    // bytes
  std::string chat_template_file;
  std::string model_id;  // what /v1/models reports (default: the directory's name)
};

// Runs until the process is stopped. `on_listening` (optional) is called with the bound port.
void run_server(const ServeOptions& opt);

}  // namespace tqlm
