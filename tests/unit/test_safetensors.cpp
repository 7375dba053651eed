#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "core/error.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"

using namespace tqlm;
namespace fs = std::filesystem;

namespace {

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("tqlm_unit_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::string raw_file(const std::string& header, size_t data_bytes, uint64_t len_override = UINT64_MAX) {
  std::string s(8, '\0');
  uint64_t n = len_override == UINT64_MAX ? header.size() : len_override;
  for (int i = 0; i < 8; ++i) s[size_t(i)] = char(n >> (8 * i));
  return s + header + std::string(data_bytes, '\x01');
}

void write_file(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
}

// Expects parse to fail with a message containing every fragment.
void expect_parse_error(const std::string& img, std::initializer_list<const char*> fragments) {
  try {
    parse_safetensors(reinterpret_cast<const uint8_t*>(img.data()), img.size(), "x.safetensors");
    FAIL() << "no error for input";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("x.safetensors"), std::string::npos) << m;
    for (const char* f : fragments)
      EXPECT_NE(m.find(f), std::string::npos) << "missing '" << f << "' in: " << m;
  }
}

}  // namespace

TEST(Safetensors, ParsesValidHeader) {
  std::string h =
      R"({"__metadata__":{"format":"mlx"},"b":{"dtype":"BF16","shape":[2,3],"data_offsets":[8,20]},)"
      R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  std::string img = raw_file(h, 20);
  auto hd = parse_safetensors(reinterpret_cast<const uint8_t*>(img.data()), img.size(), "x");
  ASSERT_EQ(hd.tensors.size(), 2u);
  EXPECT_EQ(hd.tensors[0].name, "a");  // file order
  EXPECT_EQ(hd.tensors[1].name, "b");
  EXPECT_EQ(hd.tensors[1].dtype, DType::BF16);
  EXPECT_EQ(hd.tensors[1].shape, (Shape{2, 3}));
  EXPECT_EQ(hd.tensors[1].data, reinterpret_cast<const uint8_t*>(img.data()) + 8 + h.size() + 8);
  EXPECT_EQ(hd.metadata.at("format"), "mlx");
}

TEST(Safetensors, AllDTypesAccepted) {
  const char* names[] = {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2", "I64",
                         "I32", "I16", "I8",  "U8",   "U32",     "BOOL"};
  for (const char* n : names) {
    size_t sz = dtype_size(*dtype_from_name(n));
    std::string h = std::string(R"({"t":{"dtype":")") + n + R"(","shape":[3],"data_offsets":[0,)" +
                    std::to_string(3 * sz) + "]}}";
    std::string img = raw_file(h, 3 * sz);
    EXPECT_NO_THROW(parse_safetensors(reinterpret_cast<const uint8_t*>(img.data()), img.size(), "x")) << n;
  }
}

TEST(Safetensors, HostileHeaders) {
  expect_parse_error("abc", {"truncated"});
  expect_parse_error(raw_file("{}", 0, 1000), {"past the end"});
  expect_parse_error(raw_file("{}", 0, uint64_t(1) << 40), {"limit"});
  expect_parse_error(raw_file("{\"a\": ", 0), {"not valid JSON"});
  expect_parse_error(raw_file("[1,2]", 0), {"JSON object"});
  expect_parse_error(raw_file(R"({"w":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}})", 1),
                     {"'w'", "unknown dtype 'F4'"});
  expect_parse_error(raw_file(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8),
                     {"'w'", "needs 12 bytes"});
  expect_parse_error(raw_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4),
                     {"'w'", "past the end"});
  expect_parse_error(raw_file(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8),
                     {"'w'", "shape[0]"});
  expect_parse_error(raw_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8),
                     {"'w'", "reversed"});
  expect_parse_error(raw_file(R"({"w":{"dtype":"F32","shape":[2]}})", 8), {"'w'", "data_offsets"});
  expect_parse_error(
      raw_file(R"({"w":{"dtype":"F32","shape":[4611686018427387904,8],"data_offsets":[0,8]}})", 8), {"'w'"});
  expect_parse_error(raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                              R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                              12),
                     {"overlap", "'a'", "'b'"});
  expect_parse_error(raw_file(R"({"__metadata__":{"format":3}})", 0), {"__metadata__"});
  expect_parse_error(raw_file(R"({"__metadata__":[1]})", 0), {"__metadata__"});
}

TEST(Safetensors, TruncatedFileOnDisk) {
  fs::path d = temp_dir("trunc");
  std::vector<float> v(100, 1.5f);
  {
    CheckpointWriter w(d.string(), {{"format", "mlx"}});
    w.declare("t", DType::F32, {100});
    w.write("t", v.data(), 400);
    w.finish();
  }
  fs::path f = d / "model.safetensors";
  fs::resize_file(f, fs::file_size(f) - 10);
  try {
    SafetensorsFile sf(f.string());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.safetensors"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("'t'"), std::string::npos);
  }
  fs::remove_all(d);
}

TEST(Safetensors, WriterShardsAndIndexRoundTrip) {
  fs::path d = temp_dir("shards");
  std::mt19937 rng(1);
  std::vector<std::vector<uint8_t>> data;
  {
    CheckpointWriter w(d.string(), {{"format", "mlx"}}, 1000);
    for (int i = 0; i < 7; ++i) w.declare("t" + std::to_string(i), DType::U8, {int64_t(300 + i)});
    for (int i = 0; i < 7; ++i) {
      data.emplace_back(size_t(300 + i));
      for (auto& b : data.back()) b = uint8_t(rng());
      // in two pieces to exercise partial writes
      w.write("t" + std::to_string(i), data.back().data(), 100);
      w.write("t" + std::to_string(i), data.back().data() + 100, data.back().size() - 100);
    }
    w.finish(2121);
    EXPECT_EQ(w.num_shards(), 3u);  // 3 tensors of ~300 B per 1000 B shard
  }
  EXPECT_TRUE(fs::exists(d / "model-00001-of-00003.safetensors"));
  EXPECT_TRUE(fs::exists(d / "model.safetensors.index.json"));
  for (const auto& e : fs::directory_iterator(d)) EXPECT_NE(e.path().filename().string()[0], '.') << e.path();
  TensorStore store(d.string());
  EXPECT_EQ(store.shard_paths().size(), 3u);
  for (int i = 0; i < 7; ++i) {
    const TensorView& t = store.get("t" + std::to_string(i));
    ASSERT_EQ(t.nbytes, data[size_t(i)].size());
    EXPECT_EQ(std::memcmp(t.data, data[size_t(i)].data(), t.nbytes), 0);
  }
  auto hd = SafetensorsFile((d / "model-00002-of-00003.safetensors").string());
  EXPECT_EQ(hd.header().metadata.at("format"), "mlx");
  EXPECT_EQ(store.total_bytes(), 300u * 7 + 21);
  fs::remove_all(d);
}

TEST(Safetensors, UnfinishedWriterLeavesNothing) {
  fs::path d = temp_dir("unfinished");
  {
    CheckpointWriter w(d.string(), {});
    w.declare("a", DType::F32, {4});
    w.declare("b", DType::F32, {4});
    float x[4] = {1, 2, 3, 4};
    w.write("a", x, sizeof x);
    EXPECT_THROW(w.write("a", x, sizeof x), Error);  // out of order
  }
  EXPECT_TRUE(fs::is_empty(d));
  {
    CheckpointWriter w(d.string(), {});
    w.declare("a", DType::F32, {4});
    EXPECT_THROW(w.finish(), Error);  // never written
  }
  EXPECT_TRUE(fs::is_empty(d));
  fs::remove_all(d);
}

TEST(Safetensors, IndexProblemsAreNamed) {
  fs::path d = temp_dir("index");
  {
    CheckpointWriter w(d.string(), {}, 16);
    float x[4] = {1, 2, 3, 4};
    w.declare("a", DType::F32, {4});
    w.declare("b", DType::F32, {4});
    w.write("a", x, 16);
    w.write("b", x, 16);
    w.finish();
  }
  fs::remove(d / "model-00002-of-00002.safetensors");
  try {
    TensorStore s(d.string());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model-00002-of-00002.safetensors"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("missing"), std::string::npos) << e.what();
  }
  write_file(d / "model.safetensors.index.json", R"({"weight_map": {"a": "../etc/passwd"}})");
  EXPECT_THROW(TensorStore s(d.string()), Error);
  write_file(d / "model.safetensors.index.json",
             R"({"weight_map": {"zzz": "model-00001-of-00002.safetensors"}})");
  try {
    TensorStore s(d.string());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'zzz'"), std::string::npos) << e.what();
  }
  write_file(d / "model.safetensors.index.json", "{not json");
  EXPECT_THROW(TensorStore s(d.string()), Error);
  fs::remove_all(d);
}

TEST(Safetensors, DuplicateTensorAcrossFiles) {
  fs::path d = temp_dir("dup");
  float x[1] = {1};
  for (const char* sub : {"a", "b"}) {
    fs::create_directories(d / sub);
    CheckpointWriter w((d / sub).string(), {});
    w.declare("same", DType::F32, {1});
    w.write("same", x, 4);
    w.finish();
  }
  fs::rename(d / "b" / "model.safetensors", d / "a" / "other.safetensors");
  fs::remove(d / "a" / "model.safetensors.index.json");
  EXPECT_THROW(TensorStore s((d / "a").string()), Error);
  fs::remove_all(d);
}
