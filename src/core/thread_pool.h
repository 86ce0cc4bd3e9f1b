// core/thread_pool.h: a fixed set of worker threads that run one parallel_for at a time.
//
// Each exec_context owns one pool; CPU kernels split their outer loop over it. Work is cut into chunks (up to
// 4 per thread) that threads claim with one atomic increment, and the calling thread claims chunks too: when a
// worker is descheduled (another process busy on the machine) the caller simply does the work itself instead
// of waiting for it, and it only waits for a chunk a worker has actually started (spinning briefly, then
// sleeping until that worker finishes). Idle workers spin briefly, then spin with sched_yield (so a busy
// machine gets its core back), then sleep on a condition variable; a decode step of many small loops
// therefore pays neither a futex wake per loop nor a timeslice per descheduled worker.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>
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

  // Runs fn(begin, end) over [0, n) split into contiguous chunks of about `grain` items or more (a few chunks
  // per thread at most) and returns when all have finished. Which thread runs which chunk is unspecified, so
  // results must not depend on it. A call made from inside a job of this pool, or while another thread is
  // using the pool, runs serially on the calling thread (never deadlocks).
  template <class Fn>
  void parallel_for(int64_t n, int64_t grain, Fn&& fn) {
    using F = std::remove_reference_t<Fn>;
    run(n, grain, const_cast<void*>(static_cast<const void*>(&fn)),
        [](void* f, int64_t b, int64_t e) { (*static_cast<F*>(f))(b, e); });
  }

 private:
  using range_fn = void (*)(void* fn, int64_t begin, int64_t end);
  void run(int64_t n, int64_t grain, void* fn, range_fn call);
  // Joins the job of generation `gen` (if it is still the open one) and runs chunks until none is left.
  void work_on(uint64_t gen);
  void leave_job();
  void worker();

  int n_threads_;
  std::vector<std::thread> workers_;

  // The job protocol. gen_ is even while a job is open and odd while the caller rewrites the job's fields; a
  // thread joins a job by incrementing active_ and then re-reading gen_ (the caller closes gen_ and then waits
  // for active_ to drain before it touches the fields, so a joined thread always reads one job's fields), claims
  // chunks with one fetch_add on next_ each, and leaves by decrementing active_. A job is finished when all its
  // chunks were claimed and active_ is back to zero. Each hot word has its own cache line: spinning workers
  // read gen_ while claims hammer next_.
  alignas(64) std::atomic<uint64_t> gen_{0};
  alignas(64) std::atomic<int64_t> next_{0};
  alignas(64) std::atomic<int> active_{0};
  alignas(64) std::atomic<range_fn> call_{nullptr};
  std::atomic<void*> fn_{nullptr};
  std::atomic<int64_t> n_{0};
  std::atomic<int64_t> count_{0};
  std::atomic<int> rounds_{0};  // thread_pool.cpp's chunk rounds (fewer than 2: equal chunks)
  std::atomic<bool> busy_{false};  // a parallel_for is running (a second caller runs serially)

  std::mutex mutex_;
  std::condition_variable wake_;     // workers sleeping for the next job
  std::condition_variable done_cv_;  // the caller sleeping for the last chunk a worker holds
  std::atomic<int> sleepers_{0};
  std::atomic<bool> caller_waiting_{false};
  std::atomic<bool> stop_{false};
};

// Runs fn over [0, n) on `pool`, or serially on the calling thread when pool is null (kernels get their pool
// from the kernel_context, which may carry none).
template <class Fn>
inline void parallel_for(thread_pool* pool, int64_t n, int64_t grain, Fn&& fn) {
  if (n <= 0) return;
  if (pool) pool->parallel_for(n, grain, std::forward<Fn>(fn));
  else fn(int64_t(0), n);
}

// The process-wide pool used by the legacy cpu:: kernel entry points (the model until it runs over ops);
// set_default_threads must run before first use to change it.
thread_pool& default_thread_pool();
void set_default_threads(int n_threads);

}  // namespace autoglm
