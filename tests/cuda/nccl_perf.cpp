// tests/cuda/nccl_perf.cpp: the all-reduce a tensor-parallel decoder pays per step (issue 13), through the same
// communicators the model uses (ops::create_communicators: NCCL, one thread per GPU). For each group size up to
// the GPUs present (1, 2, 4, 8): the time of one all_reduce_sum of a decode step's [1, 4096] F32 partial sums and
// of a 512-token prefill chunk's [512, 4096], median over repetitions, and the per-step cost of GLM-4.1V's 80
// all-reduces (2 per layer x 40 layers). JSON to --out.
//
//   nccl_perf [--out FILE] [--reps N]
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "kernels/cuda/register.h"
#include "ops/context.h"
#include "ops/ops.h"

using namespace autoglm;

int main(int argc, char** argv) {
  std::string out_file;
  int reps = 200;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--out") && i + 1 < argc) out_file = argv[++i];
    else if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) reps = std::max(1, std::atoi(argv[++i]));
  }
  ops::init_backends();
  const int n_gpus = cuda_device_count();
  if (n_gpus == 0) {
    std::fprintf(stderr, "nccl_perf: no CUDA device\n");
    return 1;
  }
  nlohmann::json results = nlohmann::json::array();
  for (int n : {1, 2, 4, 8}) {
    if (n > n_gpus) break;
    std::vector<device> devs;
    for (int r = 0; r < n; ++r) devs.push_back({device_kind::CUDA, r});
    communicator_group comms = ops::create_communicators(devs);
    std::vector<std::unique_ptr<exec_context>> ctxs;
    for (int r = 0; r < n; ++r) {
      ctxs.push_back(std::make_unique<exec_context>(devs[size_t(r)], 1));
      ctxs.back()->set_communicator(comms[size_t(r)].get());
    }
    nlohmann::json row;
    row["ranks"] = n;
    for (int64_t rows : {int64_t(1), int64_t(512)}) {
      std::vector<double> us(static_cast<size_t>(reps));
      std::vector<std::thread> threads;
      for (int r = 0; r < n; ++r)
        threads.emplace_back([&, r] {
          exec_context& ctx = *ctxs[size_t(r)];
          tensor x = ops::alloc_persistent(ctx, dtype::F32, {rows, 4096});
          for (int w = 0; w < 5; ++w) ops::all_reduce_sum(ctx, x);  // warm-up (NCCL sets up its channels)
          ops::synchronize(ctx);
          for (int i = 0; i < reps; ++i) {
            const auto t0 = std::chrono::steady_clock::now();
            ops::all_reduce_sum(ctx, x);
            ops::synchronize(ctx);
            if (r == 0) us[size_t(i)] = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
          }
        });
      for (auto& t : threads) t.join();
      std::sort(us.begin(), us.end());
      const double med = us[us.size() / 2];
      const std::string key = rows == 1 ? "decode_1x4096" : "prefill_512x4096";
      row[key + "_us"] = med;
      if (rows == 1) row["decode_step_80_allreduces_ms"] = 80 * med / 1000.0;
      std::printf("ranks %d  all_reduce [%lld, 4096] F32: %.1f us (median of %d)\n", n, (long long)rows, med, reps);
    }
    results.push_back(row);
  }
  nlohmann::json out{{"benchmark", "nccl_all_reduce"}, {"gpus", n_gpus}, {"results", results}};
  if (!out_file.empty()) std::ofstream(out_file) << out.dump(2) << "\n";
  return 0;
}
