// bench/peer/triad.cpp: the machine's memory bandwidth ceiling for bench/peer/peer.mjs, measured in the same run
// as the engines: the STREAM triad a[i] = b[i] + s * c[i] over arrays far larger than the last-level cache, on
// N threads that each own (and first-touch) a contiguous slice, best of R repetitions. Also a read-only sum over
// the same arrays, because batch-1 decode only reads its weights. Writes one JSON object to stdout.
//
//   autoglm_peer_triad [--threads N] [--mib-per-array M] [--reps R]
//
// Bytes counted the STREAM way: 24 per triad element (two loads, one store; the write-allocate read the cache
// does for the store is not counted, so the hardware moves 32), 8 per element for the read-only sum.
#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

struct options {
  int threads = 0;
  size_t mib_per_array = 512;
  int reps = 10;
};

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> long {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      char* end = nullptr;
      const long v = std::strtol(argv[++i], &end, 10);
      if (*end != 0 || v < 1 || v > 1 << 20) {
        std::fprintf(stderr, "%s: '%s' is not a number between 1 and 1048576\n", a.c_str(), argv[i]);
        std::exit(2);
      }
      return v;
    };
    if (a == "--threads") o.threads = int(value());
    else if (a == "--mib-per-array") o.mib_per_array = size_t(value());
    else if (a == "--reps") o.reps = int(value());
    else {
      std::fprintf(stderr, "usage: %s [--threads N] [--mib-per-array M] [--reps R]\n", argv[0]);
      std::exit(2);
    }
  }
  if (o.threads <= 0) o.threads = int(std::max(1u, std::thread::hardware_concurrency()));
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const options o = parse(argc, argv);
  const size_t n = o.mib_per_array * (size_t(1) << 20) / sizeof(double);
  // Uninitialized storage: each thread's first touch below places its slice's pages.
  std::unique_ptr<double[]> a(new double[n]), b(new double[n]), c(new double[n]);
  const int nt = o.threads;
  std::barrier start(nt + 1), done(nt + 1);
  std::atomic<int> phase{0};  // 0 triad, 1 read sum, 2 exit
  std::vector<double> sink(size_t(nt) * 8, 0.0);  // per-thread sums (8 apart: no false sharing) keep the reads live
  const double s = 3.0;
  std::vector<std::thread> pool;
  for (int t = 0; t < nt; ++t)
    pool.emplace_back([&, t] {
      const size_t lo = n * size_t(t) / size_t(nt), hi = n * size_t(t + 1) / size_t(nt);
      for (size_t i = lo; i < hi; ++i) {
        a[i] = 0.0;
        b[i] = 1.0;
        c[i] = 2.0;
      }
      done.arrive_and_wait();  // initialized: the first timed repetition does not include the page faults
      for (;;) {
        start.arrive_and_wait();
        const int p = phase.load(std::memory_order_acquire);
        if (p == 2) return;
        if (p == 0) {
          double* __restrict pa = a.get();
          const double* __restrict pb = b.get();
          const double* __restrict pc = c.get();
          for (size_t i = lo; i < hi; ++i) pa[i] = pb[i] + s * pc[i];
        } else {
          // Four accumulators: the sum is not one serial dependency chain.
          double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
          const double* __restrict pb = b.get();
          size_t i = lo;
          for (; i + 4 <= hi; i += 4) {
            s0 += pb[i];
            s1 += pb[i + 1];
            s2 += pb[i + 2];
            s3 += pb[i + 3];
          }
          for (; i < hi; ++i) s0 += pb[i];
          sink[size_t(t) * 8] += s0 + s1 + s2 + s3;
        }
        done.arrive_and_wait();
      }
    });
  auto timed = [&](int p) {
    phase.store(p, std::memory_order_release);
    const auto t0 = std::chrono::steady_clock::now();
    start.arrive_and_wait();
    done.arrive_and_wait();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  done.arrive_and_wait();
  std::vector<double> triad_s, read_s;
  for (int r = 0; r < o.reps; ++r) {
    triad_s.push_back(timed(0));
    read_s.push_back(timed(1));
  }
  phase.store(2, std::memory_order_release);
  start.arrive_and_wait();
  for (auto& th : pool) th.join();
  // a = b + 3c = 7 everywhere after the first triad: a cheap check that the loop ran over every element.
  if (a[0] != 7.0 || a[n - 1] != 7.0) {
    std::fprintf(stderr, "triad check failed\n");
    return 1;
  }
  std::sort(triad_s.begin(), triad_s.end());
  std::sort(read_s.begin(), read_s.end());
  const double triad_bytes = 24.0 * double(n), read_bytes = 8.0 * double(n);
  std::printf(
      "{\"benchmark\": \"stream_triad\", \"threads\": %d, \"mib_per_array\": %zu, \"reps\": %d, "
      "\"triad_GBps_best\": %.3f, \"triad_GBps_median\": %.3f, \"triad_GBps_worst\": %.3f, "
      "\"read_GBps_best\": %.3f, \"read_GBps_median\": %.3f, \"checksum\": %.1f}\n",
      nt, o.mib_per_array, o.reps, triad_bytes / triad_s.front() / 1e9, triad_bytes / triad_s[triad_s.size() / 2] / 1e9,
      triad_bytes / triad_s.back() / 1e9, read_bytes / read_s.front() / 1e9, read_bytes / read_s[read_s.size() / 2] / 1e9,
      sink[0]);
  return 0;
}
