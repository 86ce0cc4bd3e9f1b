// bench/kernels/gemm_bf16_bench.cpp: LINEAR's prefill GEMM on BF16 weights, the exact F32 path (kernels/cpu/gemm.h,
// W decoded to F32, F32 FMAs) against the bf16 path (kernels/cpu/gemm_bf16.h, x rounded to bf16, vdpbf16ps), in one
// process and interleaved: each pair of runs times both back to back (the order alternating), so a machine whose
// load changes (other builds, a host that gives the VM one core or two) slows both alike; the FMA and vdpbf16ps
// peaks are sampled between pairs, so each shape is reported against the ceilings of its own moment. Writes JSON.
//
// Usage: autoglm_gemm_bf16_bench [--threads N] [--pairs P] [--shape MxNxK]... [-o FILE]
// Default shapes: the 9B's prefill (512 rows through q/o, the fused gate_up), the vision tower (one image's qkv,
// a 13k-patch screenshot's qkv and MLP down, a 96-row MLP chunk) and small row counts around LINEAR's threshold.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/cpu/ceilings.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/gemm_bf16.h"

using namespace autoglm;
using namespace autoglm::cpu;

namespace {

struct shape {
  int64_t m, n, k;
  std::string what;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

template <class Fn>
double seconds(Fn&& fn) {
  const auto t0 = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2, pairs = 7;
  std::string out_file;
  std::vector<shape> shapes;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--threads") threads = std::max(1, std::atoi(next().c_str()));
    else if (a == "--pairs") pairs = std::max(1, std::atoi(next().c_str()));
    else if (a == "-o") out_file = next();
    else if (a == "--shape") {
      shape s{};
      if (std::sscanf(next().c_str(), "%ldx%ldx%ld", &s.m, &s.n, &s.k) != 3 || s.m < 1 || s.n < 1 || s.k < 1) {
        std::fprintf(stderr, "--shape takes MxNxK\n");
        return 2;
      }
      s.what = "custom";
      shapes.push_back(s);
    } else {
      std::fprintf(stderr, "usage: %s [--threads N] [--pairs P] [--shape MxNxK]... [-o FILE]\n", argv[0]);
      return 2;
    }
  }
  if (!bf16_gemm_available()) {
    std::fprintf(stderr, "this CPU (or OS) has no AVX-512 BF16: nothing to compare\n");
    return 1;
  }
  if (shapes.empty())
    shapes = {{512, 4096, 4096, "9B prefill, 512 rows: q / o projection"},
              {512, 27392, 4096, "9B prefill, 512 rows: fused gate_up"},
              {1024, 4608, 1536, "vision qkv, one 32x32-patch image"},
              {13000, 4608, 1536, "vision qkv, 1080x2400 screenshot"},
              {13000, 1536, 4096, "vision MLP down, screenshot"},
              {96, 4096, 1536, "vision MLP up, a 96-row chunk"},
              {128, 4096, 4096, "9B prefill, 128 rows"},
              {4, 4096, 4096, "threshold"},
              {8, 4096, 4096, "threshold"},
              {16, 4096, 4096, "threshold"},
              {32, 4096, 4096, "threshold"},
              {64, 4096, 4096, "threshold"}};

  thread_pool pool(threads);
  const gemm_isa exact_isa = gemm_best_isa();
  nlohmann::json results = nlohmann::json::array();
  std::mt19937 gen(1);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (const shape& s : shapes) {
    // x [m, k] F32, W [n, k] BF16 with unit-variance outputs, y [m, n].
    std::vector<float> x(size_t(s.m * s.k)), y(size_t(s.m * s.n));
    for (float& v : x) v = nd(gen);
    std::vector<uint16_t> w(size_t(s.n * s.k));
    const float scale = 1.0f / std::sqrt(float(s.k));
    for (uint16_t& v : w) v = f32_to_bf16(nd(gen) * scale);
    const weight_rows rows{dtype::BF16, reinterpret_cast<const uint8_t*>(w.data()), s.k * 2};
    auto run_exact = [&] {
      gemm_f32(&pool, exact_isa, x.data(), s.k, s.m, rows, s.n, s.k, nullptr, y.data(), s.n);
    };
    auto run_bf16 = [&] { gemm_bf16(&pool, x.data(), s.k, s.m, rows, s.n, s.k, nullptr, y.data(), s.n); };
    run_exact();
    run_bf16();
    const double gflop = 2.0 * double(s.m) * double(s.n) * double(s.k) / 1e9;
    std::vector<double> exact_g, bf16_g, ratio, fma_peak, bf16_peak;
    for (int p = 0; p < pairs; ++p) {
      fma_peak.push_back(measure_fma_peak(threads));
      bf16_peak.push_back(measure_bf16_dot_peak(threads));
      double te, tb;
      if (p % 2) {
        tb = seconds(run_bf16);
        te = seconds(run_exact);
      } else {
        te = seconds(run_exact);
        tb = seconds(run_bf16);
      }
      exact_g.push_back(gflop / te);
      bf16_g.push_back(gflop / tb);
      ratio.push_back(te / tb);
    }
    nlohmann::json r;
    r["m"] = s.m;
    r["n"] = s.n;
    r["k"] = s.k;
    r["what"] = s.what;
    r["exact_isa"] = gemm_isa_name(exact_isa);
    r["exact_gflops_median"] = median(exact_g);
    r["bf16_gflops_median"] = median(bf16_g);
    r["speedup_median_of_pairs"] = median(ratio);
    r["fma_peak_gflops_median"] = median(fma_peak);
    r["bf16_dot_peak_gflops_median"] = median(bf16_peak);
    r["exact_gflops"] = exact_g;
    r["bf16_gflops"] = bf16_g;
    results.push_back(r);
    std::fprintf(stderr,
                 "m=%-5ld n=%-5ld k=%-5ld exact %6.1f GFLOP/s (%3.0f%% of FMA peak %.1f) | bf16 %6.1f GFLOP/s "
                 "(%3.0f%% of vdpbf16ps peak %.1f) | speedup %.2fx\n",
                 s.m, s.n, s.k, median(exact_g), 100 * median(exact_g) / median(fma_peak), median(fma_peak),
                 median(bf16_g), 100 * median(bf16_g) / median(bf16_peak), median(bf16_peak), median(ratio));
  }
  nlohmann::json out;
  out["benchmark"] = "cpu_bf16_gemm_vs_exact";
  out["threads"] = threads;
  out["pairs"] = pairs;
  out["results"] = results;
  const std::string text = out.dump(1);
  std::printf("%s\n", text.c_str());
  if (!out_file.empty()) std::ofstream(out_file) << text << "\n";
  return 0;
}
