// `tqlm mmlu`: MMLU accuracy by subject (src/eval/mmlu.h); argument parsing, progress and the table / JSON.
#include <cstdio>

#include "cli/commands.h"
#include "cli/options.h"
#include "cli/progress.h"
#include "core/error.h"
#include "core/files.h"
#include "eval/data_path.h"
#include "eval/mmlu.h"

namespace tqlm::cli {

namespace {
struct MmluOpts {
  ModelOptions m;
  MmluOptions r;
  std::string data, mode = "loglik", reasoning = "on", kv_mem, save_prompts;
  std::vector<std::string> subjects;
  int64_t n = 0;
  uint64_t seed = 0;
  int shots = -1;
  bool json = false;
};

nlohmann::ordered_json score_json(const MmluSubjectScore& s) {
  return {{"subject", s.name},   {"n", s.n},     {"correct", s.correct},
          {"accuracy", s.acc()}, {"se", s.se()}, {"unparsed", s.unparsed}};
}

void print_json(const MmluOpts& o, const MmluResult& r) {
  nlohmann::ordered_json items = nlohmann::ordered_json::array(), subjects = nlohmann::ordered_json::array();
  for (const auto& it : r.items) {
    nlohmann::ordered_json j = {{"subject", it.subject},
                                {"index", it.index},
                                {"answer", it.answer},
                                {"pred", it.pred},
                                {"prompt_tokens", it.prompt_tokens},
                                {"cached_tokens", it.cached_tokens}};
    if (o.r.generate)
      j["output"] = it.output, j["generated"] = it.generated;
    else
      j["logprobs"] = it.logprob;
    items.push_back(std::move(j));
  }
  for (const auto& s : r.subjects) subjects.push_back(score_json(s));
  nlohmann::ordered_json j = {{"model", o.m.model},
                              {"data", o.data},
                              {"mode", o.mode},
                              {"shots", o.r.shots},
                              {"kv", o.m.kv},
                              {"n", o.n},
                              {"seed", o.seed},
                              {"overall", score_json(r.overall)},
                              {"macro_accuracy", r.macro},
                              {"seconds", r.seconds},
                              {"prompt_tokens", r.prompt_tokens},
                              {"cached_tokens", r.cached_tokens},
                              {"subjects", subjects},
                              {"items", items}};
  if (o.r.generate) j["reasoning"] = o.reasoning, j["max_tokens"] = o.r.max_tokens;
  std::printf("%s\n", j.dump(1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
}

void print_table(const MmluOpts& o, const MmluResult& r) {
  std::printf("MMLU %s, %d-shot, model %s, KV %s, %s\n", o.mode.c_str(), o.r.shots, o.m.model.c_str(),
              o.m.kv.c_str(), o.data.c_str());
  std::printf("%-40s %6s %8s %7s%s\n", "subject", "n", "acc %", "+/- SE", o.r.generate ? "  unparsed" : "");
  auto row = [&](const MmluSubjectScore& s) {
    std::printf("%-40s %6lld %8.2f %7.2f", s.name.c_str(), (long long)s.n, 100 * s.acc(), 100 * s.se());
    if (o.r.generate) std::printf("  %8lld", (long long)s.unparsed);
    std::printf("\n");
  };
  for (const auto& s : r.subjects) row(s);
  row(r.overall);
  std::printf(
      "macro average over %zu subjects: %.2f%%; %.1f s, %lld prompt tokens (%lld from the prefix cache)\n",
      r.subjects.size(), 100 * r.macro, r.seconds, (long long)r.prompt_tokens, (long long)r.cached_tokens);
}
}  // namespace

void add_mmlu(CLI::App& app) {
  auto o = std::make_shared<MmluOpts>();
  auto* cmd = app.add_subcommand(
      "mmlu",
      "MMLU accuracy by subject with standard errors. --mode loglik (base and instruct models): the original "
      "prompt (subject header, --shots dev examples, the question, lettered choices, 'Answer:'); the choice "
      "is "
      "the letter token (' A'..' D') with the highest log-probability. --mode generate (chat and reasoning "
      "models): the chat template, greedy, reasoning allowed up to --reasoning-budget tokens (--reasoning "
      "off "
      "switches it off); the letter is read from the answer after the reasoning ('answer is X', 'Answer: X', "
      "a "
      "reply that starts with the letter, or the only standalone A-D), unreadable answers count as wrong and "
      "are "
      "reported. Questions run many at once (--parallel) with the subject's few-shot prefix reused from the "
      "KV "
      "cache. Without --data: $TQLM_DATA/mmlu, else ../shared/data/mmlu.");
  add_model_options(cmd, o->m);
  cmd->add_option("--data", o->data,
                  "MMLU directory with dev/ and test/ (SUBJECT_dev.csv, SUBJECT_test.csv)");
  cmd->add_option("--subjects", o->subjects, "Comma-separated subjects (default: every test file)")
      ->delimiter(',');
  cmd->add_option("--n", o->n, "Questions per subject (0: all), chosen by --seed and kept in file order")
      ->capture_default_str();
  cmd->add_option("--seed", o->seed, "Seed of the question choice")->capture_default_str();
  cmd->add_option("--shots", o->shots, "Dev examples before each question (default: 5 loglik, 0 generate)")
      ->check(CLI::Range(0, 5));
  cmd->add_option("--mode", o->mode, "loglik or generate")
      ->check(CLI::IsMember({"loglik", "generate"}))
      ->capture_default_str();
  cmd->add_option("--reasoning", o->reasoning, "generate: on (thinking allowed) or off")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  cmd->add_option("--reasoning-budget", o->r.reasoning_budget,
                  "generate: reasoning tokens before the engine closes the block (-1: unlimited)")
      ->capture_default_str();
  cmd->add_option("--max-tokens", o->r.max_tokens, "generate: answer length limit (reasoning included)")
      ->capture_default_str();
  cmd->add_option("--parallel", o->r.parallel, "Questions in flight at once")->capture_default_str();
  cmd->add_option("--kv-mem", o->kv_mem, "KV pool budget, e.g. 4GB (default: half the available memory)");
  cmd->add_option("--save-prompts", o->save_prompts, "Write each question's prompt token ids (JSON lines)");
  cmd->add_flag("--json", o->json, "Print per-question records and the scores as JSON");
  cmd->callback([o] {
    if (o->n < 0 || o->r.parallel < 1 || o->r.max_tokens < 1 || o->r.reasoning_budget < -1)
      fail("mmlu: --n must be >= 0, --parallel and --max-tokens >= 1, --reasoning-budget >= -1");
    if (o->data.empty()) o->data = default_data_path("mmlu", true);
    if (o->data.empty())
      fail("no MMLU data: pass --data DIR, set TQLM_DATA, or run from a directory with ../shared/data/mmlu");
    o->r.generate = o->mode == "generate";
    o->r.shots = o->shots >= 0 ? o->shots : o->r.generate ? 0 : 5;
    o->r.reasoning = o->reasoning == "on";
    o->r.kv = o->m.kv_spec();
    o->r.ctx = o->m.ctx;
    o->r.kv_mem = o->kv_mem.empty() ? 0 : uint64_t(parse_size(o->kv_mem, "--kv-mem"));
    const auto subjects = load_mmlu(o->data, o->subjects, o->n, o->seed, o->r.shots);
    ChatSession cs({o->m.model, o->m.threads, o->m.kv_spec(), "", false, 1});
    check_loaded_config(cs.model().config(), o->m.ctx);
    const bool tty = stderr_is_tty();
    auto progress = [tty](int64_t done, int64_t total, int64_t correct, double s) {
      const std::string label = fmt::format("mmlu  acc {:.1f}%", 100.0 * double(correct) / double(done));
      if (tty) return progress_line(label, double(done), double(total), s, "questions");
      if (done % 200 != 0 && done != total) return;  // a log: one line per 200 questions
      const double eta = double(total - done) * s / double(done);
      std::fprintf(stderr, "%s  %lld/%lld  %.1f questions/s  ETA %dm%02ds\n", label.c_str(), (long long)done,
                   (long long)total, double(done) / s, int(eta) / 60, int(eta) % 60);
    };
    const MmluResult r = run_mmlu(cs, subjects, o->r, !o->save_prompts.empty(), progress);
    if (!o->save_prompts.empty()) {
      std::string out;
      for (const auto& it : r.items)
        out +=
            nlohmann::json({{"subject", it.subject}, {"index", it.index}, {"ids", it.prompt}}).dump() + "\n";
      write_file_atomic(o->save_prompts, out, "--save-prompts file");
    }
    if (o->json)
      print_json(*o, r);
    else
      print_table(*o, r);
  });
}

}  // namespace tqlm::cli
