#include "io/safetensors_writer.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/files.h"

namespace tqlm {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

CheckpointWriter::CheckpointWriter(std::string dir, std::map<std::string, std::string> metadata,
                                   uint64_t max_shard_bytes)
    : dir_(std::move(dir)), metadata_(std::move(metadata)), max_shard_bytes_(max_shard_bytes) {
  if (max_shard_bytes_ == 0) fail("max shard size must be positive");
}

CheckpointWriter::~CheckpointWriter() {
  if (fp_) std::fclose(fp_);
  if (!finished_) {
    std::error_code ec;
    for (const auto& p : tmp_paths_) fs::remove(p, ec);
  }
}

void CheckpointWriter::declare(const std::string& name, DType dtype, const Shape& shape) {
  if (planned_) fail("{}: tensor '{}' declared after writing started", dir_, name);
  for (const auto& e : entries_)
    if (e.name == name) fail("{}: tensor '{}' declared twice", dir_, name);
  entries_.push_back({name, dtype, shape, uint64_t(shape_numel(shape)) * dtype_size(dtype), 0});
}

uint64_t CheckpointWriter::total_bytes() const {
  uint64_t n = 0;
  for (const auto& e : entries_) n += e.nbytes;
  return n;
}

// Greedy in declaration order, as mlx_lm's make_shards: a tensor that would push the current shard
// past the limit starts a new one (a tensor larger than the limit gets a shard of its own).
void CheckpointWriter::plan() {
  if (entries_.empty()) fail("{}: no tensors to write", dir_);
  shards_.clear();
  shards_.emplace_back();
  for (size_t i = 0; i < entries_.size(); ++i) {
    Shard* s = &shards_.back();
    if (!s->entries.empty() && s->data_bytes + entries_[i].nbytes > max_shard_bytes_) {
      shards_.emplace_back();
      s = &shards_.back();
    }
    s->entries.push_back(i);
    s->data_bytes += entries_[i].nbytes;
    entries_[i].shard = shards_.size() - 1;
  }
  size_t n = shards_.size();
  for (size_t i = 0; i < n; ++i) {
    std::string name =
        n == 1 ? "model.safetensors" : fmt::format("model-{:05d}-of-{:05d}.safetensors", i + 1, n);
    final_paths_.push_back((fs::path(dir_) / name).string());
    tmp_paths_.push_back((fs::path(dir_) / ("." + name + ".tmp")).string());
  }
  tmp_paths_.push_back((fs::path(dir_) / ".model.safetensors.index.json.tmp").string());
  planned_ = true;
}

void CheckpointWriter::open_shard(size_t s) {
  fp_ = std::fopen(tmp_paths_[s].c_str(), "wb");
  if (!fp_) fail("{}: cannot create: {}", tmp_paths_[s], std::strerror(errno));
  cur_shard_ = s;
  ojson h = ojson::object();
  if (!metadata_.empty()) {
    ojson m = ojson::object();
    for (const auto& [k, v] : metadata_) m[k] = v;
    h["__metadata__"] = m;
  }
  uint64_t off = 0;
  for (size_t i : shards_[s].entries) {
    const Entry& e = entries_[i];
    h[e.name] = {{"dtype", std::string(dtype_name(e.dtype))},
                 {"shape", e.shape},
                 {"data_offsets", {off, off + e.nbytes}}};
    off += e.nbytes;
  }
  std::string text = h.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // pad so tensor data starts 8-byte aligned
  uint8_t len[8];
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(n >> (8 * i));
  if (std::fwrite(len, 1, 8, fp_) != 8 || std::fwrite(text.data(), 1, text.size(), fp_) != text.size())
    fail("{}: write failed: {}", tmp_paths_[s], std::strerror(errno));
}

void CheckpointWriter::close_shard() {
  if (!fp_) return;
  bool ok = std::fflush(fp_) == 0;
  ok = ::fsync(::fileno(fp_)) == 0 && ok;  // on disk before the rename that publishes it
  ok = (std::fclose(fp_) == 0) && ok;
  fp_ = nullptr;
  if (!ok) fail("{}: write failed (disk full?): {}", tmp_paths_[cur_shard_], std::strerror(errno));
}

void CheckpointWriter::write(const std::string& name, const void* data, size_t nbytes) {
  if (!planned_) plan();
  if (cur_entry_ >= entries_.size()) fail("{}: tensor '{}' written but all tensors are complete", dir_, name);
  const Entry& e = entries_[cur_entry_];
  if (e.name != name) fail("{}: expected data for tensor '{}', got '{}'", dir_, e.name, name);
  if (cur_written_ + nbytes > e.nbytes)
    fail("{}: tensor '{}' got {} bytes, more than its {} bytes", dir_, name, cur_written_ + nbytes, e.nbytes);
  if (e.shard != cur_shard_) {
    close_shard();
    open_shard(e.shard);
  }
  if (nbytes && std::fwrite(data, 1, nbytes, fp_) != nbytes)
    fail("{}: write failed (disk full?): {}", tmp_paths_[cur_shard_], std::strerror(errno));
  cur_written_ += nbytes;
  if (cur_written_ == e.nbytes) {
    ++cur_entry_;
    cur_written_ = 0;
  }
}

void CheckpointWriter::finish(uint64_t total_parameters) {
  if (!planned_) plan();
  // zero-byte tensors at the end need no write() call
  while (cur_entry_ < entries_.size() && entries_[cur_entry_].nbytes == 0)
    write(entries_[cur_entry_].name, nullptr, 0);
  if (cur_entry_ != entries_.size())
    fail("{}: tensor '{}' was never fully written", dir_, entries_[cur_entry_].name);
  close_shard();
  // Shards holding only empty tensors were never opened: create them now.
  for (size_t s = 0; s < shards_.size(); ++s)
    if (!fs::exists(tmp_paths_[s])) {
      open_shard(s);
      close_shard();
    }
  ojson idx;
  ojson md = {{"total_size", total_bytes()}};
  if (total_parameters) md["total_parameters"] = total_parameters;
  idx["metadata"] = md;
  std::map<std::string, std::string> wm;
  for (const auto& e : entries_) wm[e.name] = fs::path(final_paths_[e.shard]).filename().string();
  ojson w = ojson::object();
  for (const auto& [k, v] : wm) w[k] = v;
  idx["weight_map"] = w;
  const std::string& itmp = tmp_paths_.back();
  {
    std::FILE* f = std::fopen(itmp.c_str(), "wb");
    if (!f) fail("{}: cannot create: {}", itmp, std::strerror(errno));
    std::string text = idx.dump(4) + "\n";
    bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
    ok = std::fflush(f) == 0 && ok;
    ok = ::fsync(::fileno(f)) == 0 && ok;
    ok = (std::fclose(f) == 0) && ok;
    if (!ok) fail("{}: write failed", itmp);
  }
  for (size_t s = 0; s < shards_.size(); ++s) fs::rename(tmp_paths_[s], final_paths_[s]);
  fs::rename(itmp, fs::path(dir_) / "model.safetensors.index.json");
  fsync_path(dir_);  // the renames themselves
  finished_ = true;
}

}  // namespace tqlm
