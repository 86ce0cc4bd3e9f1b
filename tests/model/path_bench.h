// tests/model/path_bench.h: TRANSITIONAL timing of one model path (old model_runner or new model over ops) with
// the same method for both, so their numbers compare: decode ms/token (median of single-token steps after a fake
// context, as `autoglm bench --fake-context`), prefill ms, and vision encode ms per grid (as `bench-vision`, on
// fixed random pixels). Each path lives in its own program (old_model_tool / new_model_tool): the two contracts
// define different types under the same names and must not share a binary. Prints one JSON object.
#pragma once

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "autoglm/types.h"

namespace autoglm::test {

struct path_hooks {
  std::function<void()> reset;                  // forget the sequence
  std::function<void(int32_t)> fake_context;    // pretend n tokens are cached
  std::function<void(const std::vector<int32_t>&)> prefill;
  std::function<void(int32_t)> decode;          // one token
  std::function<void(const vision_input&)> encode;
  int32_t vocab = 0;
  int32_t patch_dim = 0;
};

inline double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

// contexts: decode measured after each fake context length; grids: (h, w) patch grids of one-frame images.
inline nlohmann::json run_path_bench(const path_hooks& h, const std::vector<int32_t>& contexts, int32_t decode_steps,
                                     int32_t prefill_tokens, const std::vector<std::pair<int32_t, int32_t>>& grids,
                                     int32_t vision_reps) {
  using clk = std::chrono::steady_clock;
  auto ms = [](clk::time_point a) { return std::chrono::duration<double, std::milli>(clk::now() - a).count(); };
  // CPU time of the whole process (all threads): on a shared machine it moves less than wall time.
  auto cpu_now = [] {
    timespec t{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return double(t.tv_sec) * 1e3 + double(t.tv_nsec) * 1e-6;
  };
  std::mt19937 rng(1);
  std::uniform_int_distribution<int32_t> pick(0, h.vocab - 1);
  nlohmann::json out;
  for (int32_t c : contexts) {
    h.reset();
    h.fake_context(c);
    std::vector<double> steps;
    for (int32_t i = 0; i < decode_steps; ++i) {
      const auto t0 = clk::now();
      h.decode(pick(rng));
      steps.push_back(ms(t0));
    }
    out["decode_ms_per_token"][std::to_string(c)] = median_of(steps);
  }
  if (prefill_tokens > 0) {
    std::vector<int32_t> prompt(static_cast<size_t>(prefill_tokens));
    for (auto& t : prompt) t = pick(rng);
    std::vector<double> runs, cpu;
    for (int r = 0; r < 3; ++r) {
      h.reset();
      const auto t0 = clk::now();
      const double c0 = cpu_now();
      h.prefill(prompt);
      runs.push_back(ms(t0));
      cpu.push_back(cpu_now() - c0);
    }
    out["prefill_ms"][std::to_string(prefill_tokens)] = median_of(runs);
    out["prefill_cpu_ms"][std::to_string(prefill_tokens)] = median_of(cpu);
  }
  std::normal_distribution<float> px(0.0f, 1.0f);
  for (auto [gh, gw] : grids) {
    vision_input v;
    v.grid_h = gh;
    v.grid_w = gw;
    v.pixel_values.resize(size_t(gh) * size_t(gw) * size_t(h.patch_dim));
    for (auto& x : v.pixel_values) x = px(rng);
    std::vector<double> runs, cpu;
    for (int32_t r = 0; r < vision_reps; ++r) {
      const auto t0 = clk::now();
      const double c0 = cpu_now();
      h.encode(v);
      runs.push_back(ms(t0));
      cpu.push_back(cpu_now() - c0);
    }
    out["encode_ms"][std::to_string(gh) + "x" + std::to_string(gw)] = median_of(runs);
    out["encode_cpu_ms"][std::to_string(gh) + "x" + std::to_string(gw)] = median_of(cpu);
  }
  return out;
}

}  // namespace autoglm::test
