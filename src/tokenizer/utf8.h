// UTF-8 primitives for the tokenizer: scanning, validation (errors name the input and byte offset),
// encoding, and the lossy conversion (one U+FFFD per maximal invalid subpart, as Rust's
// String::from_utf8_lossy and Python's errors="replace" do).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tqlm::utf8 {

enum class SeqStatus { kValid, kInvalid, kTruncated };

struct Seq {
  SeqStatus status;
  size_t len;  // kValid: sequence length; kInvalid: maximal subpart to replace; kTruncated: bytes present
};

// Examines the sequence that starts at s[i] (i < s.size()).
Seq scan(std::string_view s, size_t i);

// Decodes the code point at s[i], which must start a valid sequence; advances i past it.
char32_t next(std::string_view s, size_t& i);

// Appends the UTF-8 encoding of cp.
void append(std::string& out, char32_t cp);

// Byte offset of the first invalid or truncated sequence, or npos when s is valid UTF-8.
size_t first_invalid(std::string_view s);

// Throws tqlm::Error "<what>: invalid UTF-8 at byte N" when s is not valid UTF-8.
void validate(std::string_view s, std::string_view what);

// Invalid sequences (including a truncated tail) become U+FFFD.
std::string lossy(std::string_view bytes);

// Number of leading bytes of s that can be emitted now: everything except a truncated sequence at the
// very end (which may still be completed by more bytes).
size_t complete_prefix(std::string_view s);

// True for the code points of Unicode's White_Space property.
bool is_white_space(char32_t cp);

}  // namespace tqlm::utf8
