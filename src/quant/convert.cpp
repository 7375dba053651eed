#include "quant/convert.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/files.h"
#include "core/json.h"
#include "io/checkpoint.h"
#include "io/safetensors_writer.h"
#include "quant/affine.h"
#include "quant/fp8.h"

namespace tqlm {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// Tensor name of a planned entry: 1-D biases and routing biases are named as they are; others get .weight.
std::string weight_name(const PlannedTensor& t) {
  const std::string& m = t.module;
  if (m.size() > 5 && m.compare(m.size() - 5, 5, ".bias") == 0) return m;
  if (m.find("e_score_correction_bias") != std::string::npos) return m;
  return m + ".weight";
}

// Drops the source pages of [p, p + n) from this process's resident set once they have been read (they
// stay in the page cache): keeps RSS bounded by a few tensors however large the checkpoint is.
void release(const void* p, size_t n) {
  const uintptr_t page = uintptr_t(::sysconf(_SC_PAGESIZE));
  uintptr_t a = (uintptr_t(p) + page - 1) & ~(page - 1), b = (uintptr_t(p) + n) & ~(page - 1);
  if (b > a) ::madvise(reinterpret_cast<void*>(a), b - a, MADV_DONTNEED);
}

// Reads the source values of one planned weight (or one expert slice of it) in the source float dtype:
// float tensors are passed through, FP8 is block-dequantized (rounded to bf16 as mlx_lm does), MLX-quantized
// modules are dequantized (in their scale dtype).
class Source {
 public:
  explicit Source(const Checkpoint& ck) : ck_(ck) {}

  // Candidate names of expert e's tensor for a stacked MLX module "...switch_mlp.gate_proj".
  const TensorView* find_expert(const std::string& module, int64_t e, std::string* mod_out) const {
    const size_t p = module.find(".switch_mlp.");
    const std::string prefix = module.substr(0, p), proj = module.substr(p + 12);
    const char* hf = proj == "gate_proj" ? "w1" : proj == "up_proj" ? "w3" : "w2";
    for (const std::string& leaf : {proj, std::string(hf)}) {
      std::string m = prefix + ".experts." + std::to_string(e) + "." + leaf;
      if (const TensorView* t = ck_.tensors().find(m + ".weight")) {
        *mod_out = m;
        return t;
      }
    }
    return nullptr;
  }

  // Rows [r0, r0 + nr) of `module` ([rows, cols]), or of expert `e` of a stacked module, as `out_dtype`
  // bytes.
  void read(const std::string& module, int64_t e, int64_t r0, int64_t nr, int64_t rows, int64_t cols,
            DType out_dtype, std::vector<uint8_t>& buf) {
    std::string mod = module;
    int64_t slice = -1;  // expert index inside a stacked source tensor
    if (e >= 0) {
      if (ck_.tensors().has(module + ".weight"))
        slice = e;  // already stacked (MLX, or HF pre-stacked)
      else if (!find_expert(module, e, &mod))
        fail("{}: no tensor for expert {} of '{}'", ck_.path(), e, module);
    }
    const size_t n = size_t(nr * cols);
    buf.resize(n * dtype_size(out_dtype));
    const int64_t first_row = (slice >= 0 ? slice * rows : 0) + r0;  // in the source's flattened rows
    if (ck_.is_quantized(mod)) {
      QuantizedWeight q = ck_.quantized(mod);
      requantized = true;
      const int64_t words = cols * q.bits / 32, groups = cols / q.group_size;
      const auto* wq =
          static_cast<const uint32_t*>(static_cast<const void*>(q.weight->data)) + first_row * words;
      const size_t ss = dtype_size(q.scales->dtype);
      const uint8_t* s = q.scales->data + size_t(first_row * groups) * ss;
      const uint8_t* b = q.biases->data + size_t(first_row * groups) * ss;
      std::vector<float> f(n);
      affine_dequantize_f32(wq, s, b, q.scales->dtype, nr, cols, q.bits, q.group_size, f.data());
      release(wq, size_t(nr * words * 4));
      store(f, out_dtype, buf);
      return;
    }
    const TensorView& t = ck_.tensors().get(mod + ".weight");
    const size_t off = size_t(first_row * cols);
    if (shape_numel(t.shape) < int64_t(off + n))
      fail("{}: '{}' has shape {}, too small", ck_.path(), t.name, shape_str(t.shape));
    if (t.dtype == DType::F8_E4M3 || t.dtype == DType::F8_E5M2) {
      if (slice >= 0 || r0 % kFp8Block)
        fail("{}: '{}': stacked FP8 experts are not supported", ck_.path(), t.name);
      const TensorView& si = ck_.tensors().get(mod + ".weight_scale_inv");
      // the rows' slice of the weight and of its block scales (r0 is a multiple of 128)
      TensorView wv = t, sv = si;
      wv.shape = {nr, cols};
      wv.data = t.data + off;
      wv.nbytes = n;
      const int64_t bc = (cols + kFp8Block - 1) / kFp8Block;
      sv.shape = {(nr + kFp8Block - 1) / kFp8Block, bc};
      if (si.shape.size() != 2 || si.shape[1] != bc || (r0 / kFp8Block + sv.shape[0]) > si.shape[0])
        fail("{}: '{}' has shape {}, which does not match weight {}", ck_.path(), si.name,
             shape_str(si.shape), shape_str(t.shape));
      sv.data = si.data + size_t((r0 / kFp8Block) * bc) * dtype_size(si.dtype);
      std::vector<uint16_t> bf(n);
      fp8_block_dequantize(wv, sv, DType::BF16, bf.data());  // mlx_lm: product in f32, rounded to bf16
      release(wv.data, n);
      std::vector<float> f(n);
      for (size_t i = 0; i < n; ++i) f[i] = bf16_to_f32(bf[i]);
      store(f, out_dtype, buf);
      return;
    }
    if (!dtype_is_float(t.dtype))
      fail("{}: '{}' has non-float dtype {}", ck_.path(), t.name, dtype_name(t.dtype));
    const uint8_t* first = t.data + off * dtype_size(t.dtype);
    if (t.dtype == out_dtype) {
      std::memcpy(buf.data(), first, n * dtype_size(t.dtype));
    } else {
      std::vector<float> f(n);
      for (size_t i = 0; i < n; ++i) f[i] = load_as_f32(t.data, t.dtype, off + i);
      store(f, out_dtype, buf);
    }
    release(first, n * dtype_size(t.dtype));
  }

  static void store(const std::vector<float>& f, DType t, std::vector<uint8_t>& buf) {
    buf.resize(f.size() * dtype_size(t));
    for (size_t i = 0; i < f.size(); ++i) {
      if (t == DType::F32)
        std::memcpy(&buf[i * 4], &f[i], 4);
      else {
        const uint16_t h = t == DType::BF16 ? f32_to_bf16(f[i]) : f32_to_f16(f[i]);
        std::memcpy(&buf[i * 2], &h, 2);
      }
    }
  }

  bool requantized = false;

 private:
  const Checkpoint& ck_;
};

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
                                 const ConvertProgress& progress, int64_t block_rows, bool allow_nonfinite) {
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

  const fs::path final_dir(dst);
  std::string tmp_name = ".";
  tmp_name += final_dir.filename().string();
  tmp_name += ".partial-";
  tmp_name += std::to_string(::getpid());
  const fs::path tmp = final_dir.parent_path() / tmp_name;
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp);
  struct Cleanup {
    fs::path p;
    bool keep = false;
    ~Cleanup() {
      std::error_code e;
      if (!keep) fs::remove_all(p, e);
    }
  } cleanup{tmp};

  CheckpointWriter w(tmp.string(), {{"format", "mlx"}});
  // Declarations: quantized modules give weight/scales/biases, kept ones a single float tensor.
  for (const auto& t : res.plan.tensors) {
    if (t.decision.quantize) {
      Shape ws = t.shape, ss = t.shape;
      ws.back() = t.shape.back() * t.decision.bits / 32;
      ss.back() = t.shape.back() / t.decision.group_size;
      w.declare(t.module + ".weight", DType::U32, ws);
      w.declare(t.module + ".scales", sdt, ss);
      w.declare(t.module + ".biases", sdt, ss);
    } else {
      w.declare(weight_name(t), t.decision.keep, t.shape);
    }
  }
  Source source(ck);
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
        affine_quantize(buf.data(), sdt, nr, cols, bits, gs, wq.data(),
                        scales.data() + size_t(e) * sb + size_t(r0) * row_sb,
                        biases.data() + size_t(e) * sb + size_t(r0) * row_sb);
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
  json q = {{"group_size", policy.default_group}, {"bits", policy.default_bits}, {"mode", "affine"}};
  for (const auto& t : res.plan.tensors)
    if (t.decision.quantize &&
        (t.decision.bits != policy.default_bits || t.decision.group_size != policy.default_group))
      q[t.module] = {{"group_size", t.decision.group_size}, {"bits", t.decision.bits}, {"mode", "affine"}};
  cfg.erase("quantization_config");
  cfg["quantization"] = q;
  cfg["quantization_config"] = q;
  write_synced(tmp / "config.json", cfg.dump(4) + "\n");
  if (fs::is_directory(src)) copy_side_files(src, tmp);
  fsync_path(tmp.string());  // every file and name in it is on disk before the rename publishes it
  fs::rename(tmp, final_dir);
  cleanup.keep = true;
  fsync_path(final_dir.parent_path().empty() ? "." : final_dir.parent_path().string());
  return res;
}

}  // namespace tqlm
