// media/parallel_rows.h: splits the rows of a large image over a few short-lived threads (internal to media).
// A 1080x2400 screenshot's resize and patchify are ~0.3 s on one core, which an agent step waits for before the
// vision tower starts; rows are independent, so the result is the same bytes whatever the split. Small images stay
// on the calling thread (thread start-up would cost more than it saves).
#pragma once

#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>

namespace autoglm::media_detail {

// Calls fn(begin, end) over [0, n) in contiguous pieces, on up to 16 threads (the caller included) when the work
// (`n` rows of `cost_per_row` units, e.g. bytes written) is large enough to pay for them. 16, not the 8 of before:
// the resize passes are compute-bound and a GPU host has 16 cores or more, while the agent step's first token waits
// for them; beyond 16, thread start-up (one by one, by the caller) would eat what more threads save.
template <class Fn>
void parallel_rows(int64_t n, int64_t cost_per_row, Fn&& fn) {
  constexpr int64_t k_min_cost_per_thread = int64_t(1) << 20;
  const int64_t hw = std::max<int64_t>(1, int64_t(std::thread::hardware_concurrency()));
  const int64_t by_cost = std::max<int64_t>(1, n * std::max<int64_t>(cost_per_row, 1) / k_min_cost_per_thread);
  const int64_t n_threads = std::min({hw, int64_t(16), by_cost, std::max<int64_t>(n, 1)});
  if (n_threads <= 1) {
    fn(int64_t(0), n);
    return;
  }
  std::vector<std::thread> workers;
  workers.reserve(size_t(n_threads - 1));
  const int64_t per = (n + n_threads - 1) / n_threads;
  for (int64_t t = 1; t < n_threads; ++t) {
    const int64_t b = t * per, e = std::min(n, b + per);
    if (b < e) workers.emplace_back([&fn, b, e] { fn(b, e); });
  }
  fn(int64_t(0), std::min(n, per));
  for (std::thread& w : workers) w.join();
}

}  // namespace autoglm::media_detail
