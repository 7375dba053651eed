#include "runtime/text_stream.h"

#include <algorithm>

namespace tqlm {

namespace {
// Length of the longest suffix of `text` that is a proper prefix of some stop string.
size_t held_back(const std::string& text, const std::vector<std::string>& stops) {
  size_t hold = 0;
  for (const auto& s : stops)
    for (size_t k = std::min(s.size() - 1, text.size()); k > hold; --k)
      if (text.compare(text.size() - k, k, s, 0, k) == 0) {
        hold = k;
        break;
      }
  return hold;
}
}  // namespace

std::string TextStream::take(bool final) {
  size_t keep = final ? 0 : held_back(pending_, stop_);
  while (keep < pending_.size() && keep > 0 && (uint8_t(pending_[pending_.size() - keep]) & 0xC0) == 0x80)
    ++keep;
  std::string out;
  if (pending_.size() > keep) {
    out = pending_.substr(0, pending_.size() - keep);
    pending_.erase(0, pending_.size() - keep);
  }
  return out;
}

std::string TextStream::push(int32_t token) {
  if (stopped_) return {};
  if (!tok_.is_special(token) || (keep_ && keep_->count(token))) pending_ += dec_.push(token);
  size_t cut = std::string::npos;
  for (const auto& s : stop_)
    if (!s.empty())
      if (size_t p = pending_.find(s); p != std::string::npos) cut = std::min(cut, p);
  if (cut != std::string::npos) {
    pending_.resize(cut);
    stopped_ = true;
    return take(true);
  }
  return take(false);
}

std::string TextStream::finish() {
  if (!stopped_) pending_ += dec_.finish();
  return take(true);
}

}  // namespace tqlm
