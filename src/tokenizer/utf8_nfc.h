// Unicode canonical normalization (NFC and NFD) with tables generated from the Unicode data
// (utf8_nfc_tables.cpp, written by utf8_nfc_tables_gen.py).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tqlm::utf8 {

// Input must be valid UTF-8.
std::string nfc(std::string_view s);
std::string nfd(std::string_view s);

namespace detail {
extern const uint32_t kDecompTable[];
extern const size_t kDecompCount;
extern const uint32_t kCccTable[];
extern const size_t kCccCount;
}  // namespace detail

}  // namespace tqlm::utf8
