// tools/cmd_bench.cpp: `autoglm bench`: per-token decode latency with the KV cache versus full recomputation at
// several context lengths (the deployment guide claims 230 ms -> 68 ms, 3.4x), against the machine's measured
// memory bandwidth. Writes JSON.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "cli_common.h"
#include "command.h"
#include "core/aligned_buffer.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "model/glm4v/glm4v_model.h"
#include "model/model_loader.h"
#include "model/sequence_runner.h"

namespace autoglm::cli {

namespace {

using clock_type = std::chrono::steady_clock;

double ms_since(clock_type::time_point t0) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : (v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]));
}

// Copy bandwidth over all threads, counting bytes read + written (the ceiling for weight streaming).
double measure_copy_bandwidth_gbps(size_t bytes) {
  aligned_buffer a(bytes), b(bytes);
  std::memset(a.data(), 1, bytes);
  std::memset(b.data(), 2, bytes);
  thread_pool& pool = default_thread_pool();
  std::vector<double> runs;
  for (int r = 0; r < 5; ++r) {
    auto t0 = clock_type::now();
    pool.parallel_for(int64_t(bytes / 4096), 64, [&](int64_t p0, int64_t p1) {
      std::memcpy(static_cast<char*>(b.data()) + p0 * 4096, static_cast<const char*>(a.data()) + p0 * 4096, size_t(p1 - p0) * 4096);
    });
    runs.push_back(ms_since(t0));
  }
  return 2.0 * double(bytes) / (median(runs) * 1e6);
}

// Read-only bandwidth over all threads (a sum over a buffer larger than the caches): the ceiling for decode,
// which only reads weights.
double measure_read_bandwidth_gbps(size_t bytes) {
  aligned_buffer a(bytes);
  std::memset(a.data(), 1, bytes);
  thread_pool& pool = default_thread_pool();
  const int64_t n = int64_t(bytes / sizeof(float));
  std::vector<double> runs;
  std::vector<float> sink(size_t(pool.n_threads()) * 16, 0.0f);
  for (int r = 0; r < 5; ++r) {
    auto t0 = clock_type::now();
    pool.parallel_for(n, 1 << 16, [&](int64_t i0, int64_t i1) {
      const float* p = a.f32();
      float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      for (int64_t i = i0; i + 8 <= i1; i += 8)
        for (int k = 0; k < 8; ++k) s[k] += p[i + k];
      sink[size_t(i0 % int64_t(sink.size()))] += s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
    });
    runs.push_back(ms_since(t0));
  }
  return double(bytes) / (median(runs) * 1e6);
}

int run_bench(int argc, char** argv) {
  CLI::App app{"Decode latency with the KV cache vs full recomputation, per context length; JSON output"};
  std::string model_dir, contexts_text = "128,512,2048", out_file;
  int threads = 0, decode_tokens = 8, recompute_reps = 2, max_recompute_context = 1 << 30;
  bool fake_context = false;
  app.add_option("-m,--model", model_dir, "model directory; default: the bundled demo model");
  app.add_option("--contexts", contexts_text, "context lengths to measure");
  app.add_option("--decode-tokens", decode_tokens, "decode steps timed per context (median reported)");
  app.add_option("--recompute-reps", recompute_reps, "full-recomputation steps timed per context");
  app.add_option("--max-recompute-context", max_recompute_context, "skip full recomputation above this context (it is O(n) forward passes of n tokens)");
  app.add_flag("--fake-context", fake_context, "fill the KV cache without a prefill (timing only: decode cost does not depend on cached values)");
  app.add_option("--threads", threads, "CPU threads (default: all cores)");
  app.add_option("-o,--out", out_file, "also write the JSON here");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  model_dir = resolve_model_dir(model_dir);
  std::vector<int32_t> contexts = parse_token_list(contexts_text);
  if (decode_tokens < 1 || decode_tokens > 100000) throw error("--decode-tokens must be between 1 and 100000");
  if (recompute_reps < 0 || recompute_reps > 1000) throw error("--recompute-reps must be between 0 and 1000");
  auto t_load = clock_type::now();
  auto model = load_model_runner(model_dir, threads);
  // Each context plus its decode steps must fit the model's positions (and so the KV cache sized for it).
  const int64_t max_positions = model->info().max_position_embeddings;
  for (int32_t ctx : contexts)
    if (ctx < 1 || int64_t(ctx) + decode_tokens + 2 > max_positions)
      throw error("--contexts: " + std::to_string(ctx) + " (+ " + std::to_string(decode_tokens) +
                  " decode tokens) must be at least 1 and fit the model's max_position_embeddings " +
                  std::to_string(max_positions));
  const double load_ms = ms_since(t_load);
  auto* glm = dynamic_cast<glm4v::glm4v_model*>(model.get());
  const size_t weight_bytes = glm ? glm->text().weight_bytes_per_token() : 0;
  const int32_t vocab = model->info().vocab_size;
  const int32_t max_ctx = *std::max_element(contexts.begin(), contexts.end());
  std::mt19937 rng(1);
  std::uniform_int_distribution<int32_t> pick(0, std::min(vocab, 100000) - 1);

  const double bw = measure_copy_bandwidth_gbps(size_t(256) << 20);
  const double read_bw = measure_read_bandwidth_gbps(size_t(512) << 20);
  nlohmann::json results = nlohmann::json::array();
  sequence_runner seq(*model, max_ctx + decode_tokens + 2);
  for (int32_t ctx : contexts) {
    std::vector<int32_t> prompt(static_cast<size_t>(ctx));
    for (auto& t : prompt) t = pick(rng);
    nlohmann::json r;
    r["context"] = ctx;
    // KV cache: the context is cached once, then each new token is one forward of 1 token.
    seq.reset();
    double prefill_ms = -1;
    if (fake_context) {
      seq.fake_context(ctx);
    } else {
      auto t0 = clock_type::now();
      seq.prefill(prompt, {});
      prefill_ms = ms_since(t0);
    }
    std::vector<double> steps;
    int32_t tok = pick(rng);
    for (int i = 0; i < decode_tokens; ++i) {
      auto t0 = clock_type::now();
      std::vector<float> l = seq.decode(tok);
      steps.push_back(ms_since(t0));
      tok = int32_t(std::max_element(l.begin(), l.end()) - l.begin());
    }
    const double kv_ms = median(steps);
    r["kv_cache_ms_per_token"] = kv_ms;
    r["kv_cache_tokens_per_s"] = 1000.0 / kv_ms;
    if (prefill_ms >= 0) r["prefill_ms"] = prefill_ms;
    if (weight_bytes) r["kv_cache_weight_GBps"] = double(weight_bytes) / (kv_ms * 1e6);
    // Full recomputation: every new token re-runs the whole context (no cache reuse).
    if (ctx <= max_recompute_context && recompute_reps > 0) {
      std::vector<double> full;
      for (int i = 0; i < recompute_reps; ++i) {
        seq.reset();
        auto t0 = clock_type::now();
        seq.prefill(prompt, {});
        full.push_back(ms_since(t0));
      }
      const double re_ms = median(full);
      r["recompute_ms_per_token"] = re_ms;
      r["speedup_kv_over_recompute"] = re_ms / kv_ms;
    } else {
      r["recompute_ms_per_token"] = nullptr;
      r["recompute_skipped"] = "context above --max-recompute-context";
    }
    std::fprintf(stderr, "context %6d: kv %.2f ms/token", ctx, kv_ms);
    if (r["recompute_ms_per_token"].is_number())
      std::fprintf(stderr, ", recompute %.2f ms/token, ratio %.1fx", r["recompute_ms_per_token"].get<double>(),
                   r["speedup_kv_over_recompute"].get<double>());
    std::fprintf(stderr, "\n");
    results.push_back(r);
  }
  // Growth with context: latency at the largest context over the smallest, for each mode.
  nlohmann::json growth;
  const auto& first = results.front();
  const auto& last = results.back();
  growth["context_ratio"] = double(last["context"].get<int>()) / first["context"].get<int>();
  growth["kv_cache_latency_ratio"] = last["kv_cache_ms_per_token"].get<double>() / first["kv_cache_ms_per_token"].get<double>();
  if (first["recompute_ms_per_token"].is_number() && last["recompute_ms_per_token"].is_number())
    growth["recompute_latency_ratio"] = last["recompute_ms_per_token"].get<double>() / first["recompute_ms_per_token"].get<double>();

  nlohmann::json out;
  out["benchmark"] = "decode_kv_cache_vs_recompute";
  out["model_dir"] = model_dir;
  out["model"] = {{"layers", model->info().n_layers}, {"hidden", model->info().hidden_size}, {"vocab", vocab},
                  {"weight_bytes_per_token", weight_bytes}};
  out["threads"] = default_thread_pool().n_threads();
  out["load_ms"] = load_ms;
  out["machine_copy_bandwidth_GBps"] = bw;
  out["machine_read_bandwidth_GBps"] = read_bw;
  if (weight_bytes) out["decode_floor_ms_per_token"] = double(weight_bytes) / (read_bw * 1e6);
  out["fake_context"] = fake_context;
  out["results"] = results;
  out["growth"] = growth;
  out["claim"] = "deployment guide: 230 ms (recompute) -> 68 ms (KV cache) per token, 3.4x";
  std::string text = out.dump(2);
  std::puts(text.c_str());
  if (!out_file.empty()) std::ofstream(out_file) << text << "\n";
  return 0;
}

}  // namespace

AUTOGLM_COMMAND("bench", "decode latency with KV cache vs full recomputation per context (JSON)", run_bench);

}  // namespace autoglm::cli
