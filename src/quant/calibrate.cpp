#include "quant/calibrate.h"

#include <algorithm>

#include "core/error.h"

namespace tqlm {

CalibStats calibrate(Model& model, const std::vector<int32_t>& tokens, const CalibrateOptions& opt,
                     const std::function<void(int64_t, int64_t)>& progress) {
  if (opt.ctx < 2 || opt.chunk < 1 || opt.windows < 0)
    fail("calibrate: ctx must be >= 2, chunk >= 1 and windows >= 0 (got {}, {}, {})", opt.ctx, opt.chunk,
         opt.windows);
  const int64_t n = int64_t(tokens.size());
  if (n < 2) fail("calibrate: the calibration text has {} token(s); it needs at least 2", n);
  int64_t windows = std::max<int64_t>(1, n / opt.ctx);
  if (opt.windows) windows = std::min(windows, opt.windows);
  CalibStats stats;
  CalibObserver obs(model.config(), stats);
  model.set_observer(&obs);
  struct Reset {  // the observer is local: never left behind, even on an error
    Model& m;
    ~Reset() { m.set_observer(nullptr); }
  } reset{model};
  const int64_t V = model.config().vocab, chunk = std::min(opt.chunk, opt.ctx);
  std::vector<float> logits(size_t(chunk * V));  // [chunk, vocab]: every row reaches the LM head
  for (int64_t w = 0; w < windows; ++w) {
    const int64_t begin = w * opt.ctx, len = std::min(opt.ctx, n - begin);
    auto cache = model.new_cache();
    for (int64_t t = 0; t < len; t += chunk) {
      const int64_t m = std::min(chunk, len - t);
      model.forward(&tokens[size_t(begin + t)], m, *cache, logits.data(), true);
      stats.tokens += m;
    }
    if (progress) progress(w + 1, windows);
  }
  stats.meta["ctx"] = std::to_string(opt.ctx);
  stats.meta["windows"] = std::to_string(windows);
  stats.meta["model_type"] = model.config().model_type;
  return stats;
}

}  // namespace tqlm
