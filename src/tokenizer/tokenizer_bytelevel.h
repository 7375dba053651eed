// GPT-2's byte-level alphabet: each byte is shown as one printable Unicode character.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace tqlm::bytelevel {

// UTF-8 of the character that stands for byte b.
const std::string& byte_char(uint8_t b);

// Appends the byte-level form of `bytes` (each byte replaced by its character).
void encode(std::string_view bytes, std::string& out);

// Maps a byte-level string back to bytes. Returns false (leaving `out` unspecified) when some
// character is not in the alphabet.
bool decode(std::string_view text, std::string& out);

}  // namespace tqlm::bytelevel
