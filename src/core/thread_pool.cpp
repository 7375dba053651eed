#include "core/thread_pool.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <set>
#include <string>
#include <system_error>
#include <utility>

#include "core/error.h"

namespace tqlm {

int ThreadPool::default_threads() {
  // Physical cores: count distinct (physical id, core id) pairs; fall back to hardware_concurrency.
  std::ifstream in("/proc/cpuinfo");
  std::set<std::pair<std::string, std::string>> cores;
  std::string line, phys = "0";
  while (std::getline(in, line)) {
    auto val = [&] { return line.substr(line.find(':') + 1); };
    if (line.rfind("physical id", 0) == 0)
      phys = val();
    else if (line.rfind("core id", 0) == 0)
      cores.insert({phys, val()});
  }
  int hw = int(std::thread::hardware_concurrency());
  int n = cores.empty() ? hw : int(cores.size());
  return std::max(1, std::min(n, hw > 0 ? hw : n));
}

ThreadPool::ThreadPool(int n_threads) {
  if (n_threads < 0 || n_threads > kMaxThreads)
    fail("thread count {} is outside [1, kMaxThreads = {}] (0: physical cores)", n_threads, kMaxThreads);
  const int n = n_threads > 0 ? n_threads : default_threads();
  try {
    for (int i = 1; i < n; ++i) workers_.emplace_back([this, i] { worker(i); });
  } catch (const std::system_error& e) {  // EAGAIN: the system's thread or memory limit
    const size_t started = workers_.size();
    stop_workers();
    fail("cannot start {} threads (started {}): {}; use fewer with -t", n, started + 1, e.what());
  }
}

ThreadPool::~ThreadPool() {
  stop_workers();
}

namespace {
// Spins (pause) until done() or kSpinMicros have passed; returns done(). No yield: sched_yield hands the core
// to any runnable thread of another process, even a nice-19 one, for its whole time slice (a millisecond or
// more), and a decode step waits on hundreds of these loops (measured: 2-core machine with a niced job
// running, SmolLM2 decode at 102-109 tok/s with the yield, 130-188 without, docs/architecture.md). After
// kSpinMicros the thread sleeps instead.
template <class Done>
bool spin_until(const Done& done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(kSpinMicros);
  for (int i = 1;; ++i) {
    if (done()) return true;
    __builtin_ia32_pause();
    if (i % 256 == 0 && std::chrono::steady_clock::now() > deadline) return done();
  }
}
}  // namespace

void ThreadPool::stop_workers() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_.store(true);
  }
  cv_start_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
}

void ThreadPool::run_chunks(int index) {
  for (;;) {
    int64_t b = next_.fetch_add(grain_);
    if (b >= n_) break;
    int64_t e = std::min(n_, b + grain_);
    try {
      (*fn_)(b, e, index);
    } catch (...) {
      std::lock_guard<std::mutex> lk(mu_);
      if (!error_) error_ = std::current_exception();
    }
  }
}

// A worker spins for the next job, then sleeps. The caller bumps generation_ and then, under mu_, wakes the
// sleepers; a worker counts itself a sleeper and re-checks generation_ under mu_ before it waits, so no bump
// is missed.
void ThreadPool::worker(int index) {
  uint64_t seen = 0;
  for (;;) {
    auto ready = [&] {
      return stop_.load(std::memory_order_acquire) || generation_.load(std::memory_order_acquire) != seen;
    };
    if (!spin_until(ready)) {
      std::unique_lock<std::mutex> lk(mu_);
      ++sleepers_;
      cv_start_.wait(lk, ready);
      --sleepers_;
    }
    if (stop_.load()) return;
    seen = generation_.load(std::memory_order_acquire);
    run_chunks(index);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lk(mu_);
      if (caller_waiting_) cv_done_.notify_one();
    }
  }
}

void ThreadPool::parallel_for(int64_t n, int64_t grain,
                              const std::function<void(int64_t, int64_t, int)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  if (workers_.empty() || n <= grain) {
    fn(0, n, 0);
    return;
  }
  fn_ = &fn;  // no worker reads these until the bump below
  n_ = n;
  grain_ = grain;
  next_.store(0);
  pending_.store(int(workers_.size()));
  error_ = nullptr;
  generation_.fetch_add(1, std::memory_order_acq_rel);
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (sleepers_ > 0) cv_start_.notify_all();
  }
  run_chunks(0);
  auto done = [&] { return pending_.load(std::memory_order_acquire) == 0; };
  std::exception_ptr err;
  if (!spin_until(done)) {
    std::unique_lock<std::mutex> lk(mu_);
    caller_waiting_ = true;
    cv_done_.wait(lk, done);
    caller_waiting_ = false;
  }
  {
    std::lock_guard<std::mutex> lk(mu_);
    fn_ = nullptr;
    err = error_;
  }
  if (err) std::rethrow_exception(err);
}

}  // namespace tqlm
