#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "core/error.h"
#include "template/chat_template.h"
#include "template/jinja.h"

using namespace tqlm;
using namespace tqlm::jinja;

namespace {

// Renders `src` with variables from a JSON object.
std::string render(std::string_view src, const char* ctx_json = "{}") {
  Template t(src);
  return t.render(from_json(nlohmann::ordered_json::parse(ctx_json)));
}

std::string error_of(std::string_view src, const char* ctx_json = "{}") {
  try {
    render(src, ctx_json);
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

}  // namespace

// Expected strings below are what Python jinja2 (trim_blocks, lstrip_blocks) renders.
TEST(JinjaRender, ControlFlowAndLoopVariables) {
  EXPECT_EQ(render("{% for x in xs %}{{ loop.index }}:{{ x }}{% if not loop.last %},{% endif %}{% endfor %}",
                   R"({"xs": ["a", "b", "c"]})"),
            "1:a,2:b,3:c");
  EXPECT_EQ(render("{% for x in xs if x > 1 %}{{ loop.length }}{{ x }}{% else %}none{% endfor %}",
                   R"({"xs": [1, 2, 3]})"),
            "2223");
  EXPECT_EQ(render("{% for x in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(render("{% for i in range(9) %}{% if i is odd %}{% continue %}{% endif %}{% if i > 5 %}{% break "
                   "%}{% endif %}"
                   "{{ i }}{% endfor %}"),
            "024");
  EXPECT_EQ(render("{% if a %}A{% elif b %}B{% else %}C{% endif %}", R"({"b": 1})"), "B");
}

TEST(JinjaRender, ScopingNamespaceAndSetBlocks) {
  EXPECT_EQ(render("{% set x = 1 %}{% for i in [5] %}{% set x = i %}{{ x }}{% endfor %}{{ x }}"), "51");
  EXPECT_EQ(render("{% set ns = namespace(n=0) %}{% for i in [1, 2, 3] %}{% set ns.n = ns.n + i %}{% endfor "
                   "%}{{ ns.n }}"),
            "6");
  EXPECT_EQ(render("{% set b %}  in {{ 1 + 1 }}{% endset %}[{{ b }}]"), "[  in 2]");
  EXPECT_EQ(render("{% set a, b = 'xy' %}{{ b }}{{ a }}"), "yx");
}

TEST(JinjaRender, MacrosAndCallBlocks) {
  EXPECT_EQ(
      render("{% macro m(a, b='B') %}{{ a }}{{ b }}{% endmacro %}{{ m(1) }}{{ m(1, 2) }}{{ m(b=3, a=4) }}"),
      "1B1243");
  EXPECT_EQ(render("{% macro w() %}<{{ caller() }}>{% endmacro %}{% call w() %}body{% endcall %}"), "<body>");
}

TEST(JinjaRender, PythonMethodsAndFilters) {
  EXPECT_EQ(render("{{ s.split('</think>')[-1].lstrip('\\n') }}", R"({"s": "<think>r</think>\n\nanswer"})"),
            "answer");
  EXPECT_EQ(
      render("{{ m[::-1] | map(attribute='role') | join(',') }}", R"({"m": [{"role": "a"}, {"role": "b"}]})"),
      "b,a");
  EXPECT_EQ(render("{{ d | tojson }}|{{ d | tojson(indent=2) }}", R"({"d": {"k": [1, "é"]}})"),
            "{\"k\": [1, \"\xC3\xA9\"]}|{\n  \"k\": [\n    1,\n    \"\xC3\xA9\"\n  ]\n}");
  EXPECT_EQ(render("{{ x | default('d') }}{{ '' | default('e', true) }}{{ 'Ab' | lower }}{{ ' t ' | trim }}"),
            "deabt");
  EXPECT_EQ(render("{{ [3, 1, 2] | sort | list }} {{ {'b': 1, 'a': 2} | dictsort }}"),
            "[1, 2, 3] [('a', 2), ('b', 1)]");
  EXPECT_EQ(render("{{ 7 // 2 }} {{ -7 % 3 }} {{ 1 / 4 }} {{ 'ab' ~ 1 ~ none }}"), "3 2 0.25 ab1None");
}

TEST(JinjaRender, UndefinedBehavesLikeJinja2) {
  EXPECT_EQ(
      render(
          "[{{ missing }}]{{ missing | length }}{% for x in missing %}x{% endfor %}{{ missing is defined }}"),
      "[]0False");
  EXPECT_EQ(render("{{ d.nope is defined }}{{ d.nope }}", R"({"d": {}})"), "False");
  EXPECT_NE(error_of("{{ missing.attr }}").find("'missing' is undefined"), std::string::npos);
  EXPECT_NE(error_of("{{ d.a.b }}", R"({"d": {}})").find("has no attribute 'a'"), std::string::npos);
}

TEST(JinjaRender, SandboxForbidsMutation) {
  EXPECT_NE(error_of("{{ l.append(1) }}", R"({"l": []})").find("unsafe"), std::string::npos);
  EXPECT_NE(error_of("{{ d.update({}) }}", R"({"d": {}})").find("unsafe"), std::string::npos);
}

TEST(JinjaRender, SyntaxErrorNamesLine) {
  try {
    Template t("line1\n{% if x %}\n{{ 1 + }}\n{% endif %}");
    FAIL() << "expected a syntax error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("line 3"), std::string::npos) << e.what();
  }
  try {
    Template t("{% for x in y %}\nno end");
    FAIL() << "expected a syntax error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("line 1"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("endfor"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Template("{{ x | nosuchfilter }}"), Error);
  EXPECT_THROW(Template("{% include 'other' %}"), Error);
}

TEST(JinjaRender, RuntimeErrorNamesLine) {
  std::string e = error_of("ok\n\n{{ 1 / 0 }}");
  EXPECT_NE(e.find("line 3"), std::string::npos) << e;
  EXPECT_NE(e.find("division by zero"), std::string::npos) << e;
}

TEST(JinjaRender, RaiseExceptionSurfacesMessage) {
  Template t("{% if messages | length == 0 %}{{ raise_exception('No messages given!') }}{% endif %}");
  try {
    t.render(from_json(nlohmann::ordered_json::parse(R"({"messages": []})")));
    FAIL() << "expected raise_exception";
  } catch (const TemplateRaised& e) {
    EXPECT_STREQ(e.what(), "No messages given!");
  }
}

TEST(JinjaChatTemplate, LoadsFromTokenizerConfigAndRenders) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() /
                 ("tqlm_jinja_ct_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()));
  fs::create_directories(dir);
  nlohmann::ordered_json cfg = {
      {"bos_token", {{"content", "<s>"}}},
      {"eos_token", "</s>"},
      {"chat_template",
       nlohmann::ordered_json::array(
           {{{"name", "default"},
             {"template",
              "{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{{ eos_token }}{% endfor %}"
              "{% if add_generation_prompt %}[assistant]{% endif %}{{ tools | length if tools else '' "
              "}}"}}})}};
  std::ofstream(dir / "tokenizer_config.json") << cfg.dump();
  ChatTemplate ct = ChatTemplate::load(dir.string());
  auto msgs = nlohmann::ordered_json::parse(R"([{"role": "user", "content": "hi"}])");
  EXPECT_EQ(ct.render(msgs, nullptr, true), "<s>[user]hi</s>[assistant]");
  EXPECT_EQ(ct.render(msgs, nlohmann::ordered_json::parse("[{}, {}]"), false), "<s>[user]hi</s>2");
  fs::remove(dir / "tokenizer_config.json");
  try {
    ChatTemplate::load(dir.string());
    FAIL() << "expected a missing-template error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--chat-template FILE"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}
