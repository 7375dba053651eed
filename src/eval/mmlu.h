// MMLU: multiple-choice questions over 57 subjects, scored two ways.
//
// Data: an MMLU-format directory with dev/SUBJECT_dev.csv and test/SUBJECT_test.csv (header
// `question,choice0, choice1,choice2,choice3,answer`, answer 0-3; files without the header, as the original
// release has them, are read too). Subjects are the test files present. --n N takes N questions per subject,
// chosen by a seeded shuffle and kept in file order, so runs with the same seed score the same questions.
//
// loglik (base and instruct models; the original paper's prompt):
//   "The following are multiple choice questions (with answers) about {subject}.\n\n"
//   then `shots` dev examples, each "{question}\nA. {c0}\nB. {c1}\nC. {c2}\nD. {c3}\nAnswer: {letter}\n\n",
//   then the question the same way ending in "Answer:". The model's choice is the letter whose token (" A",
//   " B", " C", " D": one token each) has the highest log-probability at the next position.
// generate (chat and reasoning models): the chat template over `shots` earlier turns (user: the question,
//   assistant: "Answer: X") and the question with "Answer with the letter of the correct choice.", greedy, up
//   to max_tokens; reasoning allowed up to a budget (or switched off). The letter is read from the text after
//   the reasoning by mmlu_extract_letter; an answer it cannot read counts as wrong and is reported.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "kv/kv_spec.h"
#include "runtime/chat_session.h"

namespace tqlm {

struct MmluQuestion {
  std::string question;
  std::array<std::string, 4> choices;
  int answer = 0;     // 0..3
  int64_t index = 0;  // row in the test file (0: first question)
};

struct MmluSubject {
  std::string name;  // file stem without _test, e.g. high_school_biology
  std::vector<MmluQuestion> dev, test;
};

// Reads the subjects (all test files when `subjects` is empty), at most n test questions each (0: all).
std::vector<MmluSubject> load_mmlu(const std::string& dir, const std::vector<std::string>& subjects,
                                   int64_t n, uint64_t seed, int shots);

struct MmluOptions {
  bool generate = false;  // false: loglik
  int shots = 5;
  KVSpec kv;
  uint64_t kv_mem = 0;    // pool budget (0: default_kv_budget())
  int64_t parallel = 16;  // questions in flight (batched by the scheduler)
  int64_t ctx = 0;        // context limit (0: the model's)
  // generate mode
  bool reasoning = true;          // false: enable_thinking = false and a reasoning budget of 0
  int64_t reasoning_budget = -1;  // tokens (-1: unlimited)
  int64_t max_tokens = 512;
};

struct MmluItem {
  std::string subject;
  int64_t index = 0;
  int answer = 0, pred = -1;       // pred -1: no letter found (generate)
  std::array<float, 4> logprob{};  // loglik: log-probabilities of " A" .. " D"
  int64_t prompt_tokens = 0, cached_tokens = 0, generated = 0;
  std::string output;           // generate: the model's text
  std::vector<int32_t> prompt;  // kept only when asked (keep_prompts)
};

struct MmluSubjectScore {
  std::string name;
  int64_t n = 0, correct = 0, unparsed = 0;
  double acc() const { return n ? double(correct) / double(n) : 0; }
  double se() const;  // binomial standard error sqrt(p(1-p)/n)
};

struct MmluResult {
  std::vector<MmluItem> items;
  std::vector<MmluSubjectScore> subjects;
  MmluSubjectScore overall;  // micro average over every question
  double macro = 0;          // mean of the subjects' accuracies
  double seconds = 0;
  int64_t prompt_tokens = 0, cached_tokens = 0;
};

using MmluProgress = std::function<void(int64_t done, int64_t total, int64_t correct, double seconds)>;

MmluResult run_mmlu(ChatSession& cs, const std::vector<MmluSubject>& subjects, const MmluOptions& opt,
                    bool keep_prompts = false, const MmluProgress& progress = {});

// The loglik prompt text of question q (with `shots` dev examples of its subject).
std::string mmlu_loglik_prompt(const MmluSubject& s, const MmluQuestion& q, int shots);

// The answer letter (0..3) in a generated text, or -1. Reasoning (anything up to the last "</think>") is
// dropped first; an unclosed "<think>" block means no answer. Then, in order: the last "answer is (X)" /
// "answer is: X" (any case), the last "Answer: X", a text that is just the letter ("B", "(B)", "B.", "B)"
// followed by anything), and finally the only standalone capital letter A-D in the text if exactly one
// distinct one appears.
int mmlu_extract_letter(const std::string& text);

}  // namespace tqlm
