// kernels/cpu/ceilings.cpp: read-bandwidth and FMA-throughput probes (see ceilings.h).
#include "kernels/cpu/ceilings.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "core/aligned_buffer.h"
#include "kernels/cpu/convert.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace autoglm::cpu {

namespace {

using clock_type = std::chrono::steady_clock;

// Runs fn(thread_index) on n threads released together; returns the wall time in seconds from the release to
// the last thread's end.
template <class Fn>
double run_threads(int n, Fn fn) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < n; ++t)
    threads.emplace_back([&, t] {
      ready.fetch_add(1);
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      fn(t);
    });
  while (ready.load() != n) std::this_thread::yield();
  const auto t0 = clock_type::now();
  go.store(true, std::memory_order_release);
  for (auto& th : threads) th.join();
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

// Reads `bytes` at p as n_streams interleaved sequential streams (one 64-byte line of each per step): several
// streams per core keep more lines in flight than one, which is what a core needs to reach the memory
// bandwidth (a decode tile reads 4 weight rows at once).
float read_portable(const uint8_t* p, size_t bytes, int n_streams) {
  const size_t len = bytes / size_t(n_streams) / 64 * 64;
  uint64_t a[8] = {};
  for (size_t off = 0; off < len; off += 64)
    for (int s = 0; s < n_streams; ++s) {
      const uint64_t* w = reinterpret_cast<const uint64_t*>(p + size_t(s) * len + off);
      for (int k = 0; k < 8; ++k) a[k] += w[k];
    }
  return float(a[0] + a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7]);
}

#if defined(__x86_64__)
__attribute__((target("avx2"))) float read_avx2(const uint8_t* p, size_t bytes, int n_streams) {
  const size_t len = bytes / size_t(n_streams) / 256 * 256;
  __m256i a[8];
  for (auto& x : a) x = _mm256_setzero_si256();
  for (size_t off = 0; off < len; off += 256)
    for (int s = 0; s < n_streams; ++s) {
      const uint8_t* q = p + size_t(s) * len + off;
      for (int k = 0; k < 8; ++k)
        a[k] = _mm256_add_epi32(a[k], _mm256_load_si256(reinterpret_cast<const __m256i*>(q + size_t(k) * 32)));
    }
  for (int k = 1; k < 8; ++k) a[0] = _mm256_add_epi32(a[0], a[k]);
  return float(_mm256_extract_epi32(a[0], 0));
}

__attribute__((target("avx2,fma"))) float fma_avx2(int64_t iters) {
  __m256 acc[12];
  for (int k = 0; k < 12; ++k) acc[k] = _mm256_set1_ps(float(k));
  const __m256 b = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
  for (int64_t i = 0; i < iters; ++i)
#pragma GCC unroll 12
    for (int k = 0; k < 12; ++k) acc[k] = _mm256_fmadd_ps(acc[k], b, c);
  for (int k = 1; k < 12; ++k) acc[0] = _mm256_add_ps(acc[0], acc[k]);
  return _mm256_cvtss_f32(acc[0]);
}
#endif

float fma_portable(int64_t iters) {
  float acc[8];
  for (int k = 0; k < 8; ++k) acc[k] = float(k);
  for (int64_t i = 0; i < iters; ++i)
    for (int k = 0; k < 8; ++k) acc[k] = acc[k] * 0.999999f + 1e-7f;
  return acc[0] + acc[1] + acc[2] + acc[3] + acc[4] + acc[5] + acc[6] + acc[7];
}

std::atomic<float> g_sink{0.0f};  // keeps the probes' results alive

}  // namespace

double measure_read_bandwidth(int n_threads, size_t bytes, int reps) {
  n_threads = std::max(1, n_threads);
  const size_t part = bytes / size_t(n_threads) / 4096 * 4096;
  aligned_buffer buf(part * size_t(n_threads));
  // Each thread touches its own part first (pages land where that thread runs, the same as it reads them).
  run_threads(n_threads, [&](int t) { std::memset(static_cast<uint8_t*>(buf.data()) + size_t(t) * part, 1, part); });
  double best = 0;
  for (int n_streams : {1, 4, 8})
    for (int r = 0; r < reps; ++r) {
      const double s = run_threads(n_threads, [&](int t) {
        const uint8_t* p = static_cast<const uint8_t*>(buf.data()) + size_t(t) * part;
#if defined(__x86_64__)
        const float v = cpu_has_avx2() ? read_avx2(p, part, n_streams) : read_portable(p, part, n_streams);
#else
        const float v = read_portable(p, part, n_streams);
#endif
        g_sink.store(v, std::memory_order_relaxed);
      });
      best = std::max(best, double(part) * n_threads / s / 1e9);
    }
  return best;
}

double best_rate_on_threads(int n_threads, int rounds, const std::function<double(int)>& probe) {
  n_threads = std::max(1, n_threads);
  std::vector<double> work(size_t(n_threads), 0.0);
  double best = 0;
  for (int r = 0; r < rounds; ++r) {
    const double s = run_threads(n_threads, [&](int t) { work[size_t(t)] = probe(t); });
    double total = 0;
    for (double w : work) total += w;
    best = std::max(best, total / s);
  }
  return best;
}

double measure_fma_peak(int n_threads) {
  n_threads = std::max(1, n_threads);
#if defined(__x86_64__)
  const bool avx2 = cpu_has_avx2();
#else
  const bool avx2 = false;
#endif
  const double flops_per_iter = avx2 ? 12 * 8 * 2 : 8 * 2;
  const int64_t iters = avx2 ? 20'000'000 : 40'000'000;
  double best = 0;
  for (int r = 0; r < 3; ++r) {
    const double s = run_threads(n_threads, [&](int) {
#if defined(__x86_64__)
      g_sink.store(avx2 ? fma_avx2(iters) : fma_portable(iters), std::memory_order_relaxed);
#else
      g_sink.store(fma_portable(iters), std::memory_order_relaxed);
#endif
    });
    best = std::max(best, flops_per_iter * double(iters) * n_threads / s / 1e9);
  }
  return best;
}

}  // namespace autoglm::cpu
