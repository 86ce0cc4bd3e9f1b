// core/thread_pool.h: a fixed set of worker threads that run one parallel_for at a time.
// The engine thread owns the pool; kernels split their outer loop over it. Workers spin briefly and then
// sleep, so a decode step (many small loops) does not pay a futex wake per loop.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace autoglm {

class thread_pool {
 public:
  // n_threads includes the calling thread; 0 = all hardware threads.
  explicit thread_pool(int n_threads = 0);
  ~thread_pool();
  thread_pool(const thread_pool&) = delete;
  thread_pool& operator=(const thread_pool&) = delete;

  int n_threads() const { return n_threads_; }

  // Runs fn(begin, end) over [0, n) split into contiguous chunks of at least `grain` items, one chunk per
  // thread. Returns when every chunk has finished. Not reentrant.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

  // Runs fn(thread_index) once on each of the n_threads() threads.
  void run_on_all(const std::function<void(int)>& fn);

 private:
  void worker(int index);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  const std::function<void(int)>* job_ = nullptr;
  bool stop_ = false;
};

// The process-wide pool used by the CPU kernels; set_default_threads must run before first use to change it.
thread_pool& default_thread_pool();
void set_default_threads(int n_threads);

}  // namespace autoglm
