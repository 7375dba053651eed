// Reasoning blocks (<think>...</think>) in generated text: ReasoningSplitter separates reasoning from the
// answer in a stream (tags may be split across pieces, the prompt may have opened the block already);
// ReasoningBudget ends a block the model has kept open for too many tokens.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace tqlm {

class ReasoningSplitter {
 public:
  struct Piece {
    std::string text;
    bool reasoning;
  };
  explicit ReasoningSplitter(bool start_inside = false) : inside_(start_inside) {}
  // True if a rendered prompt leaves a <think> block open (the model continues inside it).
  static bool prompt_opens_think(const std::string& prompt);

  std::vector<Piece> push(const std::string& text);
  std::vector<Piece> finish();
  bool inside() const { return inside_; }

 private:
  bool inside_;
  std::string buf_;
};

// A limit on reasoning tokens: once `budget` generated tokens fell inside a <think> block (counting from
// the prompt's open block, and over all blocks of the answer), the tokens of "\n</think>\n\n" are forced
// one per step and the answer follows. Use as RequestParams::force_token; budget 0 closes the block at once.
class ReasoningBudget {
 public:
  ReasoningBudget(const Tokenizer& tok, int64_t budget, bool start_inside);
  // The token to force next (or -1 to sample), given the sequence's tokens so far.
  int32_t next(const std::vector<int32_t>& tokens, int64_t prompt_len);
  int64_t used() const { return used_; }  // generated tokens counted as reasoning so far

 private:
  const Tokenizer& tok_;
  int64_t budget_, used_ = 0;
  ReasoningSplitter split_;
  std::vector<int32_t> close_;  // tokens of "\n</think>\n\n"
  size_t seen_ = 0;             // tokens already fed to split_
  size_t forcing_ = SIZE_MAX;   // index into close_ while closing
};

}  // namespace tqlm
