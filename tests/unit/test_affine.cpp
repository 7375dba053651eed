#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/error.h"
#include "io/checkpoint.h"
#include "quant/affine.h"

using namespace tqlm;

TEST(Affine, PackUnpackAllWidths) {
  std::mt19937 rng(7);
  for (int bits : {2, 3, 4, 5, 6, 8}) {
    const int64_t cols = 128;
    // Quantize a row whose codes we can predict: values exactly on the grid of [0, n_bins].
    std::vector<float> w(cols);
    const int n_bins = (1 << bits) - 1;
    for (int64_t j = 0; j < cols; ++j) w[size_t(j)] = float(rng() % (n_bins + 1));
    for (int64_t g = 0; g < cols; g += 32) w[size_t(g)] = 0, w[size_t(g + 1)] = float(n_bins);  // pin min/max
    std::vector<uint32_t> wq(size_t(cols * bits / 32));
    std::vector<float> s(4), b(4);
    affine_quantize(w.data(), DType::F32, 1, cols, bits, 32, wq.data(), s.data(), b.data());
    std::vector<uint8_t> q(cols);
    affine_unpack_row(wq.data(), cols, bits, q.data());
    std::vector<float> back(cols);
    affine_dequantize_f32(wq.data(), s.data(), b.data(), DType::F32, 1, cols, bits, 32, back.data());
    for (int64_t j = 0; j < cols; ++j) EXPECT_NEAR(back[size_t(j)], w[size_t(j)], 1e-4) << bits << " " << j;
    // Bit-stream rule: element j at bits [j*bits, (j+1)*bits) of the little-endian row stream.
    for (int64_t j = 0; j < cols; ++j) {
      uint32_t v = 0;
      for (int k = 0; k < bits; ++k) {
        int64_t bit = j * bits + k;
        v |= ((wq[size_t(bit / 32)] >> (bit % 32)) & 1u) << k;
      }
      EXPECT_EQ(v, q[size_t(j)]);
    }
  }
}

TEST(Affine, ErrorBoundPerWidth) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  const int64_t rows = 16, cols = 256;
  std::vector<float> w(rows * cols);
  for (auto& x : w) x = nd(rng);
  for (int bits : {2, 3, 4, 5, 6, 8})
    for (int gs : {32, 64, 128}) {
      std::vector<uint32_t> wq(size_t(rows * cols * bits / 32));
      std::vector<float> s(size_t(rows * cols / gs)), b(s.size()), back(w.size());
      affine_quantize(w.data(), DType::F32, rows, cols, bits, gs, wq.data(), s.data(), b.data());
      affine_dequantize_f32(wq.data(), s.data(), b.data(), DType::F32, rows, cols, bits, gs, back.data());
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t g = 0; g < cols / gs; ++g) {
          float step = std::abs(s[size_t(r * (cols / gs) + g)]);
          for (int j = 0; j < gs; ++j) {
            size_t k = size_t(r * cols + g * gs + j);
            // Half a step, plus the rescale that puts zero on the grid may push one end by up to one step.
            EXPECT_LE(std::abs(back[k] - w[k]), step * 1.0f + 1e-6f) << bits << "/" << gs;
          }
        }
    }
}

TEST(Affine, ConstantAndZeroGroups) {
  std::vector<float> w(64, 0.0f);
  for (int j = 32; j < 64; ++j) w[size_t(j)] = -3.25f;
  std::vector<uint32_t> wq(64 * 4 / 32);
  std::vector<float> s(2), b(2), back(64);
  affine_quantize(w.data(), DType::F32, 1, 64, 4, 32, wq.data(), s.data(), b.data());
  affine_dequantize_f32(wq.data(), s.data(), b.data(), DType::F32, 1, 64, 4, 32, back.data());
  for (int j = 0; j < 64; ++j) EXPECT_EQ(back[size_t(j)], w[size_t(j)]);
  EXPECT_EQ(b[0], 0.0f);
  EXPECT_EQ(b[1], -3.25f);
}

TEST(Affine, RejectsBadParameters) {
  std::vector<float> w(96);
  std::vector<uint32_t> wq(96);
  std::vector<float> s(8), b(8);
  EXPECT_THROW(affine_quantize(w.data(), DType::F32, 1, 96, 7, 32, wq.data(), s.data(), b.data()), Error);
  EXPECT_THROW(affine_quantize(w.data(), DType::F32, 1, 96, 4, 16, wq.data(), s.data(), b.data()), Error);
  EXPECT_THROW(affine_quantize(w.data(), DType::F32, 1, 96, 4, 64, wq.data(), s.data(), b.data()), Error);
  EXPECT_THROW(affine_quantize(w.data(), DType::I32, 1, 96, 4, 32, wq.data(), s.data(), b.data()), Error);
}

TEST(QuantConfig, GlobalAndOverrides) {
  auto cfg = nlohmann::json::parse(R"({"quantization": {"group_size": 32, "bits": 4, "mode": "affine",
      "model.layers.0.mlp.gate": {"group_size": 64, "bits": 8},
      "model.layers.1.mlp.gate": {"bits": 8},
      "model.layers.2.mlp.gate": {"group_size": null, "bits": 3},
      "model.layers.3.mlp.gate": true,
      "model.norm": false}})");
  QuantConfig q = parse_quant_config(cfg, "config.json");
  EXPECT_TRUE(q.present);
  EXPECT_EQ(q.for_module("x").bits, 4);
  EXPECT_EQ(q.for_module("x").group_size, 32);
  EXPECT_EQ(q.for_module("model.layers.0.mlp.gate").bits, 8);
  EXPECT_EQ(q.for_module("model.layers.1.mlp.gate").group_size, 64);  // class default, not the global 32
  EXPECT_EQ(q.for_module("model.layers.2.mlp.gate").group_size, 64);  // null means 64
  EXPECT_EQ(q.for_module("model.layers.2.mlp.gate").bits, 3);
  EXPECT_EQ(q.for_module("model.layers.3.mlp.gate").group_size, 32);  // true: global parameters
  EXPECT_THROW(q.for_module("model.norm"), Error);
}

TEST(QuantConfig, RejectsOtherModesNamingThem) {
  for (const char* text :
       {R"({"quantization": {"group_size": 32, "bits": 4, "mode": "mxfp4"}})",
        R"({"quantization": {"group_size": 64, "bits": 4, "a.b": {"mode": "nvfp4", "bits": 4}}})"}) {
    try {
      parse_quant_config(nlohmann::json::parse(text), "config.json");
      FAIL() << text;
    } catch (const Error& e) {
      std::string m = e.what();
      EXPECT_TRUE(m.find("mxfp4") != std::string::npos || m.find("nvfp4") != std::string::npos) << m;
      EXPECT_NE(m.find("config.json"), std::string::npos) << m;
    }
  }
  EXPECT_THROW(parse_quant_config(nlohmann::json::parse(R"({"quantization": {"bits": 7}})"), "c"), Error);
  EXPECT_FALSE(parse_quant_config(nlohmann::json::parse(R"({"model_type": "llama"})"), "c").present);
  // An HF fp8 quantization_config is not an MLX quantization block.
  EXPECT_FALSE(
      parse_quant_config(nlohmann::json::parse(R"({"quantization_config": {"quant_method": "fp8"}})"), "c")
          .present);
}
