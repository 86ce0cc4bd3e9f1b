// core/thread_pool: every index of [0, n) runs exactly once whatever the split; calls from inside a job and
// from a second thread run serially instead of corrupting the running job; exceptions reach the caller.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <utility>
#include <stdexcept>
#include <thread>
#include <vector>

#include "core/thread_pool.h"

namespace autoglm {
namespace {

void expect_each_once(thread_pool* pool, int64_t n, int64_t grain) {
  std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
  parallel_for(pool, n, grain, [&](int64_t b, int64_t e) {
    EXPECT_LE(0, b);
    EXPECT_LE(b, e);
    EXPECT_LE(e, n);
    for (int64_t i = b; i < e; ++i) hits[size_t(i)].fetch_add(1);
  });
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[size_t(i)].load(), 1) << "n=" << n << " grain=" << grain << " i=" << i;
}

TEST(thread_pool, every_index_runs_exactly_once) {
  for (int threads : {1, 2, 3, 7}) {
    thread_pool pool(threads);
    for (int64_t n : {1, 2, 5, 64, 1000, 100003})
      for (int64_t grain : {1, 3, 64, 1 << 20}) expect_each_once(&pool, n, grain);
  }
  expect_each_once(nullptr, 77, 1);  // no pool: serial
}

// Chunks are claimed longest first and the last ones are short (a thread ahead takes small pieces at the end
// instead of waiting out the other's equal share): in range order their lengths never grow, the first is at least
// n / (2 threads) - 1 and the last at most n / (16 threads) + 1; with a grain they stay at least that long.
TEST(thread_pool, chunks_shrink_toward_the_end) {
  for (int threads : {2, 3}) {
    thread_pool pool(threads);
    for (int64_t grain : {int64_t(1), int64_t(40)}) {
      const int64_t n = 10000;
      std::mutex m;
      std::vector<std::pair<int64_t, int64_t>> chunks;
      pool.parallel_for(n, grain, [&](int64_t b, int64_t e) {
        std::lock_guard<std::mutex> lock(m);
        chunks.emplace_back(b, e);
      });
      std::sort(chunks.begin(), chunks.end());
      ASSERT_GE(chunks.size(), size_t(2 * threads));
      EXPECT_EQ(chunks.front().first, 0);
      EXPECT_EQ(chunks.back().second, n);
      for (size_t i = 1; i < chunks.size(); ++i) {
        EXPECT_EQ(chunks[i].first, chunks[i - 1].second);
        EXPECT_LE(chunks[i].second - chunks[i].first, chunks[i - 1].second - chunks[i - 1].first + 1);
      }
      EXPECT_GE(chunks.front().second, n / (2 * threads) - 1);
      const int64_t last = chunks.back().second - chunks.back().first;
      EXPECT_LE(last, n / (16 * threads) + 1) << threads << " threads, grain " << grain;
      EXPECT_GE(last, std::min<int64_t>(grain, n / (16 * threads)));
    }
  }
}

TEST(thread_pool, many_back_to_back_jobs) {
  thread_pool pool(3);
  std::atomic<int64_t> sum{0};
  for (int j = 0; j < 20000; ++j)
    pool.parallel_for(16, 1, [&](int64_t b, int64_t e) { sum.fetch_add(e - b); });
  EXPECT_EQ(sum.load(), 20000 * 16);
}

TEST(thread_pool, nested_call_runs_serially) {
  thread_pool pool(3);
  std::atomic<int64_t> inner{0};
  pool.parallel_for(8, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      pool.parallel_for(10, 1, [&](int64_t ib, int64_t ie) { inner.fetch_add(ie - ib); });
  });
  EXPECT_EQ(inner.load(), 80);
}

TEST(thread_pool, two_callers_at_once_both_complete) {
  thread_pool pool(3);
  std::atomic<int64_t> a{0}, b{0};
  auto caller = [&pool](std::atomic<int64_t>& acc) {
    for (int j = 0; j < 3000; ++j)
      pool.parallel_for(32, 1, [&](int64_t lo, int64_t hi) { acc.fetch_add(hi - lo); });
  };
  std::thread t1(caller, std::ref(a)), t2(caller, std::ref(b));
  t1.join();
  t2.join();
  EXPECT_EQ(a.load(), 3000 * 32);
  EXPECT_EQ(b.load(), 3000 * 32);
}

TEST(thread_pool, exception_reaches_the_caller_and_pool_stays_usable) {
  thread_pool pool(3);
  EXPECT_THROW(pool.parallel_for(64, 1,
                                 [](int64_t b, int64_t) {
                                   if (b == 0) throw std::runtime_error("chunk failed");
                                 }),
               std::runtime_error);
  expect_each_once(&pool, 1000, 1);
}

}  // namespace
}  // namespace autoglm
