// core/thread_pool.cpp: chunk claiming, waiting and waking of core/thread_pool.h.
#include "core/thread_pool.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <memory>

namespace autoglm {

namespace {

// Chunks per thread: more than one lets the caller (and fast workers) absorb the share of a slow or
// descheduled thread; few enough that claiming stays cheap (every claim moves one cache line between cores).
constexpr int64_t k_chunks_per_thread = 4;

// Worker idle policy: pure spinning for a few microseconds (back-to-back loops of a decode step), then
// spinning with sched_yield (cedes the core when something else wants it), then sleeping.
constexpr auto k_spin_pure = std::chrono::microseconds(20);
constexpr auto k_spin_total = std::chrono::microseconds(1000);
// The caller waiting for chunks that workers hold spins this long, then sleeps until the last one finishes
// (a descheduled worker needs the core back; spinning or yielding would only compete with it).
constexpr int k_wait_spins = 2000;
// Sleeps re-check their condition at these intervals even without a notification. The handshakes below make a
// lost wake-up impossible under the C++ memory model, but under qemu user mode (the aarch64 tests) a sleeping
// worker twice missed the destructor's notify_all: the main thread joined it for good (both in futex waits, no
// CPU). A bounded sleep turns any such loss into a delay instead of a hang; on hardware the periodic checks of an
// idle pool cost a few wake-ups per second.
constexpr auto k_worker_recheck = std::chrono::milliseconds(100);
constexpr auto k_caller_recheck = std::chrono::milliseconds(10);

inline void cpu_relax() {
#if defined(__x86_64__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

inline bool is_open(uint64_t gen) { return (gen & 1) == 0; }

// Chunks in rounds of one per thread, each round covering half of what the rounds before it left (the last round:
// all the rest): claimed in order, the longest go first and the last ones are short, so a thread that is ahead
// takes small pieces at the end instead of waiting for the other's last equal share. Up to k_max_rounds rounds,
// while the last round's chunks stay at least `grain` long; with fewer than 2 rounds, equal chunks.
constexpr int k_max_rounds = 5;

int rounds_for(int64_t n, int64_t grain, int64_t threads) {
  int r = 1;
  while (r < k_max_rounds && (n >> r) / threads >= grain) ++r;
  return r;
}

// The first index of chunk idx of `count` over [0, n) (`rounds` as rounds_for gave, `threads` chunks a round).
int64_t chunk_begin(int64_t n, int64_t count, int rounds, int64_t threads, int64_t idx) {
  if (idx >= count) return n;
  if (rounds < 2) return n * idx / count;
  const int r = int(idx / threads);
  const int64_t j = idx % threads, left = n >> r;
  const int64_t len = r == rounds - 1 ? left : left - (n >> (r + 1));
  return n - left + len * j / threads;
}

// The pool whose job this thread is running (reentrant calls run serially).
thread_local const thread_pool* t_in_job = nullptr;

struct job_error {
  std::mutex m;
  std::exception_ptr first;
};

}  // namespace

thread_pool::thread_pool(int n_threads) {
  if (n_threads <= 0) n_threads = int(std::max(1u, std::thread::hardware_concurrency()));
  n_threads_ = n_threads;
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this] { worker(); });
}

thread_pool::~thread_pool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_.store(true);
    count_.store(0);
    gen_.fetch_add(2);  // an empty open job: every worker wakes, sees stop_ and exits
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void thread_pool::leave_job() {
  // seq_cst: ordered before the caller_waiting_ load, against the caller's store-then-load of the two.
  if (active_.fetch_sub(1) == 1 && caller_waiting_.load()) {
    { std::lock_guard<std::mutex> lock(mutex_); }
    done_cv_.notify_one();
  }
}

void thread_pool::work_on(uint64_t gen) {
  active_.fetch_add(1);
  if (gen_.load() != gen) {  // closed meanwhile: the job is over and its fields may be changing
    leave_job();
    return;
  }
  const thread_pool* outer = t_in_job;
  t_in_job = this;
  const int64_t n = n_.load(std::memory_order_relaxed), cnt = count_.load(std::memory_order_relaxed);
  const int rounds = rounds_.load(std::memory_order_relaxed);
  const range_fn call = call_.load(std::memory_order_relaxed);
  void* fn = fn_.load(std::memory_order_relaxed);
  for (;;) {
    const int64_t idx = next_.fetch_add(1, std::memory_order_relaxed);
    if (idx >= cnt) break;
    call(fn, chunk_begin(n, cnt, rounds, n_threads_, idx), chunk_begin(n, cnt, rounds, n_threads_, idx + 1));
  }
  t_in_job = outer;
  leave_job();
}

void thread_pool::worker() {
  uint64_t seen = 0;
  auto fresh = [&] {
    const uint64_t g = gen_.load(std::memory_order_acquire);
    return g != seen && is_open(g);
  };
  for (;;) {
    if (!fresh()) {
      const auto t0 = std::chrono::steady_clock::now();
      for (int i = 1; !fresh(); ++i) {
        if ((i & 63) == 0) {
          const auto dt = std::chrono::steady_clock::now() - t0;
          if (dt > k_spin_total) break;
          if (dt > k_spin_pure) std::this_thread::yield();
        }
        cpu_relax();
      }
      if (!fresh()) {
        std::unique_lock<std::mutex> lock(mutex_);
        sleepers_.fetch_add(1);
        while (!fresh()) wake_.wait_for(lock, k_worker_recheck);
        sleepers_.fetch_sub(1);
      }
    }
    if (stop_.load()) return;
    seen = gen_.load(std::memory_order_acquire);
    if (is_open(seen)) work_on(seen);
  }
}

void thread_pool::run(int64_t n, int64_t grain, void* fn, range_fn call) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int rounds = rounds_for(n, grain, n_threads_);
  const int64_t count = rounds >= 2 ? int64_t(rounds) * n_threads_
                                    : std::min((n + grain - 1) / grain, int64_t(n_threads_) * k_chunks_per_thread);
  if (count <= 1 || n_threads_ == 1 || t_in_job == this || busy_.exchange(true, std::memory_order_acquire)) {
    call(fn, 0, n);
    return;
  }
  // Exceptions thrown by a chunk are carried back to the caller after every chunk finished.
  job_error err;
  struct guarded {
    void* fn;
    range_fn call;
    job_error* err;
  } g{fn, call, &err};
  range_fn guarded_call = [](void* p, int64_t b, int64_t e) {
    auto* gd = static_cast<guarded*>(p);
    try {
      gd->call(gd->fn, b, e);
    } catch (...) {
      std::lock_guard<std::mutex> lock(gd->err->m);
      if (!gd->err->first) gd->err->first = std::current_exception();
    }
  };

  // Close, wait for stragglers of the previous job to leave, rewrite the fields, open.
  const uint64_t gen = gen_.load(std::memory_order_relaxed) + 2;  // only the caller changes gen_
  // Closing must be ordered before the active_ loads below (a worker's side is its active_ RMW before its gen_
  // load): an RMW, for the emulators described at gen_.exchange(gen).
  gen_.exchange(gen - 1);
  for (int i = 1; active_.load() != 0; ++i) {
    cpu_relax();
    if ((i & 1023) == 0) std::this_thread::yield();  // a descheduled straggler needs a core to leave
  }
  call_.store(guarded_call, std::memory_order_relaxed);
  fn_.store(&g, std::memory_order_relaxed);
  n_.store(n, std::memory_order_relaxed);
  count_.store(count, std::memory_order_relaxed);
  rounds_.store(rounds, std::memory_order_relaxed);
  next_.store(0, std::memory_order_relaxed);
  // Publishes the fields, and must be ordered before the sleepers_ load below (the worker's side is its
  // sleepers_ RMW before its gen_ load). An RMW rather than a seq_cst store: the two are equivalent on hardware,
  // but emulators that map aarch64 STLR/LDAR onto x86 plain stores and loads let a later load pass the store
  // (qemu user mode: a lost wake-up that hung the kernel tests under -cpu cortex-a53); an RMW is a full fence
  // everywhere.
  gen_.exchange(gen);
  if (sleepers_.load() > 0) {
    { std::lock_guard<std::mutex> lock(mutex_); }  // a worker between its check and its wait holds the mutex
    wake_.notify_all();
  }
  work_on(gen);
  // Every chunk is claimed now; wait for the workers still running one.
  for (int i = 0; i < k_wait_spins && active_.load(std::memory_order_acquire) != 0; ++i) cpu_relax();
  if (active_.load() != 0) {
    std::unique_lock<std::mutex> lock(mutex_);
    caller_waiting_.exchange(true);  // ordered before the predicate's active_ load (an RMW: see gen_ above)
    while (active_.load() != 0) done_cv_.wait_for(lock, k_caller_recheck);
    caller_waiting_.store(false);
  }
  busy_.store(false, std::memory_order_release);
  if (err.first) std::rethrow_exception(err.first);
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
