// Splits streamed model text into reasoning (inside <think>...</think>) and answer, tolerating tags split
// across pieces and a prompt that already opened the <think> block.
#pragma once

#include <string>
#include <vector>

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

}  // namespace tqlm
