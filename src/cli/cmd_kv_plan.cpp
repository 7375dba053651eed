// `tqlm kv-plan`: what each KV cache mode costs for one model, from config.json alone: the stored K/V
// formats, real bytes per token, nominal and real compression against bf16, totals at a few context
// lengths and the longest context that fits in a memory budget.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "io/checkpoint.h"
#include "kv/kv_pool.h"
#include "kv/kv_spec.h"
#include "model/config.h"

namespace tqlm::cli {

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string thousands(int64_t n) {
  std::string d = std::to_string(n < 0 ? -n : n), out;
  for (size_t i = 0; i < d.size(); ++i) {
    if (i && (d.size() - i) % 3 == 0) out += ',';
    out += d[i];
  }
  return n < 0 ? "-" + out : out;
}

// "8K" = 8192 tokens (K = 1024, M = 1024^2), or a plain token count.
int64_t parse_context(const std::string& text) {
  std::string num, unit;
  // no std::regex: it recursed per character (a 100 KB value was a segfault)
  if (text.size() > 64 || !split_number_unit(text, num, unit) || num.find('.') != std::string::npos ||
      num.size() > 12 || unit.size() > 1 ||
      (!unit.empty() && std::string("kKmM").find(unit[0]) == std::string::npos))
    fail("--contexts '{}': expected a token count such as 8K (= 8192), 128K or 100000", text.substr(0, 64));
  const int64_t n = std::stoll(num) * (unit.empty() ? 1 : lower(unit) == "k" ? 1024 : 1 << 20);
  if (n <= 0) fail("--contexts '{}': must be positive", text);
  return n;
}

std::string context_label(int64_t n) {
  if (n % (1 << 20) == 0) return std::to_string(n >> 20) + "M";
  if (n % 1024 == 0) return std::to_string(n / 1024) + "K";
  return thousands(n);
}

std::string gb(int64_t bytes) {
  return fmt::format("{:.2f}", double(bytes) / 1e9);
}

}  // namespace

void add_kv_plan(CLI::App& app) {
  struct Opts {
    std::string model, mem = "36GB", calib;
    std::vector<std::string> modes, contexts = {"8K", "16K", "32K", "64K", "128K"};
    int boundary = 2;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand(
      "kv-plan",
      "KV cache cost per mode from config.json alone: K/V formats, bytes per token, nominal and real ratio "
      "vs "
      "bf16, totals at several context lengths and the longest context that fits in --mem.");
  cmd->add_option("model", o->model, "Model directory (with config.json) or a config.json file")->required();
  cmd->add_option("--mem", o->mem,
                  "KV memory budget: 36GB (10^9 bytes), 36GiB (2^30), 36G (= GB), 512MB, 1.5GB or bytes")
      ->capture_default_str();
  cmd->add_option("--modes", o->modes,
                  "Comma-separated KV modes (default: the common ones). Modes: " + kv_modes_help())
      ->delimiter(',');
  cmd->add_option("--kv-boundary", o->boundary, "Compressed modes: the first and last N layers stay bf16")
      ->capture_default_str();
  cmd->add_option(
      "--kv-calib", o->calib,
      "KV calibration file for centred and auto:R modes (default: MODEL/kv-calib.json when it exists)");
  cmd->add_option("--contexts", o->contexts, "Comma-separated context lengths in tokens (8K = 8192)")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_flag("--json", o->json, "Print the plan as JSON");
  cmd->callback([o] {
    namespace fs = std::filesystem;
    const std::string path =
        fs::is_directory(o->model) ? (fs::path(o->model) / "config.json").string() : o->model;
    if (!fs::exists(path)) fail("{}: no such file", path);
    const ModelConfig mc = parse_model_config(read_json_file(path), path);
    print_config_warnings(mc);
    const int64_t mem = parse_size(o->mem, "--mem");
    std::vector<int64_t> ctx;
    for (const auto& c : o->contexts) ctx.push_back(parse_context(c));
    const std::vector<std::string> modes = o->modes.empty() ? kv_plan_modes() : o->modes;
    std::vector<KVLayout> lays;
    std::string calib = o->calib;
    if (calib.empty() && fs::is_regular_file(fs::path(path).parent_path() / "kv-calib.json"))
      calib = (fs::path(path).parent_path() / "kv-calib.json").string();
    for (const auto& m : modes) lays.push_back(kv_layout(KVSpec(m, o->boundary, calib), mc.kv_shape()));
    const int64_t eff_boundary = std::min<int64_t>(o->boundary, mc.n_layers / 2);
    const size_t mid = size_t(mc.n_layers / 2);

    if (o->json) {
      nlohmann::json j = {{"config", path},          {"model_type", mc.model_type},
                          {"layers", mc.n_layers},   {"kv_heads", mc.n_kv_heads},
                          {"head_dim", mc.head_dim}, {"max_position_embeddings", mc.max_position},
                          {"boundary", o->boundary}, {"boundary_effective", eff_boundary},
                          {"mem_bytes", mem},        {"page_tokens", kPageTokens},
                          {"contexts", ctx}};
      nlohmann::json arr = nlohmann::json::array();
      for (const auto& L : lays) {
        const int64_t bpt = L.bytes_per_token();
        nlohmann::json totals = nlohmann::json::object(), tgb = nlohmann::json::object(),
                       tgib = nlohmann::json::object();
        for (int64_t c : ctx) {
          totals[std::to_string(c)] = c * bpt;
          tgb[std::to_string(c)] = double(c * bpt) / 1e9;
          tgib[std::to_string(c)] = double(c * bpt) / double(1ull << 30);
        }
        arr.push_back({{"mode", L.mode},
                       {"k_format", L.k[mid].name()},
                       {"v_format", L.v[mid].name()},
                       {"formats", L.formats_summary()},
                       {"fixed_bytes", L.fixed_bytes()},
                       {"boundary", L.boundary},
                       {"bytes_per_token", bpt},
                       {"bf16_bytes_per_token", L.bf16_bytes_per_token()},
                       {"nominal_ratio", L.nominal_ratio()},
                       {"real_ratio", L.real_ratio()},
                       {"totals", totals},
                       {"totals_gb", tgb},
                       {"totals_gib", tgib},
                       {"max_context", mem / bpt}});
        if (L.per_layer) {
          std::vector<std::string> kl, vl;
          for (int64_t l = 0; l < L.layers; ++l)
            kl.push_back(L.k[size_t(l)].name()), vl.push_back(L.v[size_t(l)].name());
          arr.back()["k_layers"] = kl;
          arr.back()["v_layers"] = vl;
        }
      }
      j["modes"] = arr;
      std::printf("%s\n", j.dump(2).c_str());
      return;
    }

    int64_t rot = mc.head_dim;  // TurboQuant rotation length (head_dim rounded up to a power of two)
    for (const auto& L : lays)
      if (L.k[mid].rotated()) rot = L.k[mid].dim;
    std::printf("%s: %lld layers, %lld kv heads, head_dim %lld%s, max_position_embeddings %s\n",
                mc.model_type.c_str(), (long long)mc.n_layers, (long long)mc.n_kv_heads,
                (long long)mc.head_dim,
                rot != mc.head_dim ? fmt::format(" (TurboQuant rotation pads to {})", rot).c_str() : "",
                thousands(mc.max_position).c_str());
    std::printf(
        "boundary: q8/turbo modes keep the first and last %lld layers bf16%s; KV budget %s GB (%.2f GiB)\n\n",
        (long long)eff_boundary,
        eff_boundary != o->boundary ? fmt::format(" (--kv-boundary {} capped)", o->boundary).c_str() : "",
        gb(mem).c_str(), double(mem) / double(1ull << 30));

    std::vector<std::vector<std::string>> rows;
    std::vector<std::string> head = {"mode", "K/V", "bytes/token", "nominal", "real"};
    for (int64_t c : ctx) head.push_back(context_label(c) + " GB");
    head.push_back("max context");
    rows.push_back(head);
    for (const auto& L : lays) {
      const int64_t bpt = L.bytes_per_token();
      std::vector<std::string> r = {L.mode, L.formats_summary(), thousands(bpt),
                                    fmt::format("{:.2f}x", L.nominal_ratio()),
                                    fmt::format("{:.2f}x", L.real_ratio())};
      for (int64_t c : ctx) r.push_back(gb(c * bpt));
      r.push_back(thousands(mem / bpt));
      rows.push_back(r);
    }
    std::vector<size_t> w(head.size(), 0);
    for (const auto& r : rows)
      for (size_t i = 0; i < r.size(); ++i) w[i] = std::max(w[i], r[i].size());
    for (const auto& r : rows) {
      std::string line;
      for (size_t i = 0; i < r.size(); ++i) {
        const std::string pad(w[i] - r[i].size(), ' ');
        line += (i ? "  " : "") + (i < 2 ? r[i] + pad : pad + r[i]);
      }
      while (!line.empty() && line.back() == ' ') line.pop_back();
      std::printf("%s\n", line.c_str());
    }
    for (const auto& L : lays) {  // per-layer modes: the format of every layer
      if (!L.per_layer) continue;
      std::string k, v;
      for (int64_t l = 0; l < L.layers; ++l) {
        k += (l ? " " : "") + L.k[size_t(l)].base_name();
        v += (l ? " " : "") + L.v[size_t(l)].base_name();
      }
      std::printf("\n%s per layer%s%s:\n  K %s\n  V %s\n", L.mode.c_str(),
                  L.k[0].centred || L.k[size_t(L.layers / 2)].centred ? ", keys centred" : "",
                  L.sink ? ", sink copy" : "", k.c_str(), v.c_str());
    }
    std::printf(
        "\nnominal = 16 / mean(K, V bits), the figure usually quoted; real = bf16 bytes / real bytes, "
        "counting\n"
        "the fp16 norm or scale of every vector and the bf16 boundary layers (centred modes also hold f32\n"
        "means per layer and kv head once per model, not per token). Totals are the KV cache alone\n"
        "(weights not included), in GB (10^9 bytes); max context = floor(budget / bytes per token). The "
        "cache\n"
        "grows with the context in pages of %lld tokens; nothing is reserved for the maximum up front.\n",
        (long long)kPageTokens);
  });
}

}  // namespace tqlm::cli
