// tokenizer.json "decoder": ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip and Sequence.
// decode() reproduces HF tokenizers' decode_chain on the whole token list (text identical to HF);
// piece() gives the raw bytes of one token for streaming, carrying what little state the chain needs.
#pragma once

#include <cstddef>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tokenizer/tokenizer_regex.h"

namespace tqlm {

class Decoder {
 public:
  // `j` may be null (no decoder: tokens are joined with spaces, like HF).
  Decoder(const nlohmann::json& j, const std::string& where);
  ~Decoder();
  Decoder(Decoder&&) noexcept;
  Decoder& operator=(Decoder&&) noexcept;

  std::string decode(std::vector<std::string> tokens) const;

  struct StreamState {
    size_t index = 0;       // tokens seen so far
    size_t strip_left = 0;  // leading characters a fused Strip may still remove
    bool strip_init = false;
  };
  // Bytes of one token in a stream (possibly an incomplete UTF-8 sequence).
  std::string piece(const std::string& token, StreamState& st) const;

  struct Step;  // one decoder of the (flattened) chain

 private:
  void add(const nlohmann::json& j, const std::string& where);
  std::vector<std::unique_ptr<Step>> steps_;
  bool none_ = false;
};

}  // namespace tqlm
