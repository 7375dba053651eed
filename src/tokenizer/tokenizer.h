// A tokenizer loaded from a HF tokenizer.json (BPE model: byte-level GPT-2/Llama 3/Qwen2/SmolLM2/MiniMax
// style, or SentencePiece-style with Metaspace/Prepend+Replace and byte fallback). encode() gives the
// same ids as HF tokenizers' encode(text, add_special_tokens); decode() the same text as its decode().
// Thread-safe for concurrent encode/decode.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/bpe.h"
#include "tokenizer/tokenizer_added.h"
#include "tokenizer/tokenizer_decoder.h"
#include "tokenizer/tokenizer_normalizer.h"
#include "tokenizer/tokenizer_post.h"
#include "tokenizer/tokenizer_pretok.h"

namespace tqlm {

class Tokenizer {
 public:
  // `path`: a tokenizer.json file, or a model directory that contains one.
  static Tokenizer from_file(const std::string& path);
  // `label` names the source in errors.
  static Tokenizer from_json(const nlohmann::json& j, const std::string& label);

  // Throws tqlm::Error when `text` is not valid UTF-8.
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = false) const;

  // The pieces the model sees (normalized, pre-tokenized; added tokens as their content), as HF's
  // pre_tokenizer.pre_tokenize_str shows them. For tests and debugging.
  std::vector<std::string> pieces(std::string_view text) const;

  // Text exactly as HF's decode(ids, skip_special_tokens). Ids outside the vocab are skipped, as HF does.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = false) const;
  // Raw bytes of the ids (no U+FFFD substitution); what the streaming decoder emits, concatenated.
  std::string decode_bytes(const std::vector<int32_t>& ids, bool skip_special_tokens = false) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  std::optional<std::string> id_to_token(int32_t id) const;
  bool is_special(int32_t id) const;
  // One past the largest id (model vocab and added tokens).
  size_t vocab_size() const { return vocab_size_; }
  const std::vector<AddedToken>& added_tokens() const { return added_.tokens(); }
  const PostProcessor& post_processor() const { return post_; }
  const Decoder& decoder() const { return *decoder_; }

 private:
  static Tokenizer parse(const nlohmann::json& j, const std::string& label);
  Tokenizer() = default;
  void encode_text(const std::string& text, bool at_start, std::vector<int32_t>& out) const;
  // Added-token split and normalization (steps 1-2 of encoding).
  std::vector<Segment> segments(std::string_view text) const;

  std::string label_;
  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<Decoder> decoder_;
  AddedVocab added_;
  PostProcessor post_;
  size_t vocab_size_ = 0;
};

// Turns ids into text piece by piece, emitting only complete UTF-8 characters: bytes of a character
// split across tokens are held back until it completes. Invalid bytes become U+FFFD.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok, bool skip_special_tokens = false)
      : tok_(tok), skip_special_(skip_special_tokens) {}
  // Text that became complete with this id (possibly empty).
  std::string push(int32_t id);
  // Whatever is still held back (an incomplete character becomes U+FFFD).
  std::string finish();

 private:
  const Tokenizer& tok_;
  bool skip_special_;
  Decoder::StreamState state_;
  std::string pending_;
};

}  // namespace tqlm
