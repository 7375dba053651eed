// Packing of pipeline messages: plain little-endian scalars, strings and arrays appended to a byte string,
// and a reader that checks every length against what is left (a short or corrupt message is an Error, never
// an out-of-bounds read).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "core/error.h"

namespace tqlm {

class WireWriter {
 public:
  template <typename T>
  void put(T v) {
    static_assert(std::is_trivially_copyable_v<T>);
    const size_t at = buf_.size();
    buf_.resize(at + sizeof(T));
    std::memcpy(buf_.data() + at, &v, sizeof(T));
  }
  template <typename T>
  void put_array(const T* p, size_t n) {
    static_assert(std::is_trivially_copyable_v<T>);
    put<uint64_t>(n);
    const size_t at = buf_.size();
    buf_.resize(at + n * sizeof(T));
    if (n) std::memcpy(buf_.data() + at, p, n * sizeof(T));
  }
  void put_string(const std::string& s) { put_array(s.data(), s.size()); }
  size_t size() const { return buf_.size(); }
  std::vector<uint8_t> take() { return std::move(buf_); }

 private:
  std::vector<uint8_t> buf_;
};

class WireReader {
 public:
  WireReader(const uint8_t* data, size_t size) : p_(data), left_(size) {}
  explicit WireReader(const std::vector<uint8_t>& m) : WireReader(m.data(), m.size()) {}

  template <typename T>
  T get() {
    static_assert(std::is_trivially_copyable_v<T>);
    need(sizeof(T));
    T v;
    std::memcpy(&v, p_, sizeof(T));
    p_ += sizeof(T), left_ -= sizeof(T);
    return v;
  }
  // An array's element count, checked against `max` and the bytes left; the elements follow (data()).
  template <typename T>
  size_t array_size(size_t max) {
    const uint64_t n = get<uint64_t>();
    if (n > max || n > left_ / sizeof(T)) fail("pipeline message: an array of {} items does not fit", n);
    return size_t(n);
  }
  template <typename T>
  std::vector<T> get_array(size_t max) {
    const size_t n = array_size<T>(max);
    std::vector<T> v(n);
    if (n) std::memcpy(v.data(), p_, n * sizeof(T));
    p_ += n * sizeof(T), left_ -= n * sizeof(T);
    return v;
  }
  std::string get_string(size_t max = 1 << 20) {
    std::vector<char> v = get_array<char>(max);
    return std::string(v.begin(), v.end());
  }
  const uint8_t* data() const { return p_; }
  size_t left() const { return left_; }
  void skip(size_t n) {
    need(n);
    p_ += n, left_ -= n;
  }

 private:
  void need(size_t n) const {
    if (n > left_) fail("pipeline message: truncated ({} bytes left, {} needed)", left_, n);
  }
  const uint8_t* p_;
  size_t left_;
};

}  // namespace tqlm
