#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "template/jinja_value.h"

using namespace tqlm::jinja;

TEST(JinjaValue, PythonFloatRepr) {
  EXPECT_EQ(py_float_repr(1.0), "1.0");
  EXPECT_EQ(py_float_repr(0.1), "0.1");
  EXPECT_EQ(py_float_repr(2.5), "2.5");
  EXPECT_EQ(py_float_repr(-0.0), "-0.0");
  EXPECT_EQ(py_float_repr(1e16), "1e+16");
  EXPECT_EQ(py_float_repr(1234567890123456.0), "1234567890123456.0");
  EXPECT_EQ(py_float_repr(0.0001), "0.0001");
  EXPECT_EQ(py_float_repr(1.5e-5), "1.5e-05");
  EXPECT_EQ(py_float_repr(1.0 / 3.0), "0.3333333333333333");
  EXPECT_EQ(py_float_repr(2.5e20), "2.5e+20");
  EXPECT_EQ(py_float_repr(INFINITY), "inf");
}

TEST(JinjaValue, StrAndRepr) {
  EXPECT_EQ(to_str(Value::none()), "None");
  EXPECT_EQ(to_str(Value::boolean(true)), "True");
  EXPECT_EQ(to_str(Value::undefined("x")), "");
  Value l = Value::make_list({Value::string("a'b"), Value::integer(1), Value::none(), Value::number(2.0)});
  EXPECT_EQ(to_str(l), "[\"a'b\", 1, None, 2.0]");
  EXPECT_EQ(to_str(Value::make_tuple({Value::integer(1)})), "(1,)");
  Value d = Value::make_dict();
  d.dict->set("k", Value::string("v\n"));
  EXPECT_EQ(to_str(d), "{'k': 'v\\n'}");
  EXPECT_EQ(py_str_repr("\xC3\xA9\xE2\x80\x8B"), "'\xC3\xA9\\u200b'");
}

TEST(JinjaValue, TruthinessAndEquality) {
  EXPECT_FALSE(truthy(Value::string("")));
  EXPECT_FALSE(truthy(Value::make_list()));
  EXPECT_FALSE(truthy(Value::number(0.0)));
  EXPECT_TRUE(truthy(Value::string("0")));
  EXPECT_TRUE(equals(Value::integer(1), Value::boolean(true)));
  EXPECT_TRUE(equals(Value::integer(1), Value::number(1.0)));
  EXPECT_FALSE(equals(Value::string("1"), Value::integer(1)));
  EXPECT_FALSE(equals(Value::make_list({Value::integer(1)}), Value::make_tuple({Value::integer(1)})));
  EXPECT_TRUE(equals(Value::undefined(), Value::undefined()));
  EXPECT_LT(compare(Value::string("Z"), Value::string("a")), 0);
  EXPECT_THROW(compare(Value::string("a"), Value::integer(1)), tqlm::Error);
}

TEST(JinjaValue, FromJsonKeepsOrderAndTypes) {
  auto j = nlohmann::ordered_json::parse(R"({"z": 1, "a": [1.0, true, null, "s"], "m": {"y": 2, "b": 3}})");
  Value v = from_json(j);
  ASSERT_EQ(v.kind, Kind::Dict);
  EXPECT_EQ(to_str(v), "{'z': 1, 'a': [1.0, True, None, 's'], 'm': {'y': 2, 'b': 3}}");
}

TEST(JinjaValue, JsonDumpsLikePython) {
  auto v = from_json(nlohmann::ordered_json::parse(R"({"b": [1, 2.5, "é\"\n"], "a": {}, "c": []})"));
  JsonOptions o;
  EXPECT_EQ(py_json_dumps(v, o), "{\"b\": [1, 2.5, \"\xC3\xA9\\\"\\n\"], \"a\": {}, \"c\": []}");
  o.ensure_ascii = true;
  EXPECT_EQ(py_json_dumps(Value::string("é😀"), o), "\"\\u00e9\\ud83d\\ude00\"");
  JsonOptions ind;
  ind.has_indent = true;
  ind.indent = "  ";
  ind.item_sep = ",";
  EXPECT_EQ(py_json_dumps(v, ind),
            "{\n  \"b\": [\n    1,\n    2.5,\n    \"\xC3\xA9\\\"\\n\"\n  ],\n  \"a\": {},\n  \"c\": []\n}");
  JsonOptions sorted;
  sorted.sort_keys = true;
  sorted.item_sep = ",";
  sorted.key_sep = ":";
  EXPECT_EQ(py_json_dumps(v, sorted), "{\"a\":{},\"b\":[1,2.5,\"\xC3\xA9\\\"\\n\"],\"c\":[]}");
  EXPECT_THROW(py_json_dumps(Value::undefined(), o), tqlm::Error);
}
