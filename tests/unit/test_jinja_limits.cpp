// Hostile templates and contexts: every limit of template/jinja_limits.h (and core/json.h) ends in a
// tqlm::Error naming it, never a stack overflow, a trap, a hang or unbounded memory.
#include <gtest/gtest.h>
#include <malloc.h>
#if defined(__SANITIZE_ADDRESS__)
extern "C" size_t __sanitizer_get_current_allocated_bytes();  // ASan's malloc: mallinfo2 does not see it
#endif

#include <cstdint>
#include <string>

#include "core/error.h"
#include "core/json.h"
#include "template/jinja.h"
#include "template/jinja_limits.h"

using namespace tqlm;
using namespace tqlm::jinja;

namespace {

std::string render(std::string_view src, const Value& ctx = Value::make_dict()) {
  Template t(src);
  return t.render(ctx);
}

// The error of parsing and rendering `src`, or "<no error>".
std::string error_of(std::string_view src, const Value& ctx = Value::make_dict()) {
  try {
    render(src, ctx);
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

std::string repeat(std::string_view s, size_t n) {
  std::string out;
  for (size_t k = 0; k < n; ++k) out += s;
  return out;
}

std::string nested(std::string_view open, std::string_view inner, std::string_view close, size_t n) {
  return repeat(open, n) + std::string(inner) + repeat(close, n);
}

constexpr size_t kDeep = 100000;

}  // namespace

TEST(JinjaLimits, DeepExpressionsAreSyntaxErrors) {
  const char* kWhy = "kMaxNesting";
  EXPECT_NE(error_of("{{ " + nested("(", "1", ")", kDeep) + " }}").find(kWhy), std::string::npos);
  EXPECT_NE(error_of("{{ " + nested("[", "1", "]", kDeep) + " }}").find(kWhy), std::string::npos);
  EXPECT_NE(error_of("{{ " + nested("{'a': ", "1", "}", kDeep) + " }}").find(kWhy), std::string::npos);
  EXPECT_NE(error_of("{{ " + nested("f(", "1", ")", kDeep) + " }}").find(kWhy), std::string::npos);
  EXPECT_NE(error_of("{{ " + repeat("not ", kDeep) + "1 }}").find(kWhy), std::string::npos);
  EXPECT_NE(error_of("{{ " + repeat("- ", kDeep) + "1 }}").find(kWhy), std::string::npos);
  EXPECT_NE(error_of("{{ 1" + repeat(" if 1 else 1", kDeep) + " }}").find(kWhy), std::string::npos);
  // Chains are parsed by loops but make trees as deep as they are long.
  EXPECT_NE(error_of("{{ 1" + repeat(" + 1", kDeep) + " }}").find(kWhy), std::string::npos);
  EXPECT_NE(error_of("{{ 1" + repeat(" * 1", kDeep) + " }}").find(kWhy), std::string::npos);
  EXPECT_NE(error_of("{{ 2" + repeat(" ** 1", kDeep) + " }}").find(kWhy), std::string::npos);
  EXPECT_NE(error_of("{{ 1" + repeat(" and 1", kDeep) + " }}").find(kWhy), std::string::npos);
  EXPECT_NE(error_of("{{ x" + repeat(".a", kDeep) + " }}").find(kWhy), std::string::npos);
  EXPECT_NE(error_of("{{ x" + repeat("[0]", kDeep) + " }}").find(kWhy), std::string::npos);
  EXPECT_NE(error_of("{{ x" + repeat("()", kDeep) + " }}").find(kWhy), std::string::npos);
  EXPECT_NE(error_of("{{ 'a'" + repeat(" | trim", kDeep) + " }}").find(kWhy), std::string::npos);
  // The message names the line.
  EXPECT_NE(error_of("\n\n{{ " + nested("(", "1", ")", 1000) + " }}").find("line 3"), std::string::npos);
}

TEST(JinjaLimits, DeepStatementsAreSyntaxErrors) {
  const char* kWhy = "kMaxNesting";
  EXPECT_NE(error_of(nested("{% if 1 %}", "x", "{% endif %}", kDeep)).find(kWhy), std::string::npos);
  EXPECT_NE(error_of(nested("{% for i in [1] %}", "x", "{% endfor %}", kDeep)).find(kWhy), std::string::npos);
  EXPECT_NE(error_of("{% if 0 %}" + repeat("{% elif 0 %}", kDeep) + "{% endif %}").find(kWhy),
            std::string::npos);
  EXPECT_NE(error_of(nested("{% macro m() %}", "", "{% endmacro %}", kDeep)).find(kWhy), std::string::npos);
  // Unclosed: the nesting limit comes first, not a stack overflow.
  EXPECT_NE(error_of(repeat("{% if 1 %}", kDeep)).find(kWhy), std::string::npos);
}

TEST(JinjaLimits, NestingBelowTheLimitRenders) {
  EXPECT_EQ(render("{{ " + nested("(", "7", ")", kMaxNesting / 2) + " }}"), "7");
  EXPECT_EQ(render(nested("{% if 1 %}", "x", "{% endif %}", kMaxNesting / 2)), "x");
  EXPECT_EQ(render("{{ 0" + repeat(" + 1", kMaxNesting / 2) + " }}"), std::to_string(kMaxNesting / 2));
  // `~` chains are flat: any length.
  EXPECT_EQ(render("{{ 'a'" + repeat(" ~ 'a'", kDeep) + " }}").size(), kDeep + 1);
  // Deep blocks with deep expressions inside: the render depth still fits the stack.
  std::string deep_expr = "{{ " + nested("[", "1", "]", kMaxNesting / 2 - 2) + "|length }}";
  EXPECT_EQ(render(nested("{% for i in [1] %}", deep_expr, "{% endfor %}", kMaxNesting / 2 - 2)), "1");
}

TEST(JinjaLimits, DeepValuesFailWhenWalkedAndFreeWithoutRecursion) {
  // A list nested 100,000 deep, built one level per iteration (range() allows 100,000).
  std::string build =
      "{% set ns = namespace(x=1) %}{% for i in range(100000) %}{% set ns.x = [ns.x] %}{% endfor %}";
  EXPECT_NE(error_of(build + "{{ ns.x }}").find("kMaxValueDepth"), std::string::npos);
  EXPECT_NE(error_of(build + "{{ ns.x|tojson }}").find("kMaxValueDepth"), std::string::npos);
  EXPECT_NE(error_of(build + "{{ ns.x == ns.x }}").find("kMaxValueDepth"), std::string::npos);
  EXPECT_NE(error_of(build + "{{ ns.x < ns.x }}").find("kMaxValueDepth"), std::string::npos);
  EXPECT_EQ(render(build + "{{ ns.x|length }}"), "1");  // built and freed
  // Closures capturing dicts capturing closures, 100,000 deep, freed at the end of the render.
  EXPECT_EQ(
      render("{% set ns = namespace(f=none) %}{% for i in range(100000) %}{% set ns.f = {'a': ns.f}.get %}"
             "{% endfor %}{{ ns.f('a') is callable }}"),
      "True");
  // A namespace holding itself.
  EXPECT_NE(error_of("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}").find("kMaxValueDepth"),
            std::string::npos);
  // Macro recursion.
  EXPECT_NE(error_of("{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(0) }}").find("kMaxMacroDepth"),
            std::string::npos);
  EXPECT_NE(error_of("{% macro m(n) %}{{ (((m(n + 1)))) }}{% endmacro %}{{ m(0) }}").find("template limit"),
            std::string::npos);
}

TEST(JinjaLimits, DeepJson) {
  std::string deep = nested("[", "1", "]", 30000);
  try {
    parse_json_limited(deep, "messages file m.json");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(
                  "messages file m.json: JSON nested deeper than the limit kMaxJsonDepth = 512"),
              std::string::npos)
        << e.what();
  }
  EXPECT_NO_THROW(parse_json_limited(nested("{\"a\": ", "1", "}", kMaxJsonDepth), "x"));
  EXPECT_THROW(parse_json_limited(nested("{\"a\": ", "1", "}", kMaxJsonDepth + 1), "x"), Error);
  // Brackets inside strings do not count; escaped quotes do not end a string.
  EXPECT_NO_THROW(parse_json_limited("[\"" + repeat("[", 10000) + "\\\"" + repeat("{", 10000) + "\"]", "x"));
  EXPECT_THROW(parse_json_limited("[1,", "x"), Error);
  // A deep document made in code reaches the template as an error too.
  nlohmann::ordered_json j = 1;
  for (int k = 0; k < 5000; ++k) j = nlohmann::ordered_json::array({std::move(j)});
  EXPECT_THROW(from_json(j), Error);
}

TEST(JinjaLimits, IntegerOverflowIsAnError) {
  const std::string min = "(-9223372036854775807 - 1)";
  EXPECT_EQ(render("{{ " + min + " }}"), "-9223372036854775808");
  EXPECT_NE(error_of("{{ " + min + " // -1 }}").find("integer overflow"), std::string::npos);
  EXPECT_EQ(render("{{ " + min + " % -1 }}"), "0");
  EXPECT_EQ(render("{{ 7 // -1 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ -7 // 2 }}"), "-7 2 -2 -4");
  EXPECT_NE(error_of("{{ 9223372036854775807 + 1 }}").find("integer overflow: 9223372036854775807 + 1"),
            std::string::npos);
  EXPECT_NE(error_of("{{ " + min + " - 1 }}").find("integer overflow"), std::string::npos);
  EXPECT_NE(error_of("{{ 4611686018427387904 * 2 }}").find("integer overflow"), std::string::npos);
  EXPECT_NE(error_of("{{ 2 ** 63 }}").find("integer overflow"), std::string::npos);
  EXPECT_NE(error_of("{{ 3 ** 9223372036854775807 }}").find("integer overflow"), std::string::npos);
  EXPECT_NE(error_of("{{ -" + min + " }}").find("integer overflow"), std::string::npos);
  EXPECT_NE(error_of("{{ " + min + "|abs }}").find("integer overflow"), std::string::npos);
  EXPECT_NE(error_of("{{ [1, 2]|sum(start=9223372036854775807) }}").find("integer overflow"),
            std::string::npos);
  EXPECT_NE(error_of("{{ 9223372036854775808 }}").find("does not fit in 64 bits"), std::string::npos);
  EXPECT_NE(error_of("{{ '99999999999999999999'|int }}").find("does not fit"), std::string::npos);
  EXPECT_NE(error_of("{{ 1e300|int }}").find("does not fit"), std::string::npos);
  EXPECT_EQ(
      render(
          "{{ (-2) ** 63 }} {{ 2 ** 62 }} {{ 1 ** 9223372036854775807 }} {{ (-1) ** 9223372036854775807 }}"),
      "-9223372036854775808 4611686018427387904 1 -1");
  // Index arithmetic at the ends of int64 stays in range.
  EXPECT_EQ(render("{{ range(9223372036854775806, 9223372036854775807, 10)|list }}"),
            "[9223372036854775806]");
  EXPECT_EQ(render("{{ [1, 2, 3][1::9223372036854775807] }}"), "[2]");
  EXPECT_EQ(render("{{ 1.5|round(99999999999) }}"), "1.5");
}

TEST(JinjaLimits, RepetitionAndSizes) {
  EXPECT_NE(error_of("{{ 'x' * 1000000000 }}").find("kMaxStringBytes"), std::string::npos);
  EXPECT_NE(error_of("{{ 1000000000 * 'xy' }}").find("kMaxStringBytes"), std::string::npos);
  EXPECT_NE(error_of("{{ ([1] * 1000000000)|length }}").find("kMaxListItems"), std::string::npos);
  EXPECT_NE(error_of("{{ ((1, 2) * 9223372036854775807)|length }}").find("kMaxListItems"), std::string::npos);
  EXPECT_EQ(render("{{ 'ab' * -3 }}|{{ [1] * 0 }}"), "|[]");
  std::string big = "{% set s = 'x' * 40000000 %}";
  EXPECT_NE(error_of(big + "{{ (s ~ s)|length }}").find("kMaxStringBytes"), std::string::npos);
  EXPECT_NE(error_of(big + "{{ (s + s)|length }}").find("kMaxStringBytes"), std::string::npos);
  EXPECT_NE(error_of(big + "{{ [s, s]|join|length }}").find("kMaxStringBytes"), std::string::npos);
  EXPECT_NE(error_of(big + "{{ ['', '', '']|join(s)|length }}").find("kMaxStringBytes"), std::string::npos);
  EXPECT_NE(error_of(big + "{{ 'xx'.replace('x', s)|length }}").find("kMaxStringBytes"), std::string::npos);
  EXPECT_NE(error_of(big + "{{ '{0}{0}'.format(s)|length }}").find("kMaxStringBytes"), std::string::npos);
  EXPECT_NE(error_of(big + "{{ ('%s%s' % (s, s))|length }}").find("kMaxStringBytes"), std::string::npos);
  EXPECT_NE(error_of(big + "{{ [s, s]|string|length }}").find("kMaxStringBytes"), std::string::npos);
  EXPECT_NE(error_of(big + "{{ [s, s]|tojson|length }}").find("kMaxStringBytes"), std::string::npos);
  EXPECT_NE(error_of("{{ 'x'|center(1000000000000) }}").find("kMaxStringBytes"), std::string::npos);
  EXPECT_NE(error_of("{{ 'x'.zfill(1000000000000) }}").find("kMaxStringBytes"), std::string::npos);
  EXPECT_NE(error_of("{{ 'x'.ljust(100, 'y' * 1000000) }}").find("kMaxStringBytes"), std::string::npos);
  EXPECT_NE(error_of("{{ 'a\nb'|indent(1000000000000) }}").find("kMaxStringBytes"), std::string::npos);
  EXPECT_NE(error_of("{{ [[1]]|tojson(indent=1000000000000) }}").find("kMaxStringBytes"), std::string::npos);
  EXPECT_EQ(render("{{ 'a\nb'|indent(-3) }}"), "a\nb");
  // A list of shared sublists, printed: grows exponentially, stops at the string limit.
  EXPECT_NE(
      error_of("{% set ns = namespace(x='x' * 1000) %}{% for i in range(40) %}{% set ns.x = [ns.x, ns.x] %}"
               "{% endfor %}{{ ns.x }}")
          .find("kMaxStringBytes"),
      std::string::npos);
}

TEST(JinjaLimits, OutputIterationsAndRenderBytes) {
  EXPECT_NE(error_of("{% for i in range(100) %}{{ 'x' * 1000000 }}{% endfor %}").find("kMaxOutputBytes"),
            std::string::npos);
  EXPECT_NE(error_of("{% for i in range(100) %}x{% set s = 'y' * 1000000 %}{% endfor %}").find("<no error>"),
            std::string::npos);
  EXPECT_NE(
      error_of("{% for i in range(1000) %}{% set s = 'y' * 1000000 %}{% endfor %}").find("kMaxRenderBytes"),
      std::string::npos);
  // Scanning a big string in a loop costs its size each time.
  EXPECT_NE(error_of("{% set s = 'y' * 10000000 %}{% for i in range(100000) %}{{ s|length }}{% endfor %}")
                .find("kMaxRenderBytes"),
            std::string::npos);
  EXPECT_NE(error_of("{% set xs = range(100000)|list %}{% for i in xs %}{{ 5 in xs }}{% endfor %}")
                .find("kMaxIterations"),
            std::string::npos);
  EXPECT_NE(error_of("{{ (range(100000)|list * 10)|unique|list|length }}").find("kMaxIterations"),
            std::string::npos);
  // The budgets are per render.
  Template t("{% set s = 'y' * 60000000 %}{{ s|length }}");
  for (int k = 0; k < 12; ++k) ASSERT_EQ(t.render(Value::make_dict()), "60000000");
}

TEST(JinjaLimits, NestedLoopsDoNotGrowMemory) {
  // Heap in use, sampled by the template itself early and late in one render.
  std::vector<size_t> samples;
  Value ctx = Value::make_dict();
  ctx.dict->set("probe", Value::callable("probe", [&samples](CallArgs&) {
#if defined(__SANITIZE_ADDRESS__)
                  samples.push_back(__sanitizer_get_current_allocated_bytes());
#else
                  samples.push_back(mallinfo2().uordblks);
#endif
                  return Value::string("");
                }));
  render(
      "{% macro m(x) %}{% set y = x %}{{ y }}{% endmacro %}"
      "{% for i in range(300) %}{% for j in range(300) %}{% set k = m(j) %}"
      "{% if i == 10 and j == 0 %}{{ probe() }}{% endif %}{% if i == 299 and j == 299 %}{{ probe() }}{% "
      "endif %}"
      "{% endfor %}{% endfor %}",
      ctx);
  ASSERT_EQ(samples.size(), 2u);
  if (samples[0] == 0) GTEST_SKIP() << "mallinfo2 not available under this allocator";
  // 87,000 iterations later: growth would be ~100 bytes per iteration (8+ MB) if scopes were kept.
  EXPECT_LT(samples[1], samples[0] + 512 * 1024) << samples[0] << " -> " << samples[1];
}

TEST(JinjaLimits, HugeNumbersInNamesAndFieldsAreErrorsNotExceptions) {
  // Digits beyond int64 in an attribute path or a format field: a template error or a value, never an
  // uncaught std::out_of_range.
  EXPECT_EQ(render("{{ [[1]]|map(attribute='99999999999999999999')|list|length }}"), "1");
  EXPECT_NE(error_of("{{ '{99999999999999999999}'.format(1) }}").find("out of range"), std::string::npos);
}
