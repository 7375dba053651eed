#include "server/http_server.h"

#include <httplib.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "core/error.h"
#include "core/json.h"
#include "core/memory.h"
#include "runtime/chat_session.h"
#include "server/api.h"
#include "server/engine.h"

namespace tqlm {

extern const char* const kChatHtml;  // src/server/web/chat.html, compiled in by CMakeLists.txt

namespace {
using ojson = nlohmann::ordered_json;

void send_json(httplib::Response& res, int status, const nlohmann::json& j) {
  res.status = status;
  res.set_content(j.dump(), "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& msg, const std::string& param = "") {
  const char* type = status == 401   ? "authentication_error"
                     : status == 404 ? "not_found_error"
                     : status == 503 ? "server_overloaded"
                     : status >= 500 ? "server_error"
                                     : "invalid_request_error";
  send_json(res, status, error_body(msg, type, param));
}

// Prometheus text: a counter or gauge, and a histogram of latencies in seconds.
void metric(std::string& out, const char* name, const char* type, const char* help, double v) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n{} {}\n", name, help, name, type, name, v);
}
void histogram(std::string& out, const char* name, const char* help, const std::vector<double>& xs) {
  static const double bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
  out += fmt::format("# HELP {} {}\n# TYPE {} histogram\n", name, help, name);
  double sum = 0;
  for (double x : xs) sum += x;
  for (double b : bounds) {
    int64_t n = 0;
    for (double x : xs) n += x <= b;
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, b, n);
  }
  out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n{}_sum {}\n{}_count {}\n", name, xs.size(), name, sum,
                     name, xs.size());
}

class Server {
 public:
  explicit Server(const ServeOptions& o)
      : o_(o), cs_(ChatSessionOptions{o.model, o.threads, o.kv, o.chat_template_file, false, 1}) {
    api_.model_id = o.model_id.empty() ? std::filesystem::path(o.model).filename().string() : o.model_id;
    if (api_.model_id.empty())
      api_.model_id = std::filesystem::path(o.model).parent_path().filename().string();
    api_.split_reasoning = o.split_reasoning;
    api_.default_max_tokens = o.max_tokens;
    api_.reasoning_budget = o.reasoning_budget;
    if (const auto& g = cs_.model().checkpoint().generation_config())
      api_.defaults.apply_generation_config(*g);
    SchedulerOptions so;
    so.max_seqs = o.max_seqs;
    so.step_tokens = o.step_tokens;
    so.ctx = o.ctx;
    const uint64_t budget = o.kv_mem ? o.kv_mem : default_kv_budget();
    engine_ = std::make_unique<Engine>(cs_.model(), cs_.tokenizer(), o.kv, budget, so, o.max_queue);
    std::fprintf(
        stderr,
        "tqlm serve: model %s (%s), KV %s, pool %.2f GB (%s), up to %lld sequences, context %lld tokens\n",
        api_.model_id.c_str(), o.model.c_str(), o.kv.mode.c_str(), double(budget) / 1e9,
        o.kv_mem ? "--kv-mem" : "default: half the available memory", (long long)o.max_seqs,
        (long long)engine_->context());
  }

  void run() {
    httplib::Server svr;
    svr.new_task_queue = [n = o_.http_threads] { return new httplib::ThreadPool(size_t(n)); };
    svr.set_payload_max_length(o_.max_body);
    if (!o_.cors_origin.empty()) {
      svr.set_default_headers({{"Access-Control-Allow-Origin", o_.cors_origin},
                               {"Access-Control-Allow-Headers", "Authorization, Content-Type"},
                               {"Access-Control-Allow-Methods", "GET, POST, OPTIONS"},
                               {"Access-Control-Max-Age", "600"}});
      svr.Options(R"(.*)", [](const httplib::Request&, httplib::Response& r) { r.status = 204; });
    }
    svr.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (req.method == "OPTIONS") return httplib::Server::HandlerResponse::Unhandled;  // CORS preflight
      if (o_.api_key.empty() || req.path == "/health" || req.path == "/" || req.path == "/props")
        return httplib::Server::HandlerResponse::Unhandled;
      if (req.get_header_value("Authorization") == "Bearer " + o_.api_key)
        return httplib::Server::HandlerResponse::Unhandled;
      send_error(res, 401, "invalid or missing API key (Authorization: Bearer ...)");
      return httplib::Server::HandlerResponse::Handled;
    });
    svr.set_error_handler(
        httplib::Server::HandlerWithResponse([this](const httplib::Request& req, httplib::Response& res) {
          if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
          if (res.status == 413)
            send_error(res, 413, fmt::format("the request body is larger than {} bytes", o_.max_body));
          else if (res.status == 404)
            send_error(res, 404, fmt::format("no route {} {}", req.method, req.path));
          else
            send_error(res, res.status, fmt::format("HTTP {}", res.status));
          return httplib::Server::HandlerResponse::Handled;
        }));
    for (const char* prefix : {"/v1", ""}) {
      svr.Post(std::string(prefix) + "/chat/completions",
               [this](const httplib::Request& q, httplib::Response& r) { completion(q, r, true); });
      svr.Post(std::string(prefix) + "/completions",
               [this](const httplib::Request& q, httplib::Response& r) { completion(q, r, false); });
      svr.Get(std::string(prefix) + "/models", [this](const httplib::Request&, httplib::Response& r) {
        send_json(
            r, 200,
            {{"object", "list"},
             {"data", {{{"id", api_.model_id}, {"object", "model"}, {"created", 0}, {"owned_by", "tqlm"}}}}});
      });
      svr.Get(std::string(prefix) + R"(/models/(.+))", [this](const httplib::Request& q,
                                                              httplib::Response& r) {
        if (q.matches[1] != api_.model_id)
          return send_error(r, 404, fmt::format("no model '{}'", q.matches[1].str()));
        send_json(r, 200, {{"id", api_.model_id}, {"object", "model"}, {"created", 0}, {"owned_by", "tqlm"}});
      });
    }
    svr.Post("/apply-template",
             [this](const httplib::Request& q, httplib::Response& r) { apply_template(q, r); });
    svr.Get("/", [](const httplib::Request&, httplib::Response& r) {
      r.set_content(kChatHtml, "text/html; charset=utf-8");
    });
    svr.Get("/props", [this](const httplib::Request&, httplib::Response& r) {
      send_json(r, 200,
                {{"model", api_.model_id},
                 {"kv", engine_->kv_layout().mode},
                 {"context", engine_->context()},
                 {"max_seqs", o_.max_seqs},
                 {"auth", !o_.api_key.empty()}});
    });
    svr.Get("/health", [](const httplib::Request&, httplib::Response& r) {
      send_json(r, 200, {{"status", "ok"}});
    });
    svr.Get("/metrics", [this](const httplib::Request&, httplib::Response& r) { metrics(r); });
    if (o_.host != "127.0.0.1" && o_.host != "localhost" && o_.host != "::1" && o_.api_key.empty())
      std::fprintf(
          stderr,
          "tqlm serve: warning: listening on %s without --api-key: anyone who can reach it can use it\n",
          o_.host.c_str());
    int port = o_.port;
    if (port == 0) {
      port = svr.bind_to_any_port(o_.host);
      if (port < 0) fail("cannot listen on {} (any port)", o_.host);
    } else if (!svr.bind_to_port(o_.host, port)) {
      fail("cannot listen on {}:{} (in use, or not an address of this machine)", o_.host, port);
    }
    std::fprintf(stderr, "tqlm serve: listening on http://%s:%d\n", o_.host.c_str(), port);
    std::fflush(stderr);
    if (!svr.listen_after_bind()) fail("the HTTP server stopped unexpectedly");
  }

 private:
  // The prompt a chat request renders to, and its tokens, without generating (as llama.cpp's server).
  void apply_template(const httplib::Request& q, httplib::Response& res) {
    ojson body;
    try {
      body = parse_json_limited<ojson>(q.body, "request body");
      const ApiRequest req = parse_request(body, true, cs_, api_, template_mu_);
      send_json(res, 200, {{"prompt", req.rendered}, {"tokens", req.prompt}});
    } catch (const RequestError& e) {
      send_error(res, e.status, e.what());
    } catch (const std::exception& e) {
      send_error(res, 400, e.what());
    }
  }

  void completion(const httplib::Request& q, httplib::Response& res, bool chat) {
    ojson body;
    try {
      body = parse_json_limited<ojson>(q.body, "request body");  // depth-limited: the body is untrusted
    } catch (const std::exception& e) {
      return send_error(res, 400, fmt::format("the body is not valid JSON: {}", e.what()));
    }
    if (body.is_object() && body.contains("model") && body["model"].is_string() &&
        body["model"].get<std::string>() != api_.model_id && !body["model"].get<std::string>().empty())
      return send_error(res, 404,
                        fmt::format("no model '{}' (this server has '{}')", body["model"].get<std::string>(),
                                    api_.model_id),
                        "model");
    std::shared_ptr<ApiRequest> req;
    std::shared_ptr<EngineStream> stream;
    try {
      req = std::make_shared<ApiRequest>(parse_request(body, chat, cs_, api_, template_mu_));
      stream = engine_->submit(req->prompt, req->params, req->top_logprobs);
    } catch (const RequestError& e) {
      if (e.status == 503) res.set_header("Retry-After", "1");
      return send_error(res, e.status, e.what());
    } catch (const std::exception& e) {
      return send_error(res, 400, e.what());
    }
    const std::string id = fmt::format("{}-{}", chat ? "chatcmpl" : "cmpl", ++counter_);
    auto resp = std::make_shared<ApiResponse>(*req, api_, cs_.tokenizer(), id);
    if (!req->stream) {
      StreamEvent ev;
      std::string error;
      while (engine_->next(*stream, ev)) {
        if (ev.finish_reason == "error") error = ev.error;
        resp->add(ev);
      }
      if (!error.empty()) return send_error(res, 500, error);
      return send_json(res, 200, resp->whole(*stream));
    }
    res.set_header("Cache-Control", "no-cache");
    auto started = std::make_shared<bool>(false);
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, req, stream, resp, started](size_t, httplib::DataSink& sink) {
          auto send = [&](const std::string& data) {
            const std::string line = "data: " + data + "\n\n";
            return sink.write(line.data(), line.size());
          };
          if (!*started) {
            *started = true;
            if (req->chat && !send(resp->first_chunk().dump())) return stream->cancel = true, false;
          }
          StreamEvent ev;
          if (!engine_->next(*stream, ev)) {
            sink.done();
            return true;
          }
          if (ev.finish_reason == "error") {
            send(error_body(ev.error, "server_error").dump());
            sink.done();
            return true;
          }
          for (const auto& c : resp->chunks(ev))
            if (!send(c.dump())) return stream->cancel = true, false;  // the client went away: free its KV
          if (ev.finished) {
            if (req->include_usage) send(resp->usage_chunk(*stream).dump());
            send("[DONE]");
            sink.done();
          }
          return true;
        },
        [stream](bool success) {
          if (!success) stream->cancel = true;
        });
  }

  void metrics(httplib::Response& r) {
    const EngineStats s = engine_->stats();
    std::string out;
    metric(out, "tqlm_requests_total", "counter", "requests accepted", double(s.requests));
    metric(out, "tqlm_prompt_tokens_total", "counter", "prompt tokens of accepted requests",
           double(s.prompt_tokens));
    metric(out, "tqlm_prompt_tokens_cached_total", "counter", "prompt tokens reused from the prefix cache",
           double(s.cached_tokens));
    metric(out, "tqlm_completion_tokens_total", "counter", "tokens generated", double(s.completion_tokens));
    metric(out, "tqlm_requests_cancelled_total", "counter", "requests cancelled (client gone)",
           double(s.cancelled));
    metric(out, "tqlm_requests_failed_total", "counter", "requests that ended in an error", double(s.errors));
    metric(out, "tqlm_sequences_running", "gauge", "sequences in the running batch", double(s.running));
    metric(out, "tqlm_queue_depth", "gauge", "requests waiting for a place in the batch", double(s.waiting));
    metric(out, "tqlm_kv_pool_bytes", "gauge", "bytes held by the KV pool (used + cached)",
           double(s.pool.bytes()));
    metric(out, "tqlm_kv_pool_budget_bytes", "gauge", "the KV pool's budget", double(s.pool.budget));
    metric(out, "tqlm_kv_blocks_used", "gauge", "KV blocks referenced by sequences",
           double(s.pool.blocks_used));
    metric(out, "tqlm_kv_blocks_cached", "gauge", "unreferenced KV blocks kept for prefix reuse",
           double(s.pool.blocks_cached));
    metric(out, "tqlm_prefix_cache_hits_total", "counter", "requests that reused a cached prefix",
           double(s.pool.prefix_hits));
    metric(out, "tqlm_resident_bytes", "gauge", "resident memory of the process", double(resident_bytes()));
    histogram(out, "tqlm_time_to_first_token_seconds", "time to first token", s.ttft);
    histogram(out, "tqlm_inter_token_seconds", "time between generated tokens", s.itl);
    r.set_content(out, "text/plain; version=0.0.4");
  }

  ServeOptions o_;
  ChatSession cs_;
  ApiOptions api_;
  std::unique_ptr<Engine> engine_;
  std::mutex template_mu_;
  std::atomic<int64_t> counter_{0};
};
}  // namespace

void run_server(const ServeOptions& opt) {
  Server s(opt);
  s.run();
}

}  // namespace tqlm
