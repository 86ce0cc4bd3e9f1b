// tools/cmd_bench_agent.cpp: `autoglm bench-agent`: one phone-agent step as an agent sends it, timed through the
// engine (the serving path): a long system prompt already in the prefix cache (the agent re-sends it every step),
// a new screenshot, a few tokens of instruction, and an answer of a fixed length. Reports time to first token
// (vision encode + prefill of what the cache does not hold) and the whole step, median over repetitions, with the
// prompt tokens the prefix cache served. Random tokens and a synthetic image: cost does not depend on content.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "autoglm/engine.h"
#include "cli_common.h"
#include "command.h"
#include "core/error.h"
#include "media/glm4v_preprocess.h"
#include "media/image.h"

namespace autoglm::cli {

namespace {

using clock_type = std::chrono::steady_clock;

int run_bench_agent(int argc, char** argv) {
  CLI::App app{"One phone-agent step (cached system prompt + new screenshot + answer): time to first token and total"};
  std::string model_dir, device = "cpu", kv_type = "bf16", image_size = "1080x2400", out_file;
  bool host_preprocess = false;
  int32_t max_batch_tokens = 0;
  int threads = 0, system_tokens = 1500, text_tokens = 40, answer_tokens = 100, reps = 3;
  int64_t max_pixels = 0;
  app.add_option("-m,--model", model_dir, "model directory; default: the bundled demo model");
  app.add_option("--device", device, "where the model runs: cpu or cuda:N (a build with the CUDA backend)")->capture_default_str();
  app.add_option("--kv-type", kv_type, "KV cache element type: f32, f16, bf16 or q8_0")->capture_default_str();
  app.add_option("--max-batch-tokens", max_batch_tokens, "prefill tokens per engine step (0: by device, as serve)")
      ->capture_default_str();
  app.add_option("--threads", threads, "CPU threads (default: all cores)");
  app.add_option("--system-tokens", system_tokens, "system prompt tokens, cached by the first request")->capture_default_str();
  app.add_option("--image", image_size, "screenshot size WxH")->capture_default_str();
  app.add_option("--max-pixels", max_pixels, "processor max_pixels override (0: preprocessor_config.json)");
  app.add_option("--text-tokens", text_tokens, "instruction tokens after the screenshot")->capture_default_str();
  app.add_option("--answer-tokens", answer_tokens, "generated tokens per step")->capture_default_str();
  app.add_option("--reps", reps, "timed steps (the median is reported)")->capture_default_str();
  app.add_option("-o,--out", out_file, "also write the JSON here");
  app.add_flag("--host-preprocess", host_preprocess,
               "on a GPU too, preprocess the screenshot on the host (as the CPU does) instead of on the device");
  quant_flags quant;
  quant.add_to(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  model_dir = resolve_model_dir(model_dir);
  if (reps < 1 || reps > 1000) throw error("--reps must be between 1 and 1000");
  if (system_tokens < 16 || text_tokens < 1 || answer_tokens < 1)
    throw error("--system-tokens must be at least 16, --text-tokens and --answer-tokens at least 1");
  int w = 0, h = 0;
  if (std::sscanf(image_size.c_str(), "%dx%d", &w, &h) != 2 || w <= 0 || h <= 0 || w > 16384 || h > 16384)
    throw error("--image '" + image_size + "': expected WxH");

  const bool on_device = !host_preprocess && device.rfind("cuda", 0) == 0;
  engine_options eo;
  eo.model_dir = model_dir;
  eo.n_threads = threads;
  eo.device = device;
  eo.max_num_seqs = 1;
  eo.enable_prefix_caching = true;  // the point: the system prompt is served from the cache
  eo.kv_cache_dtype = parse_kv_type_option(kv_type);
  eo.max_batch_tokens = max_batch_tokens;
  quant.apply(eo);
  auto eng = engine::create(eo);
  const model_info& mi = eng->info();
  if (!mi.has_vision) throw error(model_dir + ": the model has no vision tower");
  glm4v_preprocess_config pre = glm4v_preprocess_config::load(model_dir);
  if (max_pixels > 0) pre.max_pixels = max_pixels;

  std::mt19937 rng(11);
  std::uniform_int_distribution<int32_t> pick(0, std::min(mi.vocab_size, 100000) - 1);
  auto random_tokens = [&](int n) {
    std::vector<int32_t> p(static_cast<size_t>(n));
    for (auto& t : p)
      do t = pick(rng);
      while (t == mi.image_token_id || t == mi.image_start_token_id || t == mi.image_end_token_id ||
             t == mi.video_start_token_id || t == mi.video_end_token_id);  // a video span would hide the image
    return p;
  };
  const std::vector<int32_t> system_prompt = random_tokens(system_tokens);

  // The first request puts the system prompt in the prefix cache (as the agent's first step would).
  {
    generation_request warm;
    warm.prompt = system_prompt;
    warm.sampling.temperature = 0.0f;
    warm.sampling.max_tokens = 1;
    run_to_completion(*eng, std::move(warm));
  }
  const image_rgb8 img = synthetic_screenshot(w, h, rng);
  nlohmann::json steps = nlohmann::json::array();
  std::vector<double> ttft, total, decode_ms, preprocess, vision;
  int32_t n_image_tokens = 0, n_prompt = 0, n_cached = 0;
  for (int r = 0; r < reps + 1; ++r) {  // the first step warms the image path (allocations) and is not timed
    const double vision_before = eng->stats().vision_encode_ms_total;
    image_rgb8 decoded = img;  // as the server's decoder hands it over (moved into the request on a GPU)
    const auto t0 = clock_type::now();
    // A new content hash every step: never served from the image-embedding cache. On a GPU (as serve) the device
    // resizes and lays out the patches: the host only computes the resize taps.
    vision_input v = glm4v_vision_input(std::move(decoded), pre, on_device, rng() | 1);
    const double pre_ms = ms_between(t0, clock_type::now());  // host: resize, normalize, patch layout
    n_image_tokens = v.n_tokens(pre.merge_size);
    generation_request req;
    req.prompt = system_prompt;
    req.prompt.push_back(mi.image_start_token_id);
    req.prompt.insert(req.prompt.end(), size_t(n_image_tokens), mi.image_token_id);
    req.prompt.push_back(mi.image_end_token_id);
    const std::vector<int32_t> text = random_tokens(text_tokens);
    req.prompt.insert(req.prompt.end(), text.begin(), text.end());
    if (int64_t(req.prompt.size()) + answer_tokens + 1 > eng->max_model_len())
      throw error("the step's " + std::to_string(req.prompt.size()) + " prompt tokens + " +
                  std::to_string(answer_tokens) + " answer tokens do not fit the context of " +
                  std::to_string(eng->max_model_len()));
    req.images.push_back(std::move(v));
    req.sampling.temperature = 0.0f;
    req.sampling.ignore_eos = true;
    req.sampling.max_tokens = answer_tokens;
    std::mutex mu;
    std::vector<clock_type::time_point> times;
    const generation_event last = run_to_completion(*eng, std::move(req), [&](const generation_event& ev) {
      if (!ev.has_token) return;
      std::lock_guard<std::mutex> lk(mu);
      times.push_back(clock_type::now());
    });
    if (times.size() != size_t(answer_tokens)) throw error("the engine stopped early");
    n_prompt = last.n_prompt_tokens;
    n_cached = last.n_cached_prompt_tokens;
    if (r == 0) continue;
    const double first = ms_between(t0, times.front()), all = ms_between(t0, times.back());
    // The vision worker's own clock for this step's encode (its queue wait excluded): the rest of the first token
    // is preprocessing and the prefill.
    const double vision_ms = eng->stats().vision_encode_ms_total - vision_before;
    vision.push_back(vision_ms);
    ttft.push_back(first);
    preprocess.push_back(pre_ms);
    total.push_back(all);
    decode_ms.push_back((all - first) / std::max(1, answer_tokens - 1));
    steps.push_back(
        {{"ttft_ms", first}, {"total_ms", all}, {"preprocess_ms", pre_ms}, {"vision_encode_ms", vision_ms},
         {"cached_prompt_tokens", n_cached}});
    std::fprintf(stderr,
                 "step %d: first token %.1f ms (preprocess %.1f, vision %.1f), total %.1f ms (%d of %d prompt tokens "
                 "from the cache)\n",
                 r, first, pre_ms, vision_ms, all, n_cached, n_prompt);
  }
  nlohmann::json out = {{"benchmark", "phone_agent_step"},
                        {"device", device},
                        {"model_dir", model_dir},
                        {"kv_cache_type", kv_type},
                        {"max_batch_tokens", max_batch_tokens},  // 0: by device
                        {"weight_quant", eo.weight_quant.empty() ? "as stored" : eo.weight_quant},
                        {"image", {{"width", w}, {"height", h}, {"tokens", n_image_tokens}}},
                        {"system_tokens", system_tokens},
                        {"text_tokens", text_tokens},
                        {"answer_tokens", answer_tokens},
                        {"prompt_tokens", n_prompt},
                        {"cached_prompt_tokens", n_cached},
                        {"ttft_ms", median(ttft)},
                        {"total_ms", median(total)},
                        {"decode_ms_per_token", median(decode_ms)},
                        // Of the time to first token: the host's image preprocessing (the rest is the device).
                        {"preprocess_ms", median(preprocess)},
                        {"preprocess_on_device", on_device},
                        {"vision_encode_ms", median(vision)},
                        {"ttft_ms_min_max", {*std::min_element(ttft.begin(), ttft.end()), *std::max_element(ttft.begin(), ttft.end())}},
                        {"total_ms_min_max", {*std::min_element(total.begin(), total.end()), *std::max_element(total.begin(), total.end())}},
                        {"steps", steps}};
  eng->shutdown();
  print_json(out, out_file);
  return 0;
}

}  // namespace

AUTOGLM_COMMAND("bench-agent", "one phone-agent step: cached system prompt + screenshot + answer (JSON)",
                run_bench_agent);

}  // namespace autoglm::cli
