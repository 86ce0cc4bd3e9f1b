// tests/kernels/perf.cpp: `test_kernels --perf`: the machine's ceilings (read bandwidth, FMA peak), the thread
// pool's cost per parallel_for on an idle and on a fully busy machine, then every perf case (and with --all the
// correctness cases too) on each backend: median time per run, GB/s against the read ceiling for memory-bound
// ops and GFLOP/s against the FMA peak for compute-bound ones (the vdpbf16ps peak for BF16 LINEAR on the cpu-bf16
// backend, which runs float LINEAR cases only; `--backend cpu` against `--backend cpu-bf16` is the exact GEMM against
// it).
//
// Cases marked `stream` (decode: weights and KV caches are read once per token in real use) cycle through copies
// of their operands totalling 1 GiB, so they are measured from memory rather than from the last-level cache.
//
// Options: --threads N (default: all cores), --filter TEXT (substring of "op dtype case"), --backend NAME, --all,
// --check (compare each case with its reference once before timing), --min-time SECONDS (per case, default 0.3),
// --no-pool (skip the thread-pool table), --quant-isa NAME (portable, avx2, avx512-vnni, avx512-gfni, neon-dotprod: the
// path of the quantized LINEAR kernels; their GFLOP/s are int8 operations, shown against the int8 dot-product peak).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/thread_pool.h"
#include "harness.h"
#include "kernels/cpu/ceilings.h"
#include "kernels/cpu/gemm_bf16.h"
#include "kernels/cpu/quant_ceiling.h"
#include "kernels/cpu/quant_linear.h"
#include "ops/ops.h"

namespace autoglm::harness {

namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

struct options {
  int threads = 0;
  std::string filter, backend, quant_isa;
  bool all = false, check = false, pool = true;
  double min_time = 0.3;
};

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--threads") o.threads = std::atoi(next().c_str());
    else if (a == "--filter") o.filter = next();
    else if (a == "--backend") o.backend = next();
    else if (a == "--all") o.all = true;
    else if (a == "--check") o.check = true;
    else if (a == "--no-pool") o.pool = false;
    else if (a == "--quant-isa") o.quant_isa = next();
    else if (a == "--min-time") o.min_time = std::atof(next().c_str());
  }
  if (o.threads <= 0) o.threads = int(std::max(1u, std::thread::hardware_concurrency()));
  return o;
}

// Spinning threads that keep every core busy, like another process would.
class busy_machine {
 public:
  explicit busy_machine(int n) {
    for (int i = 0; i < n; ++i)
      threads_.emplace_back([this] {
        volatile uint64_t x = 0;
        while (!stop_.load(std::memory_order_relaxed)) x = x + 1;
      });
  }
  ~busy_machine() {
    stop_ = true;
    for (auto& t : threads_) t.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
};

// Mean microseconds per parallel_for of 64 items, each chunk summing `work` floats per item.
double pool_call_us(thread_pool* pool, const std::vector<float>& data, int64_t work, double budget_s) {
  std::atomic<float> sink{0};
  auto call = [&] {
    parallel_for(pool, 64, 1, [&](int64_t b, int64_t e) {
      float s = 0;
      for (int64_t i = b * work; i < e * work; ++i) s += data[size_t(i) & (data.size() - 1)];
      if (s == -1.0f) sink.store(s);
    });
  };
  for (int i = 0; i < 50; ++i) call();
  int64_t n = 0;
  const auto t0 = clock_type::now();
  while (seconds_since(t0) < budget_s || n < 20) {
    for (int i = 0; i < 20; ++i) call();
    n += 20;
  }
  return seconds_since(t0) * 1e6 / double(n);
}

void report_pool(int max_threads) {
  std::printf("\nthread pool: microseconds per parallel_for of 64 items (work = floats summed per item)\n");
  std::printf("%-30s %9s %9s %9s   %s\n", "", "empty", "work=64", "work=1024", "(serial = no pool)");
  const std::vector<float> data(1 << 16, 1.0f);
  const int n_hw = int(std::max(1u, std::thread::hardware_concurrency()));
  for (int n_busy : {0, 1, n_hw}) {
    if (n_busy == 1 && n_hw == 1) continue;
    busy_machine hogs(n_busy);
    std::vector<int> counts = {0, 1};
    for (int t = 2; t <= max_threads; t *= 2) counts.push_back(t);
    if (counts.back() != max_threads && max_threads > 1) counts.push_back(max_threads);
    for (int t : counts) {
      std::unique_ptr<thread_pool> pool = t ? std::make_unique<thread_pool>(t) : nullptr;
      char label[64];
      const std::string busy = n_busy == 0 ? "idle" : n_busy == 1 ? "1 core busy" : "all cores busy";
      std::snprintf(label, sizeof label, "%s, %s", busy.c_str(),
                    t ? (std::to_string(t) + " thread(s)").c_str() : "serial");
      std::printf("%-30s %9.2f %9.2f %9.2f\n", label, pool_call_us(pool.get(), data, 0, 0.2),
                  pool_call_us(pool.get(), data, 64, 0.2), pool_call_us(pool.get(), data, 1024, 0.2));
    }
  }
}

}  // namespace

int run_perf(int argc, char** argv) {
  const options o = parse(argc, argv);
  std::printf("ceilings (%d threads):\n", o.threads);
  const double bw1 = cpu::measure_read_bandwidth(1, size_t(512) << 20);
  const double bw = cpu::measure_read_bandwidth(o.threads, size_t(1) << 30);
  const double fma1 = cpu::measure_fma_peak(1);
  const double fma = cpu::measure_fma_peak(o.threads);
  std::printf("  read bandwidth : %8.1f GB/s (1 thread %.1f), 256-bit loads, 1-8 streams per thread, 1 GiB\n", bw, bw1);
  std::printf("  fp32 FMA peak  : %8.1f GFLOP/s (1 thread %.1f), 12 independent 8-lane FMA chains per thread\n", fma,
              fma1);
  if (!o.quant_isa.empty()) {
    bool found = false;
    for (int i = 0; i < int(cpu::quant_isa::COUNT); ++i)
      if (o.quant_isa == cpu::quant_isa_name(cpu::quant_isa(i)) && cpu::quant_isa_available(cpu::quant_isa(i))) {
        cpu::force_quant_isa(cpu::quant_isa(i));
        found = true;
      }
    if (!found) {
      std::fprintf(stderr, "--quant-isa %s: not a path this build and CPU offer\n", o.quant_isa.c_str());
      return 2;
    }
  }
  const double bf16_1 = cpu::measure_bf16_dot_peak(1), bf16 = cpu::measure_bf16_dot_peak(o.threads);
  if (bf16 > 0)
    std::printf("  bf16 dot peak  : %8.1f GFLOP/s (1 thread %.1f), 12 independent vdpbf16ps chains per thread (cpu-bf16 "
                "linear's %%peak)\n", bf16, bf16_1);
  const double i8_1 = cpu::measure_int8_peak(1), i8 = cpu::measure_int8_peak(o.threads);
  std::printf("  int8 dot peak  : %8.1f Gop/s (1 thread %.1f), %s, 12 independent chains per thread (quantized linear's "
              "%%peak)\n", i8, i8_1, cpu::quant_isa_name(cpu::quant_isa_selected()));
  if (o.pool) report_pool(o.threads);

  std::printf("\n%-16s %-5s %-13s %-62s %10s %16s %18s %s\n", "op", "dtype", "backend", "case", "ms/run",
              "GB/s (%read)", "GFLOP/s (%peak)", o.check ? "error" : "");
  for (const backend& be : backends()) {
    if (!o.backend.empty() && be.name != o.backend) continue;
    select(be);
    exec_context ctx(be.dev, o.threads);
    for (const test_case& c : all_cases()) {
      if (!c.perf && !o.all) continue;
      if (!runs_on(be, c.op, c.key)) continue;
      const std::string label = std::string(op_name(c.op)) + " " + dtype_name(c.key) + " " + c.name;
      if (!o.filter.empty() && label.find(o.filter) == std::string::npos) continue;
      if (!kernel_registry::instance().has(c.op, be.dev.kind, c.key)) continue;
      std::vector<instance> insts;
      insts.push_back(c.make(ctx));
      insts[0].run();
      std::string err;
      if (o.check) {
        err = insts[0].check();
        if (err.empty()) err = "ok";
      }
      // Streaming cases: copies until 1 GiB, so each run reads its operands from memory, not from the cache.
      const double stream_bytes = double(size_t(1) << 30);
      while (c.stream && insts.size() < 64 && double(insts.size()) * insts[0].bytes < stream_bytes) {
        insts.push_back(c.make(ctx));
        insts.back().run();
      }
      const instance& inst = insts[0];
      std::vector<double> times;
      const auto t0 = clock_type::now();
      // A GPU backend only queues the op: time batches of runs up to a synchronize (the CPU's runs are synchronous).
      const bool gpu = be.dev.kind != device_kind::CPU;
      const int batch = gpu ? 10 : 1;
      for (size_t i = 0; times.size() < 3 || seconds_since(t0) < o.min_time;) {
        const auto t = clock_type::now();
        for (int b = 0; b < batch; ++b, ++i) insts[i % insts.size()].run();
        if (gpu) ops::synchronize(ctx);
        times.push_back(seconds_since(t) / batch);
      }
      std::sort(times.begin(), times.end());
      const double s = times[times.size() / 2];
      char gbs[32] = "", gfl[32] = "";
      if (inst.bytes > 0) std::snprintf(gbs, sizeof gbs, "%7.1f (%3.0f%%)", inst.bytes / s / 1e9, 100 * inst.bytes / s / 1e9 / bw);
      const double peak = c.op == op_id::LINEAR && cpu::quant_linear_supports(c.key) ? i8
                          : be.bf16_gemm && c.key == dtype::BF16                      ? bf16
                                                                                      : fma;
      if (inst.flops > 0)
        std::snprintf(gfl, sizeof gfl, "%7.1f (%3.0f%%)", inst.flops / s / 1e9, 100 * inst.flops / s / 1e9 / peak);
      std::printf("%-16s %-5s %-13s %-62s %10.3f %16s %18s %s\n", op_name(c.op), dtype_name(c.key), be.name.c_str(),
                  c.name.c_str(), s * 1e3, gbs, gfl, err.c_str());
      std::fflush(stdout);
      ctx.arena().reset();
    }
  }
  select({});
  cpu::force_quant_isa(cpu::quant_isa::COUNT);
  return 0;
}

}  // namespace autoglm::harness
