#include "runtime/reasoning.h"

#include <algorithm>

namespace tqlm {

namespace {
const std::string kOpen = "<think>", kClose = "</think>";
}

bool ReasoningSplitter::prompt_opens_think(const std::string& prompt) {
  size_t o = prompt.rfind(kOpen);
  return o != std::string::npos && prompt.find(kClose, o) == std::string::npos;
}

std::vector<ReasoningSplitter::Piece> ReasoningSplitter::push(const std::string& text) {
  std::vector<Piece> out;
  buf_ += text;
  for (;;) {
    const std::string& tag = inside_ ? kClose : kOpen;
    size_t p = buf_.find(tag);
    if (p != std::string::npos) {
      if (p) out.push_back({buf_.substr(0, p), inside_});
      buf_.erase(0, p + tag.size());
      inside_ = !inside_;
      continue;
    }
    // Emit all but a suffix that could be the start of the tag.
    size_t hold = 0;
    for (size_t k = std::min(tag.size() - 1, buf_.size()); k > 0; --k)
      if (buf_.compare(buf_.size() - k, k, tag, 0, k) == 0) {
        hold = k;
        break;
      }
    if (buf_.size() > hold) out.push_back({buf_.substr(0, buf_.size() - hold), inside_});
    buf_.erase(0, buf_.size() - hold);
    return out;
  }
}

ReasoningBudget::ReasoningBudget(const Tokenizer& tok, int64_t budget, bool start_inside)
    : tok_(tok), budget_(budget), split_(start_inside), close_(tok.encode("\n" + kClose + "\n\n")) {}

int32_t ReasoningBudget::next(const std::vector<int32_t>& tokens, int64_t prompt_len) {
  seen_ = std::max(seen_, size_t(prompt_len));
  for (; seen_ < tokens.size(); ++seen_) {
    const bool was_inside = split_.inside();
    split_.push(tok_.decode_bytes({tokens[seen_]}));
    used_ += was_inside || split_.inside();
  }
  if (forcing_ < close_.size()) return close_[forcing_++];
  if (forcing_ != SIZE_MAX || !split_.inside() || used_ < budget_) {
    if (!split_.inside()) forcing_ = SIZE_MAX;  // closed: a later block gets closed again when it opens
    return -1;
  }
  forcing_ = 0;
  return close_.empty() ? -1 : close_[forcing_++];
}

std::vector<ReasoningSplitter::Piece> ReasoningSplitter::finish() {
  std::vector<Piece> out;
  if (!buf_.empty()) out.push_back({buf_, inside_});
  buf_.clear();
  return out;
}

}  // namespace tqlm
