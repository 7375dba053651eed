#include "eval/mmlu.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <set>

#include "core/error.h"
#include "core/splitmix.h"
#include "eval/csv_table.h"
#include "runtime/reasoning.h"
#include "runtime/scheduler.h"
#include "tokenizer/tokenizer_regex.h"
#include "tokenizer/utf8.h"

namespace tqlm {

namespace {
namespace fs = std::filesystem;
constexpr const char* kLetters = "ABCD";
constexpr int64_t kMaxQuestions = 1'000'000;  // per file

int parse_answer(const std::string& a, const std::string& file, size_t row) {
  if (a.size() == 1 && a[0] >= '0' && a[0] <= '3') return a[0] - '0';
  if (a.size() == 1 && a[0] >= 'A' && a[0] <= 'D') return a[0] - 'A';
  fail("{}: row {}: answer must be 0-3 or A-D (got '{}')", file, row + 1, a.substr(0, 32));
}

std::vector<MmluQuestion> read_questions(const fs::path& file) {
  CsvLimits lim;
  lim.max_file_bytes = uint64_t(64) << 20;
  lim.max_rows = kMaxQuestions;
  lim.max_fields = 16;
  lim.max_field_bytes = 64 << 10;
  const auto rows = read_csv(file.string(), "MMLU file", lim);
  std::vector<MmluQuestion> out;
  for (size_t r = 0; r < rows.size(); ++r) {
    const auto& f = rows[r];
    if (r == 0 && !f.empty() && f[0] == "question") continue;  // the header
    if (f.size() != 6)
      fail("{}: row {} has {} fields, expected 6 (question, 4 choices, answer)", file.string(), r + 1,
           f.size());
    MmluQuestion q;
    q.question = f[0];
    for (int c = 0; c < 4; ++c) q.choices[size_t(c)] = f[size_t(c) + 1];
    q.answer = parse_answer(f[5], file.string(), r);
    q.index = int64_t(out.size());
    for (const std::string& s : f) utf8::validate(s, file.string());
    out.push_back(std::move(q));
  }
  return out;
}

// n of the questions chosen by a seeded Fisher-Yates shuffle, back in file order.
std::vector<MmluQuestion> choose(std::vector<MmluQuestion> qs, int64_t n, uint64_t seed,
                                 const std::string& name) {
  if (n <= 0 || n >= int64_t(qs.size())) return qs;
  uint64_t s = seed;
  for (char c : name) s = s * 131 + uint8_t(c);  // each subject its own draw
  for (size_t i = qs.size() - 1; i > 0; --i) std::swap(qs[i], qs[splitmix64_next(s) % (i + 1)]);
  qs.resize(size_t(n));
  std::sort(qs.begin(), qs.end(), [](const auto& a, const auto& b) { return a.index < b.index; });
  return qs;
}

std::string subject_words(const std::string& name) {
  std::string s = name;
  std::replace(s.begin(), s.end(), '_', ' ');
  return s;
}

std::string question_block(const MmluQuestion& q) {
  std::string s = q.question;
  for (int c = 0; c < 4; ++c) s += fmt::format("\n{}. {}", kLetters[c], q.choices[size_t(c)]);
  return s;
}

// The letter in a regex match: the last capital A-D (patterns end with the letter, optionally ")").
int last_letter(std::string_view m) {
  for (size_t i = m.size(); i-- > 0;)
    if (m[i] >= 'A' && m[i] <= 'D') return m[i] - 'A';
  return -1;
}
}  // namespace

double MmluSubjectScore::se() const {
  if (n == 0) return 0;
  const double p = acc();
  return std::sqrt(p * (1 - p) / double(n));
}

std::vector<MmluSubject> load_mmlu(const std::string& dir, const std::vector<std::string>& subjects,
                                   int64_t n, uint64_t seed, int shots) {
  const fs::path test_dir = fs::path(dir) / "test", dev_dir = fs::path(dir) / "dev";
  std::error_code ec;
  if (!fs::is_directory(test_dir, ec))
    fail("{}: no test/ directory (an MMLU directory has dev/ and test/)", dir);
  std::set<std::string> available;
  for (const auto& e : fs::directory_iterator(test_dir, ec)) {
    const std::string f = e.path().filename().string();
    if (f.size() > 9 && f.compare(f.size() - 9, 9, "_test.csv") == 0)
      available.insert(f.substr(0, f.size() - 9));
  }
  if (available.empty()) fail("{}: no SUBJECT_test.csv files", test_dir.string());
  std::vector<std::string> names =
      subjects.empty() ? std::vector<std::string>(available.begin(), available.end()) : subjects;
  std::vector<MmluSubject> out;
  for (const std::string& name : names) {
    if (!available.count(name)) {
      std::string list;
      for (const auto& a : available) list += (list.empty() ? "" : ", ") + a;
      fail("--subjects: no test file for '{}' in {} (available: {})", name, test_dir.string(), list);
    }
    MmluSubject s;
    s.name = name;
    s.test = choose(read_questions(test_dir / (name + "_test.csv")), n, seed, name);
    if (s.test.empty()) fail("{}: no questions", (test_dir / (name + "_test.csv")).string());
    if (shots > 0) {
      const fs::path dev = dev_dir / (name + "_dev.csv");
      if (!fs::exists(dev, ec))
        fail("{}: missing: --shots {} needs the subject's dev examples", dev.string(), shots);
      s.dev = read_questions(dev);
      if (int64_t(s.dev.size()) < shots)
        fail("{}: {} dev examples, fewer than --shots {}", dev.string(), s.dev.size(), shots);
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::string mmlu_loglik_prompt(const MmluSubject& s, const MmluQuestion& q, int shots) {
  std::string p = fmt::format("The following are multiple choice questions (with answers) about {}.\n\n",
                              subject_words(s.name));
  for (int i = 0; i < shots; ++i)
    p +=
        question_block(s.dev[size_t(i)]) + fmt::format("\nAnswer: {}\n\n", kLetters[s.dev[size_t(i)].answer]);
  return p + question_block(q) + "\nAnswer:";
}

int mmlu_extract_letter(const std::string& raw) {
  std::string text = utf8::lossy(raw);
  const size_t close = text.rfind("</think>");
  if (close != std::string::npos)
    text = text.substr(close + 8);
  else if (text.find("<think>") != std::string::npos)
    return -1;  // still reasoning when it stopped
  static const Regex answer_is(R"((?i:answer\s+is)\s*:?\s*\(?[A-D]\b)", "mmlu answer-is rule");
  static const Regex answer_colon(R"(Answer\s*:\s*\(?[A-D]\b)", "mmlu Answer: rule");
  static const Regex leading(R"(^\s*\(?[A-D](?:[.):]|\s|$))", "mmlu leading-letter rule");
  static const Regex lone(R"(\b[A-D]\b)", "mmlu lone-letter rule");
  std::vector<std::pair<size_t, size_t>> m;
  for (const Regex* r : {&answer_is, &answer_colon}) {
    m.clear();
    r->find_all(text, m);
    if (!m.empty())
      return last_letter(std::string_view(text).substr(m.back().first, m.back().second - m.back().first));
  }
  m.clear();
  leading.find_all(text, m);
  if (!m.empty() && m[0].first == 0) {
    for (size_t i = m[0].first; i < m[0].second; ++i)
      if (text[i] >= 'A' && text[i] <= 'D') return text[i] - 'A';
  }
  m.clear();
  lone.find_all(text, m);
  std::set<char> seen;
  for (const auto& [a, b] : m) seen.insert(text[a]);
  return seen.size() == 1 ? *seen.begin() - 'A' : -1;
}

MmluResult run_mmlu(ChatSession& cs, const std::vector<MmluSubject>& subjects, const MmluOptions& opt,
                    bool keep_prompts, const MmluProgress& progress) {
  Model& model = cs.model();
  const Tokenizer& tok = cs.tokenizer();
  const int64_t vocab = model.config().vocab;
  std::array<int32_t, 4> letter_ids{};
  if (!opt.generate)
    for (int c = 0; c < 4; ++c) {
      const auto ids = tok.encode(std::string(" ") + kLetters[c]);
      if (ids.size() != 1)
        fail("mmlu loglik: \" {}\" is {} tokens in this tokenizer, not one (use --mode generate)",
             kLetters[c], ids.size());
      letter_ids[size_t(c)] = ids[0];
    }

  // Every question's prompt, in subject order.
  MmluResult res;
  std::vector<std::vector<int32_t>> prompts;
  for (const MmluSubject& s : subjects)
    for (const MmluQuestion& q : s.test) {
      MmluItem it;
      it.subject = s.name;
      it.index = q.index;
      it.answer = q.answer;
      if (!opt.generate) {
        prompts.push_back(cs.encode_raw(mmlu_loglik_prompt(s, q, opt.shots)));
      } else {
        nlohmann::ordered_json msgs = nlohmann::ordered_json::array();
        const std::string head =
            fmt::format("The following is a multiple choice question about {}.\n\n", subject_words(s.name));
        const std::string tail = "\n\nAnswer with the letter of the correct choice (A, B, C or D).";
        for (int i = 0; i < opt.shots; ++i) {
          msgs.push_back({{"role", "user"}, {"content", head + question_block(s.dev[size_t(i)]) + tail}});
          msgs.push_back({{"role", "assistant"},
                          {"content", fmt::format("Answer: {}", kLetters[s.dev[size_t(i)].answer])}});
        }
        msgs.push_back({{"role", "user"}, {"content", head + question_block(q) + tail}});
        nlohmann::ordered_json kwargs = nlohmann::ordered_json::object();
        if (!opt.reasoning) kwargs["enable_thinking"] = false;
        prompts.push_back(cs.encode_chat(msgs, nullptr, true, kwargs));
      }
      it.prompt_tokens = int64_t(prompts.back().size());
      res.items.push_back(std::move(it));
    }

  SchedulerOptions so;
  so.max_seqs = std::max<int64_t>(1, opt.parallel);
  so.ctx = opt.ctx;
  auto pool = model.new_pool(opt.kv, opt.kv_mem ? opt.kv_mem : default_kv_budget());
  Scheduler sched(model, pool, &tok, so);
  std::map<int64_t, size_t> item_of;  // scheduler id -> item
  const int64_t total = int64_t(res.items.size());
  int64_t next = 0, done = 0, correct = 0;
  const auto t0 = std::chrono::steady_clock::now();
  auto submit = [&](size_t i) {
    RequestParams rp;
    rp.sampling.temperature = 0;  // greedy
    if (!opt.generate) {
      rp.max_tokens = 1;  // the last prompt row's logits are the answer
      MmluItem* it = &res.items[i];
      rp.on_sample_logits = [it, &letter_ids, vocab](const float* lg, int32_t) {
        const float mx = *std::max_element(lg, lg + vocab);
        double se = 0;
        for (int64_t v = 0; v < vocab; ++v) se += std::exp(double(lg[v] - mx));
        const double lse = double(mx) + std::log(se);
        for (int c = 0; c < 4; ++c) it->logprob[size_t(c)] = float(double(lg[letter_ids[size_t(c)]]) - lse);
        it->pred = int(std::max_element(it->logprob.begin(), it->logprob.end()) - it->logprob.begin());
      };
    } else {
      rp.max_tokens = opt.max_tokens;
      const int64_t budget = opt.reasoning ? opt.reasoning_budget : 0;
      if (budget >= 0) {
        const bool inside = ReasoningSplitter::prompt_opens_think(tok.decode_bytes(prompts[i]));
        auto rb = std::make_shared<ReasoningBudget>(tok, budget, inside);
        rp.force_token = [rb](const std::vector<int32_t>& t, int64_t n) { return rb->next(t, n); };
      }
    }
    if (keep_prompts) res.items[i].prompt = prompts[i];
    item_of[sched.submit(std::move(prompts[i]), std::move(rp))] = i;
  };
  // A subject's first question runs alone until it finishes: its prompt's KV blocks (the few-shot prefix
  // shared by the whole subject) are then in the prefix cache for the others.
  std::set<std::string> primed;
  auto fill = [&] {
    while (next < total && int64_t(item_of.size()) < so.max_seqs * 2) {
      const std::string& subj = res.items[size_t(next)].subject;
      const bool first = next == 0 || res.items[size_t(next - 1)].subject != subj;
      if (!first && !primed.count(subj)) return;  // wait for the subject's first question
      submit(size_t(next++));
      if (first) return;
    }
  };
  fill();
  while (!sched.idle()) {
    for (const SeqEvent& e : sched.step()) {
      MmluItem& it = res.items[item_of.at(e.id)];
      it.output += e.text;
      if (!e.finished) continue;
      if (e.finish_reason == "error") fail("mmlu: {}", e.error);
      const SeqStats& st = sched.stats(e.id);
      it.cached_tokens = st.cached_tokens;
      it.generated = st.generated;
      if (opt.generate) it.pred = mmlu_extract_letter(it.output);
      correct += it.pred == it.answer;
      sched.forget(e.id);
      item_of.erase(e.id);
      primed.insert(it.subject);
      ++done;
      fill();
      if (progress)
        progress(done, total, correct,
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
  }
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  std::map<std::string, size_t> at;
  for (const MmluSubject& s : subjects) {
    at[s.name] = res.subjects.size();
    res.subjects.push_back({s.name, 0, 0, 0});
  }
  for (const MmluItem& it : res.items) {
    MmluSubjectScore& sc = res.subjects[at[it.subject]];
    ++sc.n;
    sc.correct += it.pred == it.answer;
    sc.unparsed += it.pred < 0;
    res.prompt_tokens += it.prompt_tokens;
    res.cached_tokens += it.cached_tokens;
  }
  res.overall.name = "overall";
  for (const auto& sc : res.subjects) {
    res.overall.n += sc.n;
    res.overall.correct += sc.correct;
    res.overall.unparsed += sc.unparsed;
    res.macro += sc.acc() / double(res.subjects.size());
  }
  return res;
}

}  // namespace tqlm
