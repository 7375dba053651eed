#include "core/mapped_file.h"

#include <mutex>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace tqlm {

namespace {
const char* kind_of(mode_t m) {
  if (S_ISREG(m)) return "a regular file";
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  return "not a regular file";
}
}  // namespace

std::string file_kind(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "";
  return kind_of(st.st_mode);
}

void require_regular_file(const std::string& path, std::string_view what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int e = errno;
    if (e == ENOENT || e == ENOTDIR) fail("{} {}: no such file", what, path);
    fail("{} {}: cannot stat: {}", what, path, std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) fail("{} {}: not a regular file ({})", what, path, kind_of(st.st_mode));
}

int open_regular_file(const std::string& path, std::string_view what) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    if (e == ENOENT || e == ENOTDIR) fail("{} {}: no such file", what, path);
    fail("{} {}: cannot open: {}", what, path, std::strerror(e));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    const char* kind = S_ISREG(st.st_mode) ? "cannot stat" : kind_of(st.st_mode);
    ::close(fd);
    fail("{} {}: not a regular file ({})", what, path, kind);
  }
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  return fd;
}

namespace {
std::mutex g_maps_mu;
std::vector<std::pair<const uint8_t*, size_t>> g_maps;  // live mappings (MappedFile registers its own)
}  // namespace

size_t release_mapped_pages(const void* p, size_t n) {
  const auto* b = static_cast<const uint8_t*>(p);
  std::lock_guard<std::mutex> lock(g_maps_mu);
  for (const auto& [data, size] : g_maps) {
    if (b < data || b + n > data + size) continue;
    const uintptr_t page = uintptr_t(::sysconf(_SC_PAGESIZE));
    const uintptr_t lo = (uintptr_t(b) + page - 1) / page * page, hi = uintptr_t(b + n) / page * page;
    if (hi <= lo) return 0;
    return ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED) == 0 ? size_t(hi - lo) : 0;
  }
  return 0;
}

MappedFile::MappedFile(const std::string& path) : path_(path) {
  const int fd = open_regular_file(path, "tensor file");  // a FIFO or device: refused, never waited on
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    fail("{}: cannot stat: {}", path, std::strerror(e));
  }
  size_ = size_t(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      fail("{}: cannot mmap {} bytes: {}", path, size_, std::strerror(e));
    }
    data_ = static_cast<const uint8_t*>(p);
    std::lock_guard<std::mutex> lock(g_maps_mu);
    g_maps.emplace_back(data_, size_);
  }
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (!data_) return;
  {
    std::lock_guard<std::mutex> lock(g_maps_mu);
    std::erase(g_maps, std::make_pair(data_, size_));
  }
  ::munmap(const_cast<uint8_t*>(data_), size_);
}

}  // namespace tqlm
