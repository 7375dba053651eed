#include "eval/niah.h"

#include "eval/data_path.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "core/error.h"
#include "core/json.h"
#include "core/splitmix.h"
#include "runtime/generator.h"
#include "runtime/sampler.h"

namespace tqlm {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

constexpr int64_t kCharsPerTokenGuess = 6;  // first haystack span guess, bytes per token (doubled when short)
constexpr size_t kMaxStartSkip = 16;        // leading sentences that may be skipped to fill the budget better

uint64_t mix(uint64_t x) {
  return splitmix64(x);
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

// Sentence boundaries in text[begin, end): byte offsets just past each unit, where a unit ends with a
// newline, or with '.', '?' or '!' followed by spaces (included) and then anything but a lowercase letter.
// Returns [begin, b1, b2, ..., bm] (ascending; bm <= end).
std::vector<size_t> sentence_bounds(const std::string& text, size_t begin, size_t end) {
  std::vector<size_t> b = {begin};
  for (size_t i = begin; i < end; ++i) {
    const char c = text[i];
    if (c == '\n') {
      b.push_back(i + 1);
    } else if ((c == '.' || c == '?' || c == '!') && i + 1 < end && text[i + 1] == ' ') {
      size_t j = i + 1;
      while (j < end && text[j] == ' ') ++j;
      if (j < end && text[j] != '\n' && !(text[j] >= 'a' && text[j] <= 'z')) {
        b.push_back(j);
        i = j - 1;
      }
    }
  }
  return b;
}

// Haystack text[b[s], b[n]) with `needle` inserted at boundary b[k] (s <= k <= n), outer whitespace
// trimmed. *needle_at receives the needle's byte offset in the result.
std::string haystack_with_needle(const std::string& text, const std::vector<size_t>& b, size_t s, size_t n,
                                 size_t k, const std::string& needle, size_t* needle_at) {
  std::string before = text.substr(b[s], b[k] - b[s]), after = text.substr(b[k], b[n] - b[k]);
  size_t lead = 0;
  while (lead < before.size() && is_space(before[lead])) ++lead;
  before.erase(0, lead);
  if (before.empty())
    while (!after.empty() && is_space(after.front())) after.erase(0, 1);
  else if (!is_space(before.back()))
    before += ' ';
  while (!after.empty() && is_space(after.back())) after.pop_back();
  std::string out = before + needle;
  if (!after.empty()) out += (is_space(after.front()) ? "" : " ") + after;
  *needle_at = before.size();
  return out;
}

// Boundary index k in [s, n] whose position is closest to depth% of the haystack b[s]..b[n]; `pos`[i]:
// the position of boundary i (cumulative tokens of the sentences before it).
size_t depth_boundary(const std::vector<int64_t>& pos, size_t s, size_t n, double depth) {
  const double target = double(pos[s]) + depth / 100.0 * double(pos[n] - pos[s]);
  size_t k = s;
  for (size_t i = s + 1; i <= n; ++i)
    if (std::abs(double(pos[i]) - target) < std::abs(double(pos[k]) - target)) k = i;
  return k;
}

// Start of the line at or after `pos` (0 when pos is 0 or no later line exists).
size_t line_start(const std::string& text, size_t pos) {
  if (pos == 0 || text[pos - 1] == '\n') return pos;
  const size_t nl = text.find('\n', pos);
  return nl == std::string::npos || nl + 1 >= text.size() ? 0 : nl + 1;
}

// The trial's value: a number of needle.digits digits (leading digit non-zero), or one of needle.values; one
// that does not occur in the haystack file if any of the first 64 draws does not.
std::string niah_value(const NiahNeedle& needle, const std::string& text, uint64_t seed) {
  std::string v;
  for (int i = 0; i < 64; ++i, seed = mix(seed)) {
    if (needle.digits > 0) {
      uint64_t lo = 1;
      for (int d = 1; d < needle.digits; ++d) lo *= 10;
      v = std::to_string(lo + mix(seed) % (9 * lo));
    } else {
      v = needle.values[mix(seed) % needle.values.size()];
    }
    if (text.find(v) == std::string::npos) break;
  }
  return v;
}

std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  return s;
}

nlohmann::ordered_json user_message(const std::string& content) {
  return nlohmann::ordered_json::array({{{"role", "user"}, {"content", content}}});
}

}  // namespace

double NiahPrompt::needle_depth() const {
  const int64_t hay = hay_end_token - hay_begin_token - needle_tokens;
  if (hay <= 0) return 0;
  return std::clamp(double(needle_token - hay_begin_token) / double(hay), 0.0, 1.0);
}

std::vector<NiahNeedle> default_niah_needles() {
  return {{"number",
           "The special magic number is {value}.",
           "What is the special magic number mentioned in the text? Answer with the number only.",
           5,
           {}}};
}

std::vector<NiahNeedle> load_niah_needles(const std::string& path) {
  const auto j = read_json_file_limited<nlohmann::json>(path);
  if (!j.is_array() || j.empty() || j.size() > 1000)
    fail("{}: needles must be a list of 1 to 1000 objects", path);
  std::vector<NiahNeedle> out;
  for (size_t i = 0; i < j.size(); ++i) {
    const auto& e = j[i];
    const std::string at = fmt::format("{}: needle {}", path, i);
    if (!e.is_object()) fail("{}: must be an object", at);
    NiahNeedle n;
    auto str = [&](const char* k, std::string& dst) {
      if (!e.contains(k) || !e[k].is_string() || e[k].get<std::string>().empty() ||
          e[k].get<std::string>().size() > 4096)
        fail("{}: '{}' must be a non-empty string of at most 4096 bytes", at, k);
      dst = e[k].get<std::string>();
    };
    str("sentence", n.sentence);
    str("question", n.question);
    n.name = e.contains("name") && e["name"].is_string() ? e["name"].get<std::string>()
                                                         : fmt::format("needle{}", i);
    const size_t v = n.sentence.find("{value}");
    if (v == std::string::npos || n.sentence.find("{value}", v + 1) != std::string::npos)
      fail("{}: 'sentence' must hold {{value}} exactly once", at);
    const bool has_digits = e.contains("digits"), has_values = e.contains("values");
    if (has_digits == has_values) fail("{}: give either 'digits' or 'values'", at);
    if (has_digits) {
      if (!e["digits"].is_number_integer() || e["digits"].get<int64_t>() < 1 ||
          e["digits"].get<int64_t>() > 18)
        fail("{}: 'digits' must be an integer in [1, 18]", at);
      n.digits = int(e["digits"].get<int64_t>());
    } else {
      if (!e["values"].is_array() || e["values"].empty() || e["values"].size() > 100000)
        fail("{}: 'values' must be a list of 1 to 100000 strings", at);
      for (const auto& x : e["values"]) {
        if (!x.is_string() || x.get<std::string>().empty() || x.get<std::string>().size() > 256)
          fail("{}: 'values' entries must be non-empty strings of at most 256 bytes", at);
        n.values.push_back(x.get<std::string>());
      }
    }
    out.push_back(std::move(n));
  }
  return out;
}

bool niah_contains(const std::string& answer, const std::string& value) {
  std::string plain;  // without digit-group commas ("48,213")
  for (size_t i = 0; i < answer.size(); ++i)
    if (!(answer[i] == ',' && i > 0 && i + 1 < answer.size() && std::isdigit(uint8_t(answer[i - 1])) &&
          std::isdigit(uint8_t(answer[i + 1]))))
      plain += answer[i];
  return lower(plain).find(lower(value)) != std::string::npos;
}

bool niah_exact(const std::string& answer, const std::string& value) {
  size_t a = 0, b = answer.size();
  auto outer = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '"' || c == '\'';
  };
  while (a < b && outer(answer[a])) ++a;
  while (b > a && outer(answer[b - 1])) --b;
  if (b > a && answer[b - 1] == '.') --b;
  while (b > a && outer(answer[b - 1])) --b;
  return lower(answer.substr(a, b - a)) == lower(value);
}

std::string default_niah_haystack() {
  return default_data_path((std::filesystem::path("wikitext-2") / "wiki.test.raw").string(), false);
}

NiahPrompt build_niah_prompt(const ChatSession& cs, const std::string& text, const std::string& name,
                             int64_t budget, double depth, uint64_t offset_seed, uint64_t needle_seed,
                             const NiahNeedle& needle) {
  NiahPrompt p;
  p.kind = needle.name;
  p.value = niah_value(needle, text, needle_seed);
  p.needle = needle.sentence;
  p.needle.replace(p.needle.find("{value}"), 7, p.value);
  const std::string kQuestion = needle.question;

  auto render = [&](const std::string& content, std::string* rendered) {
    return cs.encode_chat(user_message(content), nullptr, true, nlohmann::ordered_json::object(), rendered);
  };
  const std::string tail = std::string("\n\n") + kQuestion;
  const int64_t overhead = int64_t(render(p.needle + tail, nullptr).size());
  if (overhead > budget)
    fail(
        "a prompt budget of {} tokens (context - max_tokens) cannot hold the question: the template, needle "
        "and question alone take {} tokens",
        budget, overhead);

  // Span of text to cut from: starts at a seeded line; doubles until the whole span is over the budget.
  const size_t len = text.size();
  std::vector<size_t> b;     // sentence boundaries, bytes
  std::vector<int64_t> pos;  // [b.size()] tokens of the sentences before each boundary (each tokenized alone)
  size_t span = size_t(budget) * kCharsPerTokenGuess;
  auto count = [&](size_t s, size_t n) {  // prompt tokens with the haystack b[s]..b[n]
    size_t at = 0;
    const std::string hay =
        haystack_with_needle(text, b, s, n, depth_boundary(pos, s, n, depth), p.needle, &at);
    return int64_t(render(hay + tail, nullptr).size());
  };
  for (;;) {
    span = std::min(span, len);
    const size_t start = line_start(text, len > span ? size_t(mix(offset_seed) % (len - span + 1)) : 0);
    b = sentence_bounds(text, start, std::min(len, start + span));
    pos.assign(b.size(), 0);
    for (size_t i = 1; i < b.size(); ++i) {
      const std::string_view sentence = std::string_view(text).substr(b[i - 1], b[i] - b[i - 1]);
      pos[i] = pos[i - 1] + int64_t(cs.tokenizer().encode(sentence).size());
    }
    const size_t m = b.size() - 1;
    if (m > 0 && count(0, m) > budget) break;
    if (span >= len)
      fail(
          "{}: too short as a haystack: all of its {} bytes make a prompt of {} tokens, fewer than the {} "
          "needed",
          name, len, m > 0 ? count(0, m) : overhead, budget);
    span *= 2;
  }

  // The sentences b[s]..b[n] that fill the budget best: the longest fitting run from each of the first few
  // starting sentences (binary search on n), until one comes within 0.5% of the budget.
  const size_t m = b.size() - 1;
  size_t best_s = 0, best_n = 0;
  int64_t best = -1;
  for (size_t s = 0; s < std::min<size_t>(m, kMaxStartSkip) && best < budget - budget / 200; ++s) {
    if (count(s, m) <= budget) break;  // too little text left after s
    size_t lo = s, hi = m;             // count(lo) <= budget < count(hi)
    while (hi - lo > 1) {
      const size_t mid = lo + (hi - lo) / 2;
      (count(s, mid) <= budget ? lo : hi) = mid;
    }
    if (const int64_t c = count(s, lo); c > best) best = c, best_s = s, best_n = lo;
  }
  p.haystack_offset = int64_t(b[best_s]);

  size_t needle_at = 0;
  const size_t k = depth_boundary(pos, best_s, best_n, depth);
  const std::string hay = haystack_with_needle(text, b, best_s, best_n, k, p.needle, &needle_at);
  const std::string content = hay + tail;
  p.ids = render(content, &p.rendered);
  p.haystack_chars = int64_t(hay.size() - p.needle.size());

  // Token positions of the parts: tokens of the rendered text's prefixes (+ a BOS the encoding added).
  const size_t at = p.rendered.find(content);
  if (at == std::string::npos) fail("the chat template changed the message text; cannot locate the haystack");
  const Tokenizer& tok = cs.tokenizer();
  const int64_t bos = int64_t(p.ids.size()) - int64_t(tok.encode(p.rendered, false).size());
  auto tokens_before = [&](size_t pos) {
    return bos + int64_t(tok.encode(p.rendered.substr(0, pos), false).size());
  };
  p.needle_char = int64_t(at + needle_at);
  p.hay_begin_token = tokens_before(at);
  p.hay_end_token = tokens_before(at + hay.size());
  p.needle_token = tokens_before(at + needle_at);
  p.needle_tokens = tokens_before(at + needle_at + p.needle.size()) - p.needle_token;
  return p;
}

NiahResult run_niah(ChatSession& cs, const std::string& text, const NiahOptions& opt,
                    const NiahProgress& progress) {
  if (opt.contexts.empty() || opt.depths.empty()) fail("niah needs at least one context and one depth");
  if (opt.max_tokens < 1) fail("--max-tokens must be at least 1 (got {})", opt.max_tokens);
  for (double d : opt.depths)
    if (!(d >= 0 && d <= 100)) fail("--depths: {} is not a percentage in [0, 100]", d);
  const int64_t max_pos = cs.model().config().max_position;
  for (int64_t c : opt.contexts) {
    if (c <= opt.max_tokens)
      fail("--contexts: {} tokens leave no room for the prompt (answer budget {})", c, opt.max_tokens);
    if (opt.ctx_limit > 0 && c > opt.ctx_limit)
      fail("--contexts: {} exceeds the --ctx limit of {} tokens", c, opt.ctx_limit);
    if (opt.ctx_limit <= 0 && max_pos > 0 && c > max_pos)
      fail("--contexts: {} exceeds the model's max_position_embeddings of {} tokens", c, max_pos);
  }

  if (opt.trials < 1 || opt.trials > 1000) fail("--trials must be in [1, 1000] (got {})", opt.trials);
  if (opt.needles.empty()) fail("niah needs at least one needle");
  NiahResult r;
  SamplingParams sp;
  sp.temperature = 0;  // greedy
  const size_t total = opt.contexts.size() * opt.depths.size() * size_t(opt.trials);
  const auto t0 = Clock::now();
  for (int64_t c : opt.contexts)
    for (double d : opt.depths)
      for (int i = 0; i < opt.trials; ++i) {
        // trial 0 keeps the single-trial seeds: its haystack depends on the seed and the context only
        const uint64_t offset_seed = mix(opt.seed ^ mix(uint64_t(c)) ^ (i ? mix(uint64_t(i) << 32) : 0));
        NiahTrial t;
        t.context_target = c;
        t.depth = d;
        t.trial = i;
        const uint64_t needle_seed = mix(offset_seed ^ mix(uint64_t(d * 1000) + 1));
        t.prompt = build_niah_prompt(cs, text, opt.haystack_name, c - opt.max_tokens, d, offset_seed,
                                     needle_seed, opt.needles[size_t(i) % opt.needles.size()]);
        t.prompt_tokens = int64_t(t.prompt.ids.size());
        if (opt.dry_run) {
          if (!opt.keep_prompts) t.prompt.rendered.clear();
          r.trials.push_back(std::move(t));
          if (progress) progress(r.trials.back(), r.trials.size(), total);
          continue;
        }

        // A fresh cache per trial: prefill alone (max_tokens 0) to measure the cache, then the answer (the
        // generator reuses the prefilled prompt and recomputes only its last token).
        Generator gen(cs.model(), cs.tokenizer(), opt.kv);
        Sampler sampler(sp);
        GenerateOptions g;
        g.ctx = c;
        g.max_tokens = 0;
        const auto t1 = Clock::now();
        const GenerateStats pst =
            gen.generate(t.prompt.ids, sampler, g, [](const std::string&) { return true; });
        t.prefill_seconds = since(t1);
        t.kv_bytes = pst.kv_bytes;
        t.kv_tokens = pst.kv_tokens;
        if (r.kv_mode.empty())
          r.kv_mode = gen.kv_layout().mode, r.kv_bytes_per_token = double(gen.kv_layout().bytes_per_token());
        g.max_tokens = opt.max_tokens;
        gen.generate(t.prompt.ids, sampler, g, [&](const std::string& s) {
          t.answer += s;
          return true;
        });
        t.seconds = since(t1);

        t.pass_contains = niah_contains(t.answer, t.prompt.value);
        t.pass_exact = niah_exact(t.answer, t.prompt.value);
        t.pass = opt.exact ? t.pass_exact : t.pass_contains;
        r.passed += t.pass;
        if (!opt.keep_prompts) t.prompt.rendered.clear();
        r.trials.push_back(std::move(t));
        if (progress) progress(r.trials.back(), r.trials.size(), total);
      }
  r.seconds = since(t0);
  if (r.kv_mode.empty()) r.kv_mode = opt.kv.mode;  // dry run: no cache was made
  return r;
}

}  // namespace tqlm
