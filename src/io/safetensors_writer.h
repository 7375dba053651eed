// safetensors writing for checkpoints: tensors are declared first (names, dtypes, shapes), assigned to
// shards of at most `max_shard_bytes`, then their bytes are streamed in declaration order. Files are
// written under temporary names and renamed only by finish(); an unfinished writer removes them.
#pragma once

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace tqlm {

constexpr uint64_t kDefaultMaxShardBytes = 5ull << 30;  // mlx_lm's MAX_FILE_SIZE_GB = 5

class CheckpointWriter {
 public:
  // Writes `<dir>/model.safetensors` (one shard) or `<dir>/model-0000i-of-0000N.safetensors`, plus
  // `<dir>/model.safetensors.index.json`. `metadata` goes into every shard's __metadata__.
  CheckpointWriter(std::string dir, std::map<std::string, std::string> metadata,
                   uint64_t max_shard_bytes = kDefaultMaxShardBytes);
  ~CheckpointWriter();
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;

  void declare(const std::string& name, DType dtype, const Shape& shape);
  // Appends bytes of the next declared tensor (may be called several times per tensor).
  void write(const std::string& name, const void* data, size_t nbytes);
  // Checks every tensor was fully written, writes the index, renames all files into place.
  void finish(uint64_t total_parameters = 0);

  size_t num_shards() const { return shards_.size(); }
  uint64_t total_bytes() const;
  const std::vector<std::string>& final_paths() const { return final_paths_; }

 private:
  struct Entry {
    std::string name;
    DType dtype;
    Shape shape;
    uint64_t nbytes;
    size_t shard;
  };
  struct Shard {
    std::vector<size_t> entries;
    uint64_t data_bytes = 0;
  };
  void plan();
  void open_shard(size_t s);
  void close_shard();

  std::string dir_;
  std::map<std::string, std::string> metadata_;
  uint64_t max_shard_bytes_;
  std::vector<Entry> entries_;
  std::vector<Shard> shards_;
  std::vector<std::string> final_paths_, tmp_paths_;
  bool planned_ = false, finished_ = false;
  size_t cur_entry_ = 0;
  uint64_t cur_written_ = 0;
  size_t cur_shard_ = SIZE_MAX;
  std::FILE* fp_ = nullptr;
};

}  // namespace tqlm
