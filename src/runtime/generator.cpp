#include "runtime/generator.h"

#include "core/error.h"

namespace tqlm {

Generator::Generator(Model& model, const Tokenizer& tok, const KVSpec& kv, uint64_t kv_mem)
    : model_(model), tok_(tok), pool_(model.new_pool(kv, kv_mem)) {}

GenerateStats Generator::generate(const std::vector<int32_t>& prompt, Sampler& sampler,
                                  const GenerateOptions& opt,
                                  const std::function<bool(const std::string&)>& on_text) {
  SchedulerOptions so;
  so.max_seqs = 1;
  so.step_tokens = opt.prefill_chunk;
  so.ctx = opt.ctx;
  Scheduler sched(model_, pool_, &tok_, so);
  RequestParams rp;
  rp.sampling = sampler.params();
  rp.sampling.seed += uint64_t(turn_++);  // a chat's turns draw different random numbers
  rp.max_tokens = opt.max_tokens;
  rp.stop = opt.stop;
  rp.ignore_eos = opt.ignore_eos;
  const int64_t id = sched.submit(prompt, rp);
  GenerateStats st;
  while (!sched.idle())
    for (const SeqEvent& e : sched.step()) {
      if (!e.text.empty() && !on_text(e.text)) sched.cancel(id);
      if (e.finished) {
        if (e.finish_reason == "error") fail("{}", e.error);
        st.finish_reason = e.finish_reason == "cancelled" ? "stop" : e.finish_reason;
      }
    }
  const SeqStats& s = sched.stats(id);
  st.cached_tokens = s.cached_tokens;
  st.prompt_tokens = s.prompt_tokens - s.cached_tokens;
  st.generated = s.generated;
  const double t_prompt_end = s.generated > 0 ? s.t_first_token : s.t_finish;
  st.prompt_seconds = t_prompt_end - s.t_submit;
  st.gen_seconds = s.t_finish - t_prompt_end;
  st.kv_bytes = s.kv_bytes;
  st.kv_tokens = s.kv_tokens;
  return st;
}

}  // namespace tqlm
