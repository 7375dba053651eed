// libFuzzer target: tokenizer.json loading (Tokenizer::from_file's path after the file is read: depth-limited
// parse, then model, normalizer, pre-tokenizer, decoder, added tokens and post-processor with their limits),
// then encoding a few fixed strings and the fuzz tail, decoding the ids (whole, skipping specials, streamed)
// and the pre-tokenized pieces. Any input must end in ids or a tqlm::Error, never a crash, hang or blowup.
// Input: tokenizer.json, optionally followed by a NUL byte and text to encode.
#include <cstdint>
#include <string_view>

#include "core/error.h"
#include "core/json.h"
#include "tokenizer/tokenizer.h"

namespace {

void exercise(const tqlm::Tokenizer& tok, std::string_view text) {
  try {
    for (bool special : {false, true}) {
      const std::vector<int32_t> ids = tok.encode(text, special);
      volatile size_t sink = tok.decode(ids).size() + tok.decode(ids, true).size();
      tqlm::StreamDecoder sd(tok);
      for (int32_t id : ids) sink = sink + sd.push(id).size();
      sink = sink + sd.finish().size();
      (void)sink;
    }
    volatile size_t n = tok.pieces(text).size();
    (void)n;
  } catch (const tqlm::Error&) {  // invalid UTF-8 in the text
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t sep = in.find('\0');
  const std::string label = "fuzz/tokenizer.json";
  try {
    const auto j = tqlm::parse_json_limited<nlohmann::json>(in.substr(0, sep), label);
    const tqlm::Tokenizer tok = tqlm::Tokenizer::from_json(j, label);
    static const char* const kTexts[] = {"Hello world! It's 2024, isn't it?",
                                         "  leading   spaces\n\n\ttabs ",
                                         "ünïcödé 😀 中文 日本語",
                                         "<|im_start|>user\nhi<|im_end|><s></s>",
                                         "",
                                         "a\r\nb   c1234567890"};
    for (const char* t : kTexts) exercise(tok, t);
    if (sep != std::string_view::npos) exercise(tok, in.substr(sep + 1));
    std::vector<int32_t> ids = {-1, 0, 1, 2, 255, 256, int32_t(tok.vocab_size()), INT32_MAX};
    volatile size_t sink = tok.decode(ids).size() + tok.decode_bytes(ids, true).size();
    for (int32_t id : ids)
      if (auto s = tok.id_to_token(id)) sink = sink + (tok.token_to_id(*s) ? 1 : 0);
    (void)sink;
  } catch (const tqlm::Error&) {
  }
  return 0;
}
