// safetensors reading: header validation (the header is untrusted input), zero-copy views into an mmap,
// and a checkpoint-wide tensor store over one file, a directory of shards, or an index.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/mapped_file.h"
#include "core/tensor.h"

namespace tqlm {

// Largest header we accept (the safetensors reference implementation uses the same limit).
constexpr uint64_t kMaxSafetensorsHeader = 100u << 20;

struct SafetensorsHeader {
  std::map<std::string, std::string> metadata;  // "__metadata__"
  // Tensors in file order (ascending data offset); data points into the buffer that was parsed.
  std::vector<TensorView> tensors;
};

// Parses and validates a whole safetensors image held in memory. `label` names it in errors.
// Checks: size >= 8, header length within limits and the buffer, valid JSON object, known dtypes,
// non-negative shapes, byte length == numel * dtype size, offsets inside the data area, no overlaps.
SafetensorsHeader parse_safetensors(const uint8_t* data, size_t size, const std::string& label);

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  const std::string& path() const { return file_.path(); }
  const SafetensorsHeader& header() const { return header_; }
  const std::vector<TensorView>& tensors() const { return header_.tensors; }

 private:
  MappedFile file_;
  SafetensorsHeader header_;
};

// model.safetensors.index.json: tensor name -> shard file name (validated: plain file names only).
struct SafetensorsIndex {
  std::map<std::string, std::string> weight_map;
  std::map<std::string, std::string> metadata_numbers;  // e.g. total_size, as written
};
SafetensorsIndex parse_safetensors_index(const std::string& json_text, const std::string& label);

// Every tensor of a checkpoint. Opened from a .safetensors file, or a directory holding either
// model.safetensors.index.json (its shards are opened and checked against it) or *.safetensors files.
// With `want` (a pipeline stage: only its layers), a shard none of whose tensors it wants is not kept
// mapped (with an index it is not even opened); find() sees only the kept shards, listed() every name.
class TensorStore {
 public:
  using NameFilter = std::function<bool(const std::string&)>;
  explicit TensorStore(const std::string& path, const NameFilter& want = {});

  const TensorView* find(const std::string& name) const;
  const TensorView& get(const std::string& name) const;  // throws naming the tensor
  bool has(const std::string& name) const { return find(name) != nullptr; }
  // Whether the checkpoint holds the tensor, in a kept shard or not.
  bool listed(const std::string& name) const { return find(name) || skipped_.count(name); }
  // Every tensor name of the checkpoint (kept shards and skipped ones), sorted.
  std::vector<std::string> names() const;
  // All tensors, sorted by name.
  std::vector<const TensorView*> all() const;
  const std::vector<std::string>& shard_paths() const { return shard_paths_; }
  uint64_t total_bytes() const;
  // Which shard file holds a tensor.
  const std::string& file_of(const std::string& name) const;

 private:
  void add_file(const std::string& path, const NameFilter& want);
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::vector<std::string> shard_paths_;
  std::unordered_map<std::string, std::pair<size_t, size_t>> index_;  // name -> (file, tensor)
  std::unordered_set<std::string> skipped_;                           // names in shards not kept
};

}  // namespace tqlm
