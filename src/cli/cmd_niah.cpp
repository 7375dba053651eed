// `tqlm niah`: needle-in-a-haystack retrieval over contexts x depths (src/eval/niah.h); argument parsing,
// progress lines and the result table / JSON.
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/files.h"
#include "core/json.h"
#include "core/mapped_file.h"
#include "eval/heatmap_svg.h"
#include "eval/niah.h"
#include "eval/svg_file.h"
#include "tokenizer/utf8.h"

namespace tqlm::cli {

namespace {

struct NiahOpts {
  ModelOptions m;
  NiahOptions n;
  std::string haystack, needles, svg;
  bool json = false, verbose = false;
};

// The haystack file's bytes; errors name the file.
std::string read_haystack(const std::string& path) {
  std::string text = read_text_file(path, "--haystack file");
  if (text.empty()) fail("{}: the --haystack file is empty", path);
  utf8::validate(text, path);
  return text;
}

// One JSON record per trial (the rendered prompt only with --verbose).
nlohmann::ordered_json trial_json(const NiahTrial& t, bool verbose) {
  nlohmann::ordered_json j = {{"context_target", t.context_target},
                              {"prompt_tokens", t.prompt_tokens},
                              {"depth", t.depth},
                              {"trial", t.trial},
                              {"kind", t.prompt.kind},
                              {"needle", t.prompt.needle},
                              {"value", t.prompt.value},
                              {"answer", t.answer},
                              {"pass", t.pass},
                              {"pass_contains", t.pass_contains},
                              {"pass_exact", t.pass_exact},
                              {"seconds", t.seconds},
                              {"prefill_seconds", t.prefill_seconds},
                              {"needle_depth", t.prompt.needle_depth()},
                              {"needle_token", t.prompt.needle_token},
                              {"needle_tokens", t.prompt.needle_tokens},
                              {"haystack_begin_token", t.prompt.hay_begin_token},
                              {"haystack_end_token", t.prompt.hay_end_token},
                              {"needle_char", t.prompt.needle_char},
                              {"haystack_offset", t.prompt.haystack_offset},
                              {"haystack_chars", t.prompt.haystack_chars},
                              {"kv_tokens", t.kv_tokens},
                              {"kv_bytes", t.kv_bytes}};
  if (verbose) j["prompt"] = t.prompt.rendered;
  return j;
}

// Passed / total and the largest prompt length of the trials of one context.
struct ContextRow {
  int64_t context = 0, prompt_tokens = 0;
  int passed = 0, total = 0;
};

std::vector<ContextRow> context_rows(const NiahResult& r) {
  std::vector<ContextRow> rows;
  for (const auto& t : r.trials) {
    if (rows.empty() || rows.back().context != t.context_target) rows.push_back({t.context_target, 0, 0, 0});
    rows.back().prompt_tokens = std::max(rows.back().prompt_tokens, t.prompt_tokens);
    rows.back().passed += t.pass;
    rows.back().total += 1;
  }
  return rows;
}

void print_json(const NiahOpts& o, const NiahResult& r) {
  nlohmann::ordered_json trials = nlohmann::ordered_json::array(), by_ctx = nlohmann::ordered_json::array();
  for (const auto& t : r.trials) trials.push_back(trial_json(t, o.verbose));
  for (const auto& c : context_rows(r))
    by_ctx.push_back({{"context_target", c.context},
                      {"prompt_tokens", c.prompt_tokens},
                      {"passed", c.passed},
                      {"total", c.total}});
  nlohmann::ordered_json j = {
      {"model", o.m.model},
      {"haystack", o.haystack},
      {"kv", o.m.kv},
      {"kv_boundary", o.m.kv_boundary},
      {"kv_mode", r.kv_mode},
      {"kv_bytes_per_token", r.kv_bytes_per_token},
      {"dry_run", o.n.dry_run},
      {"seed", o.n.seed},
      {"max_tokens", o.n.max_tokens},
      {"contexts", o.n.contexts},
      {"depths", o.n.depths},
      {"trials_per_cell", o.n.trials},
      {"score", o.n.exact ? "exact" : "contains"},
      {"trials", trials},
      {"summary",
       {{"passed", r.passed}, {"total", r.trials.size()}, {"seconds", r.seconds}, {"by_context", by_ctx}}}};
  std::printf("%s\n", j.dump(2).c_str());
}

// Rows = contexts, columns = depths, cells ok/miss; with --verbose every answer below the table.
void print_table(const NiahOpts& o, const NiahResult& r) {
  std::printf("model %s  kv %s (%.0f bytes/token)  haystack %s  seed %llu%s\n", o.m.model.c_str(),
              r.kv_mode.c_str(), r.kv_bytes_per_token, o.haystack.c_str(), (unsigned long long)o.n.seed,
              o.n.dry_run ? "  (dry run: prompts only)" : "");
  std::printf("%-8s %-8s", "context", "tokens");
  for (double d : o.n.depths) std::printf(" %6g%%", d);
  std::printf("  passed\n");
  size_t i = 0;
  const int per = o.n.trials;
  for (const auto& c : context_rows(r)) {
    std::printf("%-8lld %-8lld", (long long)c.context, (long long)c.prompt_tokens);
    for (int k = 0; k < c.total; k += per) {
      int ok = 0;
      for (int j = 0; j < per; ++j, ++i) ok += r.trials[i].pass;
      const std::string cell = o.n.dry_run ? "-"
                               : per == 1  ? (ok ? "ok" : "miss")
                                           : fmt::format("{}/{}", ok, per);
      std::printf(" %7s", cell.c_str());
    }
    if (o.n.dry_run)
      std::printf("  -\n");
    else
      std::printf("  %d/%d\n", c.passed, c.total);
  }
  if (!o.n.dry_run) std::printf("passed %d/%zu  (%.1f s)\n", r.passed, r.trials.size(), r.seconds);
  if (!o.verbose) return;
  for (const auto& t : r.trials) {
    const nlohmann::json answer = t.answer;  // quoted and escaped
    std::printf("context %lld depth %g%% (at %.1f%%) trial %d: %s %s  answer %s  contains %s, exact %s\n",
                (long long)t.context_target, t.depth, 100 * t.prompt.needle_depth(), t.trial,
                t.prompt.kind.c_str(), t.prompt.value.c_str(), answer.dump().c_str(),
                t.pass_contains ? "yes" : "no", t.pass_exact ? "yes" : "no");
  }
}

// The grid as a heatmap: depths down, contexts across, the pass rate of each cell. A PNG beside it when
// rsvg-convert (librsvg2-bin) is installed.
void write_svg(const NiahOpts& o, const NiahResult& r) {
  Heatmap h;
  h.title = fmt::format("NIAH {}  KV {}  {} ({} trial{} per cell, {} match)", o.m.model, r.kv_mode,
                        fmt::format("{}/{}", r.passed, r.trials.size()), o.n.trials,
                        o.n.trials > 1 ? "s" : "", o.n.exact ? "exact" : "contains");
  h.x_name = "context (tokens)";
  h.y_name = "needle depth";
  for (int64_t c : o.n.contexts) h.cols.push_back(std::to_string(c));
  for (double d : o.n.depths) h.rows.push_back(fmt::format("{:g}%", d));
  h.values.assign(o.n.depths.size(), std::vector<double>(o.n.contexts.size(), 0));
  h.text.assign(o.n.depths.size(), std::vector<std::string>(o.n.contexts.size()));
  const size_t nd = o.n.depths.size(), per = size_t(o.n.trials);
  for (size_t c = 0; c < o.n.contexts.size(); ++c)
    for (size_t d = 0; d < nd; ++d) {
      int ok = 0;
      for (size_t j = 0; j < per; ++j) ok += r.trials[(c * nd + d) * per + j].pass;
      h.values[d][c] = double(ok) / double(per);
      h.text[d][c] = per == 1 ? (ok ? "ok" : "miss") : fmt::format("{}/{}", ok, per);
    }
  const std::string png = write_svg_and_png(o.svg, heatmap_svg(h), "--svg file");
  std::fprintf(stderr, "niah: heatmap %s\n", o.svg.c_str());
  if (!png.empty()) std::fprintf(stderr, "niah: heatmap %s\n", png.c_str());
}

}  // namespace

void add_niah(CLI::App& app) {
  auto o = std::make_shared<NiahOpts>();
  auto* cmd = app.add_subcommand(
      "niah",
      "Needle in a haystack: for each context x depth (x --trials), consecutive sentences of the haystack "
      "text "
      "(from a line chosen by --seed) fill the chat prompt to the context length minus --max-tokens; the "
      "needle "
      "sentence (default \"The special magic number is NNNNN.\", 5 random digits; --needles FILE for others) "
      "sits at the sentence boundary nearest depth% of the haystack, followed by its question. Greedy answer "
      "from an empty KV cache (--kv); a trial passes when the answer contains the value (--exact: is the "
      "value). "
      "--svg writes the grid as a heatmap. Without --haystack: $TQLM_DATA (a file, or a directory holding "
      "wikitext-2/wiki.test.raw), else ../shared/data/wikitext-2/wiki.test.raw from the current directory or "
      "from the repository that holds the executable.");
  add_model_options(cmd, o->m);
  cmd->add_option("--contexts", o->n.contexts, "Target context lengths in tokens, comma-separated")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--depths", o->n.depths, "Needle depths in % of the haystack, comma-separated")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--haystack", o->haystack, "UTF-8 text to hide the needle in (default: see above)");
  cmd->add_option("--seed", o->n.seed, "Seed of the haystack offsets and needle numbers")
      ->capture_default_str();
  cmd->add_option("--max-tokens,-n", o->n.max_tokens, "Answer length limit in tokens")->capture_default_str();
  cmd->add_option(
         "--trials", o->n.trials,
         "Trials per (context, depth) cell, each with its own haystack offset and value; trial i uses "
         "needle i mod the number of needles")
      ->capture_default_str();
  cmd->add_option(
         "--needles", o->needles,
         "JSON file of needles: [{\"name\", \"sentence\" (with {value}), \"question\", \"digits\": N | "
         "\"values\": [...]}] (default: the magic number, 5 digits)")
      ->check(regular_file_check("--needles"));
  cmd->add_flag(
      "--exact", o->n.exact,
      "Pass only when the answer is the value (outer spaces, quotes and a final '.' ignored); default: "
      "the answer contains it. Both are in --json.");
  cmd->add_option("--svg", o->svg,
                  "Write the grid as a heatmap SVG (and a PNG beside it if rsvg-convert exists)");
  cmd->add_flag("--dry-run", o->n.dry_run,
                "Build the prompts and report their lengths and depths; run nothing");
  cmd->add_flag("--json", o->json, "Print per-trial records and the summary as JSON");
  cmd->add_flag("-v,--verbose", o->verbose,
                "Print the answers (table) or include the rendered prompts (--json)");
  cmd->callback([o] {
    const char* env = std::getenv("TQLM_DATA");
    if (o->haystack.empty() && env && *env && file_kind(env).empty())  // never a default in its place
      fail("TQLM_DATA={}: no such file or directory", env);
    if (o->haystack.empty()) o->haystack = default_niah_haystack();
    if (o->haystack.empty())
      fail(
          "no haystack: pass --haystack FILE, set TQLM_DATA, or run from a directory with "
          "../shared/data/wikitext-2/wiki.test.raw");
    const std::string text = read_haystack(o->haystack);
    o->n.ctx_limit = o->m.ctx;
    o->n.kv = o->m.kv_spec();
    o->n.keep_prompts = o->verbose && o->json;
    ChatSession cs({o->m.model, o->m.threads, o->m.kv_spec(), "", false});
    check_loaded_config(cs.model().config(), o->m.ctx);
    o->n.haystack_name = o->haystack;
    if (!o->needles.empty()) o->n.needles = load_niah_needles(o->needles);
    // One progress line per trial on stderr (trials take seconds to minutes each).
    const NiahResult r = run_niah(cs, text, o->n, [o](const NiahTrial& t, size_t done, size_t total) {
      std::fprintf(
          stderr,
          "niah %zu/%zu  context %lld (%lld tokens)  depth %g%% (at %.1f%%)  %s  %.1f s (prefill %.1f s)\n",
          done, total, (long long)t.context_target, (long long)t.prompt_tokens, t.depth,
          100 * t.prompt.needle_depth(),
          o->n.dry_run ? "-"
          : t.pass     ? "ok"
                       : "miss",
          t.seconds, t.prefill_seconds);
      std::fflush(stderr);
    });
    if (!o->svg.empty() && !o->n.dry_run) write_svg(*o, r);
    if (o->json)
      print_json(*o, r);
    else
      print_table(*o, r);
  });
}

}  // namespace tqlm::cli
