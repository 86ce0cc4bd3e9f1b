// tools/cmd_bench_vision.cpp: `autoglm bench-vision`: time of the GLM-4.1V vision encoder (preprocessing and
// encoding separately) for given image sizes, with the resulting token counts. JSON output. Images go through
// the engine as requests; the encode time is what the engine's vision worker reports (engine_stats), and each
// request is cancelled once its image is encoded (its prefill is not what is measured).
#include <CLI/CLI.hpp>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <algorithm>

#include "autoglm/engine.h"
#include "cli_common.h"
#include "command.h"
#include "core/error.h"
#include "media/glm4v_preprocess.h"
#include "media/image.h"

namespace autoglm::cli {

namespace {

// Encodes one image through the engine: a request of just the image's placeholders, cancelled as soon as the
// vision worker has produced the embedding. Returns the worker's encode time.
double encode_once(engine& eng, const vision_input& v) {
  const model_info& mi = eng.info();
  const engine_stats before = eng.stats();
  generation_request req;
  req.prompt.push_back(mi.image_start_token_id);
  req.prompt.insert(req.prompt.end(), size_t(v.n_tokens()), mi.image_token_id);
  req.prompt.push_back(mi.image_end_token_id);
  req.images.push_back(v);
  req.sampling.temperature = 0.0f;
  req.sampling.max_tokens = 1;
  std::mutex mu;
  std::condition_variable cv;
  generation_event last;
  bool done = false;
  const uint64_t id = eng.submit(std::move(req), [&](const generation_event& ev) {
    if (ev.finish == finish_reason::NONE) return;
    std::lock_guard<std::mutex> lk(mu);
    last = ev;
    done = true;
    cv.notify_all();
  });
  if (id == 0) throw error("the engine refused the request");
  engine_stats now = eng.stats();
  for (; now.n_images_encoded == before.n_images_encoded; now = eng.stats()) {
    std::unique_lock<std::mutex> lk(mu);
    if (cv.wait_for(lk, std::chrono::milliseconds(1), [&] { return done; })) break;
  }
  eng.cancel(id);
  {
    std::unique_lock<std::mutex> lk(mu);
    cv.wait(lk, [&] { return done; });
  }
  if (last.finish == finish_reason::ERROR) throw error("encoding failed: " + last.error);
  // The worker adds an encode's time before it hands the image over, so once the request is done it counts.
  return eng.stats().vision_encode_ms_total - before.vision_encode_ms_total;
}

int run_bench_vision(int argc, char** argv) {
  CLI::App app{"Vision encoder timing per image size (WxH), with token counts; JSON output"};
  std::string model_dir, sizes_text = "336x336,1080x2400", out_file;
  int threads = 0, vision_threads = 0, reps = 1;
  int64_t max_pixels = 0;
  app.add_option("-m,--model", model_dir, "model directory; default: the bundled demo model");
  app.add_option("--sizes", sizes_text, "comma-separated WxH image sizes");
  app.add_option("--reps", reps, "timed encodes per size (the median is reported)");
  app.add_option("--max-pixels", max_pixels, "processor max_pixels override (Open-AutoGLM: 5000000)");
  app.add_option("--threads", threads, "CPU threads (default: all cores)");
  std::string device = "cpu";
  app.add_option("--device", device, "where the model runs: cpu or cuda:N (a build with the CUDA backend)")->capture_default_str();
  app.add_option("--vision-threads", vision_threads, "threads of the vision encoder (default: --threads)");
  app.add_option("-o,--out", out_file, "also write the JSON here");
  bool host_preprocess = false;
  app.add_flag("--host-preprocess", host_preprocess,
               "on a GPU too, preprocess on the host (encode_ms then excludes resize and patch layout)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  model_dir = resolve_model_dir(model_dir);
  if (reps < 1 || reps > 1000) throw error("--reps must be between 1 and 1000");
  engine_options eo;
  eo.model_dir = model_dir;
  eo.n_threads = threads;
  eo.device = device;
  // The encoder alone on the machine: all of --threads (the engine's default is half, beside decoding).
  eo.n_vision_threads = vision_threads > 0 ? vision_threads : threads > 0 ? threads : int32_t(std::thread::hardware_concurrency());
  eo.max_num_seqs = 1;
  eo.max_batch_tokens = 16;  // a prefill step after the encode ends soon after the cancel
  eo.enable_prefix_caching = false;
  auto eng = engine::create(eo);
  if (!eng->info().has_vision) throw error(model_dir + ": the model has no vision tower");
  glm4v_preprocess_config pre = glm4v_preprocess_config::load(model_dir);
  if (max_pixels > 0) pre.max_pixels = max_pixels;

  nlohmann::json results = nlohmann::json::array();
  std::stringstream ss(sizes_text);
  std::string item;
  std::mt19937 rng(5);
  while (std::getline(ss, item, ',')) {
    int w = 0, h = 0;
    if (std::sscanf(item.c_str(), "%dx%d", &w, &h) != 2 || w <= 0 || h <= 0 || w > 16384 || h > 16384)
      throw error("bad size '" + item + "' (expected WxH)");
    image_rgb8 img = synthetic_screenshot(w, h, rng);
    const bool on_device = !host_preprocess && device.rfind("cuda", 0) == 0;
    auto t0 = std::chrono::steady_clock::now();
    // On a GPU (as serve) the device resizes and lays out the patches inside each encode: the host only computes
    // the resize taps.
    vision_input v = glm4v_vision_input(std::move(img), pre, on_device, 0);  // each rep: a fresh content hash
    auto t1 = std::chrono::steady_clock::now();
    if (int64_t(v.n_tokens(pre.merge_size)) + 2 >= eng->max_model_len())
      throw error(item + ": " + std::to_string(v.n_tokens(pre.merge_size)) + " image tokens do not fit the context of " +
                  std::to_string(eng->max_model_len()));
    std::vector<double> enc;
    for (int r = 0; r < std::max(1, reps); ++r) {
      v.content_hash = rng() | 1;  // a new image each time: never served from the embedding cache
      enc.push_back(encode_once(*eng, v));
    }
    std::sort(enc.begin(), enc.end());
    nlohmann::json r = {{"width", w},
                        {"height", h},
                        {"resized", {v.grid_w * pre.patch_size, v.grid_h * pre.patch_size}},
                        {"patches", v.grid_t * v.grid_h * v.grid_w},
                        {"tokens", v.n_tokens(pre.merge_size)},
                        {"preprocess_ms", ms_between(t0, t1)},
                        {"preprocess_on_device", on_device},
                        {"encode_ms", enc[enc.size() / 2]}};
    std::fprintf(stderr, "%dx%d -> %d tokens: preprocess %.1f ms, encode %.1f ms\n", w, h, v.n_tokens(pre.merge_size),
                 r["preprocess_ms"].get<double>(), r["encode_ms"].get<double>());
    results.push_back(r);
  }
  nlohmann::json out = {{"benchmark", "vision_encoder"},
                        {"backend", device},
                        {"model_dir", model_dir},
                        {"threads", eng->n_vision_threads()},
                        {"max_pixels", pre.max_pixels},
                        {"results", results}};
  eng->shutdown();
  print_json(out, out_file);
  return 0;
}

}  // namespace

AUTOGLM_COMMAND("bench-vision", "vision encoder timing per image size with token counts (JSON)", run_bench_vision);

}  // namespace autoglm::cli
