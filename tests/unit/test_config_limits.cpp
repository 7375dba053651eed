// config.json validation (types, ranges, cross-field checks, the context default), json_int, the thread
// pool's limit and the tokenizer normalizer's growth limit (docs/limits.md).
#include <gtest/gtest.h>

#include <string>

#include "core/error.h"
#include "core/json.h"
#include "core/thread_pool.h"
#include "model/config.h"
#include "tokenizer/tokenizer_normalizer.h"

using namespace tqlm;
using json = nlohmann::json;

namespace {

json llama() {
  return {{"model_type", "llama"},    {"hidden_size", 128},
          {"num_hidden_layers", 3},   {"num_attention_heads", 4},
          {"num_key_value_heads", 2}, {"intermediate_size", 256},
          {"vocab_size", 512},        {"rms_norm_eps", 1e-5},
          {"rope_theta", 10000.0},    {"max_position_embeddings", 2048}};
}

// The error parse_model_config throws for `c` ("" when it parses).
std::string error_of(const json& c) {
  try {
    parse_model_config(c, "cfg.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void expect_error(json c, const char* key, const json& value, const std::string& words) {
  c[key] = value;
  const std::string e = error_of(c);
  EXPECT_NE(e.find("cfg.json"), std::string::npos) << key << " = " << value.dump() << ": " << e;
  EXPECT_NE(e.find(words), std::string::npos) << key << " = " << value.dump() << ": " << e;
}

}  // namespace

TEST(ConfigLimits, ValidConfigParses) {
  const ModelConfig m = parse_model_config(llama(), "cfg.json");
  EXPECT_EQ(m.n_layers, 3);
  EXPECT_EQ(m.head_dim, 32);
  EXPECT_EQ(m.max_position, 2048);
  EXPECT_FALSE(m.max_position_defaulted);
  EXPECT_TRUE(m.warnings.empty());
}

TEST(ConfigLimits, SizesOutOfRange) {
  expect_error(llama(), "num_hidden_layers", 0, "num_hidden_layers");
  expect_error(llama(), "num_hidden_layers", 10000000, "kMaxLayers");
  expect_error(llama(), "num_hidden_layers", 1000000000, "kMaxLayers");
  expect_error(llama(), "hidden_size", int64_t(1000000000000), "kMaxHidden");
  expect_error(llama(), "vocab_size", int64_t(1) << 40, "kMaxVocab");
  expect_error(llama(), "intermediate_size", int64_t(1) << 40, "kMaxIntermediate");
  expect_error(llama(), "num_attention_heads", -4, "num_attention_heads");
  expect_error(llama(), "num_hidden_layers", uint64_t(18446744073709551615ull), "num_hidden_layers");
  expect_error(llama(), "max_position_embeddings", int64_t(1) << 40, "kMaxContext");
}

TEST(ConfigLimits, WrongTypesAreErrorsNotDefaults) {
  expect_error(llama(), "num_hidden_layers", "3", "num_hidden_layers");
  expect_error(llama(), "num_key_value_heads", 2.5, "num_key_value_heads");
  expect_error(llama(), "tie_word_embeddings", "yes", "tie_word_embeddings");
  expect_error(llama(), "rms_norm_eps", "1e-5", "rms_norm_eps");
  expect_error(llama(), "rope_theta", json::array({1}), "rope_theta");
  expect_error(llama(), "rope_scaling", "linear", "rope_scaling");
}

TEST(ConfigLimits, RopeAndNorm) {
  expect_error(llama(), "rope_theta", 0, "rope_theta");
  expect_error(llama(), "rope_theta", -1.0, "rope_theta");
  expect_error(llama(), "rms_norm_eps", -1e-6, "rms_norm_eps");
  expect_error(llama(), "rms_norm_eps", 0, "rms_norm_eps");
  expect_error(llama(), "rope_scaling", {{"type", "linear"}, {"factor", 0}}, "factor");
  expect_error(llama(), "rope_scaling", {{"rope_type", "llama3"}, {"factor", -8}}, "llama3");
  expect_error(llama(), "rope_scaling", {{"type", "yarn"}, {"factor", 4}}, "yarn");
  expect_error(llama(), "partial_rotary_factor", 1.5, "partial_rotary_factor");
}

TEST(ConfigLimits, CrossFields) {
  expect_error(llama(), "num_key_value_heads", 3, "num_key_value_heads");
  expect_error(llama(), "num_key_value_heads", 8, "num_key_value_heads");
  expect_error(llama(), "head_dim", 33, "head_dim");
  json mm = {{"model_type", "minimax_m2"}, {"hidden_size", 64},
             {"num_hidden_layers", 2},     {"num_attention_heads", 4},
             {"num_key_value_heads", 2},   {"head_dim", 16},
             {"intermediate_size", 32},    {"num_local_experts", 4},
             {"num_experts_per_tok", 2},   {"rotary_dim", 8},
             {"vocab_size", 256},          {"max_position_embeddings", 64}};
  EXPECT_EQ(error_of(mm), "");
  expect_error(mm, "rotary_dim", "8", "rotary_dim");
  expect_error(mm, "rotary_dim", 32, "rotary_dim");
  expect_error(mm, "num_experts_per_tok", 5, "num_experts_per_tok");
  expect_error(mm, "num_local_experts", 100000, "kMaxExperts");
  json q = llama();
  q.update({{"model_type", "qwen3_moe"},
            {"num_experts", 4},
            {"num_experts_per_tok", 2},
            {"moe_intermediate_size", 32}});
  EXPECT_EQ(error_of(q), "");
  expect_error(q, "mlp_only_layers", json::array({0, 7}), "mlp_only_layers[1]");
  expect_error(q, "mlp_only_layers", "0", "mlp_only_layers");
}

TEST(ConfigLimits, ParameterTotal) {
  json c = llama();
  c.update({{"model_type", "mixtral"},
            {"num_hidden_layers", 1024},
            {"hidden_size", 65536},
            {"num_attention_heads", 512},
            {"num_key_value_heads", 512},
            {"num_local_experts", 4096},
            {"num_experts_per_tok", 2},
            {"intermediate_size", 1 << 19}});
  EXPECT_NE(error_of(c).find("kMaxParameters"), std::string::npos) << error_of(c);
}

TEST(ConfigLimits, ContextDefaultAndFlag) {
  json c = llama();
  c.erase("max_position_embeddings");
  const ModelConfig m = parse_model_config(c, "cfg.json");
  EXPECT_EQ(m.max_position, kDefaultContext);
  EXPECT_TRUE(m.max_position_defaulted);
  ASSERT_EQ(m.warnings.size(), 1u);
  EXPECT_NE(m.warnings[0].find("max_position_embeddings"), std::string::npos);
  EXPECT_EQ(context_limit(m, 0), kDefaultContext);
  EXPECT_EQ(context_limit(m, 100000), 100000);  // no stated maximum: --ctx decides
  EXPECT_THROW(context_limit(m, kMaxContext + 1), Error);
  const ModelConfig s = parse_model_config(llama(), "cfg.json");
  EXPECT_EQ(context_limit(s, 0), 2048);
  EXPECT_EQ(context_limit(s, 1024), 1024);
  try {
    context_limit(s, 4096);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("4096"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("2048"), std::string::npos);
  }
}

TEST(ConfigLimits, JsonInt) {
  EXPECT_EQ(json_int(json(5), "x", 0, 10), 5);
  EXPECT_THROW(json_int(json(11), "x", 0, 10), Error);
  EXPECT_THROW(json_int(json(uint64_t(1) << 63), "x"), Error);
  EXPECT_THROW(json_int(json(1.0), "x"), Error);
  EXPECT_THROW(json_int(json("1"), "x"), Error);
}

TEST(ThreadPoolLimits, RefusesTooMany) {
  EXPECT_THROW(ThreadPool(kMaxThreads + 1), Error);
  EXPECT_THROW(ThreadPool(-1), Error);
  ThreadPool p(2);
  EXPECT_EQ(p.size(), 2);
}

TEST(NormalizerLimits, GrowthIsCapped) {
  json rep = {{"type", "Replace"}, {"pattern", {{"String", "a"}}}, {"content", std::string(64, 'a')}};
  json seq = {{"type", "Sequence"}, {"normalizers", json::array({rep, rep, rep, rep})}};
  auto n = make_normalizer(seq, "tokenizer.json: normalizer");
  EXPECT_THROW(n->normalize(std::string(1000, 'a')), Error);
  json sp = {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xe2\x96\x81"}};
  auto m = make_normalizer(sp, "tokenizer.json: normalizer");
  EXPECT_EQ(m->normalize(std::string(1000, ' ')).size(), 3000u);  // SentencePiece's 3x growth is fine
}
