#include "core/thread_pool.h"

#include <algorithm>
#include <memory>

namespace autoglm {

thread_pool::thread_pool(int n_threads) {
  if (n_threads <= 0) n_threads = int(std::max(1u, std::thread::hardware_concurrency()));
  n_threads_ = n_threads;
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker(i); });
}

thread_pool::~thread_pool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void thread_pool::worker(int index) {
  uint64_t seen = 0;
  for (;;) {
    // Spin for a short while: decode issues hundreds of small jobs per token.
    int spins = 0;
    while (generation_.load(std::memory_order_acquire) == seen && spins < 20000) {
      ++spins;
#if defined(__x86_64__)
      __builtin_ia32_pause();
#endif
    }
    if (generation_.load(std::memory_order_acquire) == seen) {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return generation_.load() != seen; });
    }
    seen = generation_.load(std::memory_order_acquire);
    const std::function<void(int)>* job;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stop_) return;
      job = job_;
    }
    if (job) (*job)(index);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void thread_pool::run_on_all(const std::function<void(int)>& fn) {
  if (n_threads_ == 1) {
    fn(0);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = &fn;
    pending_.store(n_threads_ - 1, std::memory_order_release);
    generation_.fetch_add(1, std::memory_order_acq_rel);
  }
  wake_.notify_all();
  fn(0);
  while (pending_.load(std::memory_order_acquire) != 0) {
#if defined(__x86_64__)
    __builtin_ia32_pause();
#endif
  }
  std::lock_guard<std::mutex> lock(mutex_);
  job_ = nullptr;
}

void thread_pool::parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  int64_t max_chunks = (n + grain - 1) / grain;
  int use = int(std::min<int64_t>(n_threads_, max_chunks));
  if (use <= 1) {
    fn(0, n);
    return;
  }
  run_on_all([&](int t) {
    if (t >= use) return;
    int64_t begin = n * t / use;
    int64_t end = n * (t + 1) / use;
    if (begin < end) fn(begin, end);
  });
}

namespace {
std::unique_ptr<thread_pool>& pool_slot() {
  static std::unique_ptr<thread_pool> pool;
  return pool;
}
int& requested_threads() {
  static int n = 0;
  return n;
}
std::mutex& pool_mutex() {
  static std::mutex m;
  return m;
}
}  // namespace

thread_pool& default_thread_pool() {
  std::lock_guard<std::mutex> lock(pool_mutex());
  auto& p = pool_slot();
  if (!p) p = std::make_unique<thread_pool>(requested_threads());
  return *p;
}

void set_default_threads(int n_threads) {
  std::lock_guard<std::mutex> lock(pool_mutex());
  requested_threads() = n_threads;
  pool_slot().reset();
}

}  // namespace autoglm
