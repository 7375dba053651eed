#include "quant/convert.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/files.h"
#include "core/json.h"
#include "core/thread_pool.h"
#include "io/checkpoint.h"
#include "io/safetensors_writer.h"
#include "quant/affine.h"
#include "quant/affine_fit.h"
#include "quant/fp8.h"
#include "quant/source.h"

namespace tqlm {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// NaN / Inf values of the tensor being converted, counted over the blocks read from the source.
struct NonFinite {
  std::string tensor;
  size_t count = 0, first = 0, seen = 0;  // seen: elements checked so far
  void check(const std::vector<uint8_t>& buf, DType t) {
    const size_t n = buf.size() / dtype_size(t);
    size_t f = 0;
    if (const size_t c = count_nonfinite(buf.data(), t, n, &f)) {
      if (count == 0) first = seen + f;
      count += c;
    }
    seen += n;
  }
  // Ends a tensor: an error naming it, or (allowed) one line in `out`.
  void end(const std::string& src, bool allow, std::vector<std::string>& out) {
    if (count) {
      const std::string what =
          fmt::format("'{}' has {} NaN/Inf values (the first at element {})", tensor, count, first);
      if (!allow) fail("{}: {}; refusing to convert them (--allow-nonfinite converts anyway)", src, what);
      out.push_back(what);
    }
    *this = {};
  }
};

// quantization_config of an FP8 source: only 128 x 128 weight blocks are read (kFp8Block).
void check_fp8_blocks(const json& cfg, const std::string& label) {
  auto qc = cfg.find("quantization_config");
  if (qc == cfg.end() || !qc->is_object()) return;
  auto bs = qc->find("weight_block_size");
  if (bs == qc->end() || bs->is_null()) return;
  if (!bs->is_array() || bs->size() != 2 || (*bs)[0] != kFp8Block || (*bs)[1] != kFp8Block)
    fail("{}: quantization_config.weight_block_size {} is not supported (only [{}, {}])", label,
         json_brief(*bs), kFp8Block, kFp8Block);
}

void write_synced(const fs::path& path, const std::string& text) {
  {
    std::ofstream out(path, std::ios::binary);
    out << text;
    out.flush();
    if (!out) fail("{}: cannot write", path.string());
  }
  fsync_path(path.string());
}

void copy_side_files(const fs::path& src, const fs::path& dst) {
  for (const auto& e : fs::directory_iterator(src)) {
    const std::string n = e.path().filename().string();
    const bool weights = n.rfind("model", 0) == 0 && n.find(".safetensors") != std::string::npos;
    if (!e.is_regular_file() || n == "config.json" || weights) continue;
    const std::string ext = e.path().extension().string();
    if (ext == ".json" || ext == ".jinja" || ext == ".txt" || ext == ".model" || ext == ".tiktoken" ||
        ext == ".py") {
      fs::copy_file(e.path(), dst / n);
      fsync_path((dst / n).string());
    }
  }
}

}  // namespace

std::vector<float> weight_importance(const CalibStats& stats, const ModelConfig& cfg,
                                     const std::string& module, int64_t expert) {
  const bool tied_embed = module == "model.embed_tokens" && cfg.tie_embeddings;
  std::vector<float> h = stats.importance(tied_embed ? "lm_head" : module, expert);  // [in]
  if (h.empty()) return h;
  double mean = 0;
  for (float v : h) mean += v;
  mean /= double(h.size());
  for (float& v : h) v += float(0.01 * mean);
  return h;
}

std::string partial_output_dir(const std::string& dst) {
  const fs::path d(dst);
  std::string name = ".";  // (built step by step: GCC 12 warns falsely on a chain of + here)
  name += d.filename().string();
  name += ".partial-";
  name += std::to_string(::getpid());
  return (d.parent_path() / name).string();
}

PartialOutput::PartialOutput(std::string dst) : dst_(std::move(dst)), tmp_(partial_output_dir(dst_)) {
  std::error_code ec;
  fs::remove_all(tmp_, ec);
  fs::create_directories(tmp_);
}

PartialOutput::~PartialOutput() {
  std::error_code ec;
  if (!published_) fs::remove_all(tmp_, ec);
}

void PartialOutput::publish() {
  fsync_path(tmp_);  // every file and name in it is on disk before the rename publishes it
  fs::rename(tmp_, dst_);
  published_ = true;
  const fs::path parent = fs::path(dst_).parent_path();
  fsync_path(parent.empty() ? "." : parent.string());
}

std::vector<std::string> stale_partial_outputs(const std::string& dst) {
  const fs::path d(dst);
  const fs::path parent = d.parent_path().empty() ? fs::path(".") : d.parent_path();
  std::string prefix = ".";  // (built step by step: GCC 12 warns falsely on a chain of + here)
  prefix += d.filename().string();
  prefix += ".partial-";
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(parent, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string n = it->path().filename().string();
    if (n.rfind(prefix, 0) != 0 || !it->is_directory(ec)) continue;
    const std::string pid = n.substr(prefix.size());
    if (pid.empty() || pid.size() > 9 || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    if (::kill(pid_t(std::stol(pid)), 0) == 0 || errno == EPERM) continue;  // its conversion still runs
    out.push_back(it->path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

ConvertResult convert_checkpoint(const std::string& src, const std::string& dst, const Policy& policy,
                                 const ConvertProgress& progress, int64_t block_rows, bool allow_nonfinite,
                                 const CalibStats* stats) {
  if (block_rows < 0 || block_rows % 128)
    fail("rows per step must be a positive multiple of 128, got {}", block_rows);
  std::error_code ec;
  if (fs::exists(dst, ec)) fail("{}: destination exists; choose a new directory", dst);
  Checkpoint ck(src);
  if (!ck.has_config()) fail("{}: config.json is missing", src);
  const ModelConfig mc = parse_model_config(ck.config(), src + "/config.json");
  const DType sdt = config_float_dtype(ck.config());
  check_fp8_blocks(ck.config(), src + "/config.json");
  ConvertResult res;
  res.plan = plan_conversion(mc, policy, sdt);

  PartialOutput out(dst);
  const fs::path tmp = out.path();

  CheckpointWriter w(tmp.string(), {{"format", "mlx"}});
  // Declarations: quantized modules give weight/scales/biases, kept ones a single float tensor.
  for (const auto& t : res.plan.tensors)
    for (const auto& st : stored_tensors(t, sdt)) w.declare(st.name, st.dtype, st.shape);
  Source source(ck);
  std::unique_ptr<ThreadPool> pool;
  if (stats) pool = std::make_unique<ThreadPool>(0);
  uint64_t done = 0;
  const uint64_t total = res.plan.report.total.bytes;
  std::vector<uint8_t> buf;
  NonFinite bad;
  for (const auto& t : res.plan.tensors) {
    bad.tensor = weight_name(t);
    if (t.shape.size() == 1) {  // norms, biases: copy in the kept dtype
      const TensorView& v = ck.tensors().get(weight_name(t));
      if (v.shape != t.shape)
        fail("{}: '{}' has shape {}, expected {}", src, v.name, shape_str(v.shape), shape_str(t.shape));
      std::vector<float> f(size_t(v.numel()));
      for (size_t i = 0; i < f.size(); ++i) f[i] = load_as_f32(v.data, v.dtype, i);
      Source::store(f, t.decision.keep, buf);
      bad.check(buf, t.decision.keep);
      bad.end(src, allow_nonfinite, res.nonfinite);
      w.write(weight_name(t), buf.data(), buf.size());
      done += buf.size();
      continue;
    }
    const bool stacked = t.shape.size() == 3;  // [E, out, in]
    const int64_t E = stacked ? t.shape[0] : 1, rows = t.shape[t.shape.size() - 2], cols = t.shape.back();
    // rows per step: about 32 MiB of f32, a multiple of the 128-row FP8 block
    const int64_t block =
        block_rows ? block_rows
                   : std::max<int64_t>(128, ((int64_t(8) << 20) / std::max<int64_t>(1, cols)) / 128 * 128);
    if (!t.decision.quantize) {
      for (int64_t e = 0; e < E; ++e)
        for (int64_t r0 = 0; r0 < rows; r0 += block) {
          const int64_t nr = std::min(block, rows - r0);
          source.read(t.module, stacked ? e : -1, r0, nr, rows, cols, t.decision.keep, buf);
          bad.check(buf, t.decision.keep);
          w.write(weight_name(t), buf.data(), buf.size());
          done += buf.size();
          if (progress) progress(done, total);
        }
      bad.end(src, allow_nonfinite, res.nonfinite);
      continue;
    }
    const int bits = t.decision.bits, gs = t.decision.group_size;
    const size_t sb = size_t(rows * cols / gs) * dtype_size(sdt);
    std::vector<uint8_t> scales(size_t(E) * sb), biases(size_t(E) * sb);
    std::vector<uint32_t> wq(size_t(std::min(block, rows) * cols * bits / 32));
    const size_t row_sb = size_t(cols / gs) * dtype_size(sdt);
    for (int64_t e = 0; e < E; ++e)
      for (int64_t r0 = 0; r0 < rows; r0 += block) {
        const int64_t nr = std::min(block, rows - r0);
        source.read(t.module, stacked ? e : -1, r0, nr, rows, cols, sdt, buf);
        bad.check(buf, sdt);
        uint8_t* sc = scales.data() + size_t(e) * sb + size_t(r0) * row_sb;  // [nr, cols / gs]
        uint8_t* bi = biases.data() + size_t(e) * sb + size_t(r0) * row_sb;  // [nr, cols / gs]
        const std::vector<float> h = stats ? weight_importance(*stats, mc, t.module, stacked ? e : -1)
                                           : std::vector<float>{};  // [cols]
        if (h.empty()) {
          affine_quantize(buf.data(), sdt, nr, cols, bits, gs, wq.data(), sc, bi);
        } else {  // rows in parallel: each row's groups are fitted on their own
          const size_t ds = dtype_size(sdt);
          pool->parallel_for(nr, 8, [&](int64_t a, int64_t b, int) {
            affine_quantize_fit(buf.data() + size_t(a * cols) * ds, sdt, b - a, cols, bits, gs, h.data(),
                                wq.data() + a * (cols * bits / 32), sc + size_t(a) * row_sb,
                                bi + size_t(a) * row_sb);
          });
        }
        w.write(t.module + ".weight", wq.data(), size_t(nr * cols * bits / 32) * 4);
        done += size_t(nr * cols * bits / 32) * 4;
        if (progress) progress(done, total);
      }
    bad.end(src, allow_nonfinite, res.nonfinite);
    w.write(t.module + ".scales", scales.data(), scales.size());
    w.write(t.module + ".biases", biases.data(), biases.size());
    done += 2 * scales.size();
    if (progress) progress(done, total);
  }
  w.finish(uint64_t(res.plan.report.total.params));
  res.bytes_written = w.total_bytes();
  res.shards = w.num_shards();
  res.requantized = source.requantized;

  // config.json: the source's, with the MLX quantization block (identical quantization_config).
  json cfg = ck.config();
  const json q = mlx_quantization(res.plan.tensors, policy);
  cfg.erase("quantization_config");
  cfg["quantization"] = q;
  cfg["quantization_config"] = q;
  write_synced(tmp / "config.json", cfg.dump(4) + "\n");
  if (fs::is_directory(src)) copy_side_files(src, tmp);
  out.publish();
  return res;
}

}  // namespace tqlm
