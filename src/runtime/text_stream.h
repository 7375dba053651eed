// Generated tokens -> text, streamed: never splits a UTF-8 character, never emits the start of a stop string
// before it is known not to be one, cuts the text at the first stop string. Special tokens are dropped except
// those the caller keeps (reasoning tags such as <think>).
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace tqlm {

class TextStream {
 public:
  TextStream(const Tokenizer& tok, std::vector<std::string> stop, const std::set<int32_t>* keep_special)
      : tok_(tok), dec_(tok, /*skip_special_tokens=*/false), stop_(std::move(stop)), keep_(keep_special) {}

  // Text that is safe to emit after this token; sets stopped() when a stop string appeared (the text up to
  // it is returned, the stop string and anything after it are not).
  std::string push(int32_t token);
  // The rest at the end of generation (nothing after a stop string).
  std::string finish();
  bool stopped() const { return stopped_; }

 private:
  std::string take(bool final);

  const Tokenizer& tok_;
  StreamDecoder dec_;
  std::vector<std::string> stop_;
  const std::set<int32_t>* keep_;
  std::string pending_;  // decoded, not yet emitted (may hold the start of a stop string)
  bool stopped_ = false;
};

}  // namespace tqlm
