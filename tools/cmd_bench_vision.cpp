// tools/cmd_bench_vision.cpp: `autoglm bench-vision`: time of the GLM-4.1V vision encoder (preprocessing and
// encoding separately) for given image sizes, with the resulting token counts. JSON output.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <algorithm>

#include "cli_common.h"
#include "command.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "media/glm4v_preprocess.h"
#include "media/image.h"
#include "model/model_loader.h"

namespace autoglm::cli {

namespace {

double ms_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

int run_bench_vision(int argc, char** argv) {
  CLI::App app{"Vision encoder timing per image size (WxH), with token counts; JSON output"};
  std::string model_dir, sizes_text = "336x336,1080x2400", out_file;
  int threads = 0, reps = 1;
  int64_t max_pixels = 0;
  app.add_option("-m,--model", model_dir, "model directory; default: the bundled demo model");
  app.add_option("--sizes", sizes_text, "comma-separated WxH image sizes");
  app.add_option("--reps", reps, "timed encodes per size (the median is reported)");
  app.add_option("--max-pixels", max_pixels, "processor max_pixels override (Open-AutoGLM: 5000000)");
  app.add_option("--threads", threads, "CPU threads (default: all cores)");
  app.add_option("-o,--out", out_file, "also write the JSON here");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  model_dir = resolve_model_dir(model_dir);
  if (reps < 1 || reps > 1000) throw error("--reps must be between 1 and 1000");
  auto model = load_model_runner(model_dir, threads);
  if (!model->info().has_vision) throw error(model_dir + ": the model has no vision tower");
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
    // A synthetic screenshot: smooth gradients plus noise (the encoder's cost does not depend on content).
    image_rgb8 img;
    img.width = w;
    img.height = h;
    img.rgb.resize(size_t(w) * size_t(h) * 3);
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x)
        for (int c = 0; c < 3; ++c)
          img.rgb[(size_t(y) * size_t(w) + size_t(x)) * 3 + size_t(c)] = uint8_t((x * 255 / w + y * 255 / h * c + int(rng() % 32)) & 255);
    auto t0 = std::chrono::steady_clock::now();
    glm4v_pixels px = glm4v_preprocess(img, pre);
    auto t1 = std::chrono::steady_clock::now();
    vision_input v;
    v.grid_t = px.grid_t;
    v.grid_h = px.grid_h;
    v.grid_w = px.grid_w;
    v.pixel_values = std::move(px.values);
    std::vector<double> enc;
    for (int r = 0; r < std::max(1, reps); ++r) {
      auto a = std::chrono::steady_clock::now();
      std::vector<float> e = model->encode_image(v);
      enc.push_back(ms_between(a, std::chrono::steady_clock::now()));
    }
    std::sort(enc.begin(), enc.end());
    nlohmann::json r = {{"width", w},
                        {"height", h},
                        {"resized", {v.grid_w * pre.patch_size, v.grid_h * pre.patch_size}},
                        {"patches", v.grid_t * v.grid_h * v.grid_w},
                        {"tokens", v.n_tokens(pre.merge_size)},
                        {"preprocess_ms", ms_between(t0, t1)},
                        {"encode_ms", enc[enc.size() / 2]}};
    std::fprintf(stderr, "%dx%d -> %d tokens: preprocess %.1f ms, encode %.1f ms\n", w, h, v.n_tokens(pre.merge_size),
                 r["preprocess_ms"].get<double>(), r["encode_ms"].get<double>());
    results.push_back(r);
  }
  nlohmann::json out = {{"benchmark", "vision_encoder"},
                        {"backend", "cpu"},
                        {"model_dir", model_dir},
                        {"threads", default_thread_pool().n_threads()},
                        {"max_pixels", pre.max_pixels},
                        {"results", results}};
  std::string text = out.dump(2);
  std::puts(text.c_str());
  if (!out_file.empty()) std::ofstream(out_file) << text << "\n";
  return 0;
}

}  // namespace

AUTOGLM_COMMAND("bench-vision", "vision encoder timing per image size with token counts (JSON)", run_bench_vision);

}  // namespace autoglm::cli
