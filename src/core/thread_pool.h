// A fixed pool of worker threads running one parallel loop at a time. The forward pass issues a few loops per
// layer, some only tens of microseconds long (a decode step's expert matrices), so between loops workers spin
// on the job counter for up to kSpinMicros (pause instructions, never sched_yield: see spin_until), then
// sleep on a condition variable; the caller waits for the last chunk the same way. A pool left idle (a server
// between requests) sleeps after that bound and takes no CPU from other processes.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace tqlm {

// Threads a pool may have (docs/limits.md); the CLI also refuses more than kMaxThreadsPerCpu per CPU.
inline constexpr int kMaxThreads = 1024;
inline constexpr int kMaxThreadsPerCpu = 8;
// How long an idle worker (or a caller waiting for workers) spins before it sleeps.
inline constexpr int kSpinMicros = 200;

class ThreadPool {
 public:
  // 0: physical cores (see default_threads). More than kMaxThreads, or threads the system cannot create, is
  // an Error (the threads already started are stopped first), never a hang.
  explicit ThreadPool(int n_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return int(workers_.size()) + 1; }

  // Calls fn(begin, end, thread_index) over [0, n) split into chunks of `grain` items, taken dynamically
  // by all threads (the caller included). Returns when all chunks are done. Exceptions from fn are
  // rethrown in the caller.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t, int)>& fn);

  static int default_threads();

 private:
  void worker(int index);
  void stop_workers();
  void run_chunks(int index);

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_start_, cv_done_;
  // The job: written by the caller before generation_ is bumped (release), read by workers after they see it.
  const std::function<void(int64_t, int64_t, int)>* fn_ = nullptr;
  int64_t n_ = 0, grain_ = 1;
  std::atomic<int64_t> next_{0};
  std::atomic<int> pending_{0};          // workers still in the current job
  std::atomic<uint64_t> generation_{0};  // bumped once per job
  std::atomic<bool> stop_{false};
  int sleepers_ = 0;             // workers asleep on cv_start_ (mu_)
  bool caller_waiting_ = false;  // the caller asleep on cv_done_ (mu_)
  std::exception_ptr error_;     // first exception of the job (mu_)
};

}  // namespace tqlm
