// A read-only memory-mapped file (RAII). Tensor views point into it without copying. Untrusted paths:
// only regular files are opened as checkpoints, configs and data (a FIFO would block the reader forever,
// /dev/zero would never end); errors name the file and what it was meant to be.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tqlm {

// "a directory", "a FIFO", "a character device", ... for a path that exists; "" when it does not.
std::string file_kind(const std::string& path);

// Fails with "WHAT PATH: no such file" or "WHAT PATH: not a regular file (a FIFO)" unless `path` is a
// regular file (symbolic links followed).
void require_regular_file(const std::string& path, std::string_view what);

// Opens a regular file read-only without ever blocking on a FIFO (O_NONBLOCK, then fstat); fails naming
// `what` and the file's kind otherwise. Returns the descriptor (blocking mode restored).
int open_regular_file(const std::string& path, std::string_view what);

// Drops this process's pages of [p, p + n) (the whole pages inside it) when the range lies in a live
// MappedFile: the bytes stay readable (they come back from the page cache on the next read) but stop counting
// in the resident set until then. Ranges elsewhere (copies in owned memory) are left alone. Returns the bytes
// dropped.
size_t release_mapped_pages(const void* p, size_t n);

class MappedFile {
 public:
  explicit MappedFile(const std::string& path);  // throws Error naming the path
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace tqlm
