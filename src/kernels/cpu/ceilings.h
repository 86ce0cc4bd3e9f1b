// kernels/cpu/ceilings.h: the machine's measured ceilings that kernel throughput is reported against (the
// harness's --perf mode; `autoglm bench` should use the same numbers). Both run on their own threads, one per
// requested thread, started together, so they measure the machine rather than a thread pool.
#pragma once

#include <cstddef>
#include <functional>

namespace autoglm::cpu {

// Read-only memory bandwidth in GB/s (1e9 bytes/s): n_threads threads each stream their part of a `bytes`
// buffer (make it much larger than the last-level cache) with 256-bit loads into 8 independent accumulators, as
// 1, 4 and 8 interleaved sequential streams per thread; the best of `reps` passes of each. This is the ceiling
// of decode, which only reads weights.
double measure_read_bandwidth(int n_threads, size_t bytes, int reps = 5);

// Peak fp32 multiply-add throughput in GFLOP/s (an FMA counts 2): n_threads threads each run 12 independent
// 8-lane FMA chains out of registers (portable builds: 8 scalar chains). The ceiling of prefill GEMMs and
// attention.
double measure_fma_peak(int n_threads);

// The best of `rounds` passes of probe(thread_index) on n_threads threads released together: the sum of what the
// probes return (units of work done) over the wall time from the release to the last thread's end, in units per
// second. The other peak probes (quant_ceiling.h, gemm_bf16.h) measure through it.
double best_rate_on_threads(int n_threads, int rounds, const std::function<double(int)>& probe);

}  // namespace autoglm::cpu
