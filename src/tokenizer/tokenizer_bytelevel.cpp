#include "tokenizer/tokenizer_bytelevel.h"

#include <array>

#include "tokenizer/utf8.h"

namespace tqlm::bytelevel {
namespace {

struct Alphabet {
  std::array<std::string, 256> chars;
  std::array<int16_t, 324> byte_of;  // code point -> byte, -1 when not in the alphabet

  Alphabet() {
    byte_of.fill(-1);
    auto printable = [](int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE); };
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      const char32_t cp = printable(b) ? char32_t(b) : char32_t(256 + extra++);
      utf8::append(chars[b], cp);
      byte_of[cp] = static_cast<int16_t>(b);
    }
  }
};

const Alphabet& alphabet() {
  static const Alphabet a;
  return a;
}

}  // namespace

const std::string& byte_char(uint8_t b) {
  return alphabet().chars[b];
}

void encode(std::string_view bytes, std::string& out) {
  const Alphabet& a = alphabet();
  out.reserve(out.size() + bytes.size() + bytes.size() / 4);
  for (unsigned char b : bytes) out += a.chars[b];
}

bool decode(std::string_view text, std::string& out) {
  const Alphabet& a = alphabet();
  size_t i = 0;
  while (i < text.size()) {
    if (utf8::scan(text, i).status != utf8::SeqStatus::kValid) return false;
    const char32_t cp = utf8::next(text, i);
    if (cp >= a.byte_of.size() || a.byte_of[cp] < 0) return false;
    out += static_cast<char>(a.byte_of[cp]);
  }
  return true;
}

}  // namespace tqlm::bytelevel
