// tools/cmd_bench.cpp: `autoglm bench`: per-token decode latency with the KV cache versus full recomputation at
// several context lengths (the deployment guide claims 230 ms -> 68 ms, 3.4x), against the machine's measured
// read bandwidth. Runs through the engine (the serving path) at batch 1; token times are taken on the engine
// thread as the events leave it. --streams N adds a continuous-batching throughput run (N requests at once).
// Writes JSON.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>

#include "autoglm/engine.h"
#include "cli_common.h"
#include "command.h"
#include "core/error.h"

namespace autoglm::cli {

namespace {

using clock_type = std::chrono::steady_clock;

// Time from submit to each token event of one request (measured on the engine thread).
std::vector<clock_type::time_point> timed_run(engine& eng, generation_request req, clock_type::time_point* submitted) {
  std::mutex mu;
  std::vector<clock_type::time_point> times;
  *submitted = clock_type::now();
  run_to_completion(eng, std::move(req), [&](const generation_event& ev) {
    if (!ev.has_token) return;
    std::lock_guard<std::mutex> lk(mu);
    times.push_back(clock_type::now());
  });
  return times;
}

// `streams` requests of `prompt_len` random tokens submitted at once, each decoding `max_tokens` (ignoring eos):
// continuous batching's output tokens per second from the first submit to the last token, and the median gap
// between one stream's tokens.
nlohmann::json throughput_run(engine& eng, int32_t streams, int32_t prompt_len, int32_t max_tokens,
                              const std::function<std::vector<int32_t>(int32_t)>& random_prompt) {
  std::mutex mu;
  std::condition_variable cv;
  int32_t n_done = 0;
  int64_t n_tokens = 0;
  std::string failure;
  std::vector<std::vector<clock_type::time_point>> times(static_cast<size_t>(streams));
  const clock_type::time_point t0 = clock_type::now();
  for (int32_t i = 0; i < streams; ++i) {
    generation_request req;
    req.prompt = random_prompt(prompt_len);
    req.sampling.temperature = 0.0f;
    req.sampling.ignore_eos = true;
    req.sampling.max_tokens = max_tokens;
    const uint64_t id = eng.submit(std::move(req), [&, i](const generation_event& ev) {
      std::lock_guard<std::mutex> lk(mu);
      if (ev.has_token) {
        ++n_tokens;
        times[size_t(i)].push_back(clock_type::now());
      }
      if (ev.finish != finish_reason::NONE) {
        if (ev.finish == finish_reason::ERROR && failure.empty()) failure = ev.error;
        ++n_done;
        cv.notify_all();
      }
    });
    if (id == 0) throw error("the engine refused stream " + std::to_string(i) + " (queue full?)");
  }
  std::unique_lock<std::mutex> lk(mu);
  cv.wait(lk, [&] { return n_done == streams; });
  if (!failure.empty()) throw error("a stream failed: " + failure);
  clock_type::time_point last = t0;
  std::vector<double> gaps;
  for (const auto& t : times) {
    if (!t.empty()) last = std::max(last, t.back());
    for (size_t k = 1; k < t.size(); ++k) gaps.push_back(ms_between(t[k - 1], t[k]));
  }
  const double wall_ms = ms_between(t0, last);
  nlohmann::json r;
  r["streams"] = streams;
  r["prompt_tokens"] = prompt_len;
  r["max_tokens"] = max_tokens;
  r["generated_tokens"] = n_tokens;
  r["wall_ms"] = wall_ms;
  r["output_tokens_per_s"] = double(n_tokens) * 1000.0 / wall_ms;
  r["median_inter_token_ms"] = gaps.empty() ? 0.0 : median(gaps);
  std::fprintf(stderr, "%d streams: %.1f output tokens/s (median %.2f ms between a stream's tokens)\n", streams,
               r["output_tokens_per_s"].get<double>(), r["median_inter_token_ms"].get<double>());
  return r;
}

int run_bench(int argc, char** argv) {
  CLI::App app{"Decode latency with the KV cache vs full recomputation, per context length; JSON output"};
  std::string model_dir, contexts_text = "128,512,2048", out_file, kv_type = "f32";
  int32_t max_batch_tokens = 0;
  int threads = 0, decode_tokens = 8, recompute_reps = 2, max_recompute_context = 1 << 30, prefill_reps = 3;
  bool fake_context = false;
  int32_t streams = 0, stream_prompt = 128;
  quant_flags quant;
  app.add_option("-m,--model", model_dir, "model directory; default: the bundled demo model");
  app.add_option("--contexts", contexts_text, "context lengths to measure");
  app.add_option("--decode-tokens", decode_tokens, "decode steps timed per context (median reported)");
  app.add_option("--streams", streams,
                 "also measure continuous batching: this many requests at once, each a --stream-prompt-token prompt "
                 "and --decode-tokens answer tokens (output tokens/s)")
      ->check(CLI::Range(0, 4096));
  app.add_option("--stream-prompt", stream_prompt, "prompt tokens of each --streams request")->check(CLI::Range(1, 1 << 20));
  app.add_option("--recompute-reps", recompute_reps, "full-recomputation steps timed per context");
  app.add_option("--prefill-reps", prefill_reps, "prefills of each context timed after a warm-up (the median is reported)")
      ->capture_default_str();
  app.add_option("--max-recompute-context", max_recompute_context, "skip full recomputation above this context (it is O(n) forward passes of n tokens)");
  app.add_flag("--fake-context", fake_context, "fill the KV cache without a prefill (timing only: decode cost does not depend on cached values)");
  app.add_option("--threads", threads, "CPU threads (default: all cores)");
  std::string device = "cpu";
  int32_t tensor_parallel_size = 1;
  app.add_option("--device", device, "where the model runs: cpu or cuda:N (a build with the CUDA backend)")->capture_default_str();
  app.add_option("--tensor-parallel-size,--tp", tensor_parallel_size, "split the decoder over N ranks (tensor parallelism) on consecutive devices from --device (cuda:N.. through NCCL; on the CPU an in-process group, for testing); images are encoded data-parallel, one per rank")
      ->capture_default_str()->check(CLI::Range(1, 64));
  app.add_option("--kv-type", kv_type, "KV cache element type: f32, f16, bf16 or q8_0")->capture_default_str();
  app.add_option("--max-batch-tokens", max_batch_tokens, "prefill tokens per engine step (0: by device, as serve)")
      ->capture_default_str();
  app.add_option("-o,--out", out_file, "also write the JSON here");
  quant.add_to(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  model_dir = resolve_model_dir(model_dir);
  std::vector<int32_t> contexts = parse_token_list(contexts_text);
  if (decode_tokens < 1 || decode_tokens > 100000) throw error("--decode-tokens must be between 1 and 100000");
  if (recompute_reps < 0 || recompute_reps > 1000) throw error("--recompute-reps must be between 0 and 1000");
  if (prefill_reps < 1 || prefill_reps > 1000) throw error("--prefill-reps must be between 1 and 1000");

  // One sequence at a time, no prefix cache (every prefill and recomputation is computed), a KV cache for the
  // longest context plus its decode steps.
  engine_options eo;
  eo.model_dir = model_dir;
  eo.n_threads = threads;
  eo.device = device;
  eo.tensor_parallel_size = tensor_parallel_size;
  eo.max_num_seqs = std::max(1, streams);  // batch 1 for the latency runs (one request at a time)
  eo.max_waiting = std::max(eo.max_waiting, streams);
  eo.enable_prefix_caching = false;
  eo.kv_cache_dtype = parse_kv_type_option(kv_type);
  eo.max_batch_tokens = max_batch_tokens;
  quant.apply(eo);
  auto t_load = clock_type::now();
  auto eng = engine::create(eo);
  const double load_ms = ms_between(t_load, clock_type::now());
  const process_memory after_load = read_process_memory();
  // Each context plus its decode steps must fit the model's positions (and so the KV cache sized for it).
  const int64_t max_len = eng->max_model_len();
  for (int32_t ctx : contexts)
    if (ctx < 1 || int64_t(ctx) + decode_tokens + 2 > max_len)
      throw error("--contexts: " + std::to_string(ctx) + " (+ " + std::to_string(decode_tokens) +
                  " decode tokens) must be at least 1 and fit the model's context of " + std::to_string(max_len));
  const size_t weight_bytes = eng->weight_bytes_per_token();
  const int32_t vocab = eng->info().vocab_size;
  std::mt19937 rng(1);
  std::uniform_int_distribution<int32_t> pick(0, std::min(vocab, 100000) - 1);
  auto random_prompt = [&](int32_t n) {
    std::vector<int32_t> p(static_cast<size_t>(n));
    for (auto& t : p)
      do t = pick(rng);
      while (t == eng->info().image_token_id);  // text only: a placeholder needs an image
    return p;
  };

  // The decode ceiling of the device the model runs on: host memory read bandwidth on the CPU, the device copy
  // bandwidth (bytes read + written) on a GPU.
  const bool on_gpu = eo.device.rfind("cuda", 0) == 0;
  const double read_bw =
      on_gpu ? measure_device_copy_bandwidth(eo.device) : measure_memory_read_bandwidth(eng->n_threads());
  // One untimed request first: the first forward of a process pays for allocations, library set-up and kernel
  // selection (a 512-token prefill measured 78-112 ms cold on an H200 against ~25 warm).
  if (!fake_context && !contexts.empty()) {
    generation_request warm;
    warm.prompt = random_prompt(*std::min_element(contexts.begin(), contexts.end()));
    warm.sampling.temperature = 0.0f;
    warm.sampling.ignore_eos = true;
    warm.sampling.max_tokens = 2;
    clock_type::time_point w0;
    timed_run(*eng, std::move(warm), &w0);
  }
  // Milliseconds from submit to the first token of `reps` greedy one-token requests for `prompt` (no prefix cache:
  // each computes the whole prompt).
  auto first_token_ms = [&](const std::vector<int32_t>& prompt, int reps) {
    std::vector<double> ms;
    for (int i = 0; i < reps; ++i) {
      generation_request once;
      once.prompt = prompt;
      once.sampling.temperature = 0.0f;
      once.sampling.max_tokens = 1;
      clock_type::time_point s0;
      const auto t = timed_run(*eng, std::move(once), &s0);
      ms.push_back(ms_between(s0, t.at(0)));
    }
    return ms;
  };
  nlohmann::json results = nlohmann::json::array();
  for (int32_t ctx : contexts) {
    nlohmann::json r;
    r["context"] = ctx;
    // KV cache: the context is cached once, then each new token is one forward of 1 token. The first token
    // comes from the prefill (or, with --fake-context, from a 1-token step at position ctx); the decode steps
    // are the gaps between the following tokens.
    generation_request req;
    req.prompt = random_prompt(fake_context ? ctx + 1 : ctx);
    req.sampling.temperature = 0.0f;
    req.sampling.ignore_eos = true;
    req.sampling.max_tokens = decode_tokens + 1;
    req.benchmark_skip_prefill = fake_context;
    clock_type::time_point t0;
    const std::vector<clock_type::time_point> times = timed_run(*eng, std::move(req), &t0);
    if (times.size() != size_t(decode_tokens) + 1) throw error("the engine stopped early");
    std::vector<double> steps;
    for (size_t i = 1; i < times.size(); ++i) steps.push_back(ms_between(times[i - 1], times[i]));
    const double kv_ms = median(steps);
    r["kv_cache_ms_per_token"] = kv_ms;
    r["kv_cache_tokens_per_s"] = 1000.0 / kv_ms;
    // A prompt of ctx tokens to its first token is both a prefill and one full recomputation step (every new token
    // re-running the whole context, no cache reuse): one set of timed requests serves both.
    const bool recompute = ctx <= max_recompute_context && recompute_reps > 0;
    const std::vector<double> full = first_token_ms(
        random_prompt(ctx), std::max(fake_context ? 0 : prefill_reps - 1, recompute ? recompute_reps : 0));
    if (!fake_context) {
      // Prefill: the run above and prefill_reps - 1 of those.
      std::vector<double> pre(full.begin(), full.begin() + (prefill_reps - 1));
      pre.push_back(ms_between(t0, times[0]));
      r["prefill_ms"] = median(pre);
      r["prefill_ms_min_max"] = {*std::min_element(pre.begin(), pre.end()), *std::max_element(pre.begin(), pre.end())};
      r["prefill_tokens_per_s"] = 1000.0 * ctx / median(pre);
    }
    if (weight_bytes) r["kv_cache_weight_GBps"] = double(weight_bytes) / (kv_ms * 1e6);
    if (recompute) {
      const double re_ms = median(std::vector<double>(full.begin(), full.begin() + recompute_reps));
      r["recompute_ms_per_token"] = re_ms;
      r["speedup_kv_over_recompute"] = re_ms / kv_ms;
    } else {
      r["recompute_ms_per_token"] = nullptr;
      r["recompute_skipped"] = recompute_reps == 0 ? "--recompute-reps 0" : "context above --max-recompute-context";
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
  if (streams > 0) out["throughput"] = throughput_run(*eng, streams, stream_prompt, decode_tokens, random_prompt);
  out["benchmark"] = "decode_kv_cache_vs_recompute";
  out["model_dir"] = model_dir;
  out["model"] = {{"layers", eng->info().n_layers}, {"hidden", eng->info().hidden_size}, {"vocab", vocab},
                  {"weight_bytes_per_token", weight_bytes}};
  out["threads"] = eng->n_threads();
  out["tensor_parallel_size"] = eo.tensor_parallel_size;
  out["kv_cache_type"] = kv_cache_type_name(eo.kv_cache_dtype);
  out["device"] = eo.device;
  out["weight_quant"] = eo.weight_quant.empty() ? "as stored" : eo.weight_quant;
  if (!eo.weight_quant_keep.empty()) out["weight_quant_keep"] = eo.weight_quant_keep;
  out["load_ms"] = load_ms;
  // Taken right after the load: later peaks hold the KV cache and the bandwidth probe's 512 MB buffer.
  out["rss_after_load_MB"] = double(after_load.rss_bytes) / 1e6;
  out["peak_rss_load_MB"] = double(after_load.peak_rss_bytes) / 1e6;
  out[on_gpu ? "device_copy_bandwidth_GBps" : "machine_read_bandwidth_GBps"] = read_bw;
  if (weight_bytes) out["decode_floor_ms_per_token"] = double(weight_bytes) / (read_bw * 1e6);
  out["fake_context"] = fake_context;
  out["results"] = results;
  out["growth"] = growth;
  out["claim"] = "deployment guide: 230 ms (recompute) -> 68 ms (KV cache) per token, 3.4x";
  eng->shutdown();
  print_json(out, out_file);
  return 0;
}

}  // namespace

AUTOGLM_COMMAND("bench", "decode latency with KV cache vs full recomputation per context (JSON)", run_bench);

}  // namespace autoglm::cli
