// Needle in a haystack: does the model still find one fact in a long context (and does a compressed KV
// cache keep it findable)?
//
// For each (context, depth) trial: consecutive text of the haystack file, from a line chosen by the seed
// (or one of the next few sentences), is cut at whole sentences so that the chat-formatted prompt (template
// + haystack with the needle + question) fills the target context minus the answer budget (max_tokens),
// usually within 0.5% (at most one sentence) below it. The starting line depends on the seed and the
// context only (not on the depth or the KV mode). The
// needle "The special magic number is NNNNN." (5 random digits per trial) is inserted at the sentence
// boundary closest to depth% of the haystack. The question asks for the number; the answer is decoded
// greedily (temperature 0, at most max_tokens tokens) from an empty cache; the trial passes when the number
// appears in the answer.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "kv/kv_spec.h"
#include "runtime/chat_session.h"

namespace tqlm {

// A kind of needle: a sentence holding a value, and the question that asks for it. The value is a random
// number of `digits` digits, or one of `values`; either way one that does not occur in the haystack file when
// possible (chosen by the trial's seed).
struct NiahNeedle {
  std::string name;                 // e.g. "number"
  std::string sentence;             // with "{value}": "The special magic number is {value}."
  std::string question;             // "What is the special magic number mentioned in the text? ..."
  int digits = 0;                   // 1..18, or 0 when `values` is used
  std::vector<std::string> values;  // candidate values (used when digits == 0)
};

// The default needle: "The special magic number is NNNNN." (5 digits).
std::vector<NiahNeedle> default_niah_needles();
// Needles from a JSON file: [{"name", "sentence" (with {value}), "question", "digits" | "values"}, ...];
// every field checked, errors naming the file and the entry.
std::vector<NiahNeedle> load_niah_needles(const std::string& path);

struct NiahOptions {
  std::vector<int64_t> contexts = {1024, 2048, 4096, 8192};  // target context lengths, tokens
  std::vector<double> depths = {10, 50, 90};                 // needle position, % of the haystack
  int trials = 1;  // trials per (context, depth) cell; trial i uses needle i mod needles.size()
  std::vector<NiahNeedle> needles = default_niah_needles();
  bool exact = false;     // pass = exact match (else: the answer contains the value)
  uint64_t seed = 0;      // haystack offsets and needle values
  int max_tokens = 16;    // answer budget, tokens (part of the context)
  int64_t ctx_limit = 0;  // --ctx; 0: the model's max_position_embeddings
  KVSpec kv;
  bool keep_prompts = false;                   // store each rendered prompt in its trial
  bool dry_run = false;                        // build the prompts only (no model run)
  std::string haystack_name = "the haystack";  // names the haystack text in errors
};

// One rendered trial prompt and where its parts lie.
struct NiahPrompt {
  std::vector<int32_t> ids;     // the full prompt, tokens
  std::string rendered;         // chat-template output (text of `ids`)
  std::string kind;             // the needle's name
  std::string needle;           // "The special magic number is 48213."
  std::string value;            // "48213"
  int64_t haystack_offset = 0;  // byte offset in the file where the haystack's first sentence starts
  int64_t haystack_chars = 0;   // bytes of haystack text used (without the needle)
  int64_t needle_char = 0;      // byte offset of the needle in `rendered`
  int64_t hay_begin_token = 0;  // tokens of `rendered` before the haystack
  int64_t hay_end_token = 0;    // tokens of `rendered` up to the end of the haystack (needle included)
  int64_t needle_token = 0;     // tokens of `rendered` before the needle
  int64_t needle_tokens = 0;    // tokens of the needle itself
  // Achieved depth: haystack tokens before the needle / haystack tokens (needle excluded), in [0, 1].
  double needle_depth() const;
};

struct NiahTrial {
  int64_t context_target = 0;  // requested context, tokens
  int64_t prompt_tokens = 0;   // actual prompt length, tokens
  double depth = 0;            // requested depth, %
  NiahPrompt prompt;           // `prompt.rendered` is emptied unless keep_prompts
  int trial = 0;               // index within its cell
  std::string answer;          // generated text
  bool pass = false;           // by the chosen score (opt.exact)
  bool pass_contains = false;  // the answer contains the value (digit-group commas ignored, any case)
  bool pass_exact =
      false;           // the answer is the value (outer spaces, quotes and a final '.' ignored; any case)
  double seconds = 0;  // prefill + answer, wall clock
  double prefill_seconds = 0;
  uint64_t kv_bytes = 0;  // cache bytes held after the prefill
  int64_t kv_tokens = 0;  // tokens in the cache after the prefill
};

struct NiahResult {
  std::vector<NiahTrial> trials;  // contexts outer, depths, then trials inner, in option order
  int passed = 0;
  std::string kv_mode;            // the cache's own name for its mode
  double kv_bytes_per_token = 0;  // the cache's bytes per token over all layers
  double seconds = 0;
};

// A haystack file found without --haystack, or "" when none: $TQLM_DATA (a file, or a data directory
// holding wikitext-2/wiki.test.raw), then ../shared/data/wikitext-2/wiki.test.raw from the current
// directory, then the same relative to the repository holding the executable (<repo>/<build>/tqlm).
std::string default_niah_haystack();

// Builds the prompt of one trial. `text`: the whole haystack file (`name` in errors); `budget`: most prompt
// tokens allowed; `depth`: %; the seeds choose the starting line and the needle's value. Throws when the
// text is too short for the budget or the budget cannot hold the question.
NiahPrompt build_niah_prompt(const ChatSession& cs, const std::string& text, const std::string& name,
                             int64_t budget, double depth, uint64_t offset_seed, uint64_t needle_seed,
                             const NiahNeedle& needle = default_niah_needles()[0]);

// The two scores of an answer for a value.
bool niah_contains(const std::string& answer, const std::string& value);
bool niah_exact(const std::string& answer, const std::string& value);

using NiahProgress = std::function<void(const NiahTrial& trial, size_t done, size_t total)>;

// Checks every context against the limit and every depth against [0, 100], then runs all trials, each
// with a fresh cache of mode opt.kv over cs's model. `text`: the haystack file's contents.
NiahResult run_niah(ChatSession& cs, const std::string& text, const NiahOptions& opt,
                    const NiahProgress& progress = {});

}  // namespace tqlm
