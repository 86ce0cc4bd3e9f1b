// bench/load/inproc_bench.cpp: the engine at batch 1 without HTTP — the baseline the server's overhead is
// measured against (bench/load/overhead.mjs runs both with the same prompt, max_tokens and threads).
// Uses only the public engine API and the chat layer, exactly as the server does. Writes JSON to stdout.
//
// `inproc_bench MODEL_DIR --vision-gap [WxH] [threads] [vision_threads] [max_batch_tokens]`: the decode stall a new
// image causes. One stream decodes; once it runs, a request with a WxH screenshot (default 1080x2400) arrives.
// Reports the running stream's worst inter-token gap before the image arrived, while the vision worker encoded
// it, and until that request's first token (which adds its prefill chunks of up to max_batch_tokens). An engine
// that encodes inside its step stalls every stream for the whole encode.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "autoglm/engine.h"
#include "chat/chat_session.h"
#include "core/log.h"
#include "media/glm4v_preprocess.h"
#include "media/image.h"
#include "tokenizer/tokenizer.h"

using namespace autoglm;
using clock_type = std::chrono::steady_clock;

namespace {

double ms_between(clock_type::time_point a, clock_type::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

int vision_gap(const std::string& model_dir, int width, int height, int32_t threads, int32_t vision_threads,
               int32_t max_batch_tokens) {
  engine_options eo;
  eo.model_dir = model_dir;
  eo.n_threads = threads;
  eo.n_vision_threads = vision_threads;
  if (max_batch_tokens > 0) eo.max_batch_tokens = max_batch_tokens;
  eo.max_num_seqs = 4;
  auto eng = engine::create(eo);
  const model_info& mi = eng->info();
  if (!mi.has_vision) throw std::runtime_error(model_dir + ": the model has no vision tower");

  // A synthetic screenshot (the encoder's cost does not depend on content), preprocessed as the chat layer does.
  image_rgb8 img;
  img.width = width;
  img.height = height;
  img.rgb.resize(size_t(width) * size_t(height) * 3);
  for (size_t i = 0; i < img.rgb.size(); ++i) img.rgb[i] = uint8_t((i * 2654435761u) >> 24);
  glm4v_pixels px = glm4v_preprocess(img, glm4v_preprocess_config::load(model_dir));
  vision_input im;
  im.grid_t = px.grid_t;
  im.grid_h = px.grid_h;
  im.grid_w = px.grid_w;
  im.pixel_values = std::move(px.values);
  im.content_hash = hash_image(img);
  const int32_t n_image_tokens = im.n_tokens();

  std::mutex m;
  std::condition_variable cv;
  std::vector<clock_type::time_point> a_times;
  std::vector<bool> a_encoding;  // the vision worker held an image when the token left the engine
  bool a_done = false, b_done = false;
  clock_type::time_point b_first{};
  generation_request a;
  a.prompt = eng->get_tokenizer().encode("Describe what a phone agent does, step by step.");
  a.sampling.temperature = 0.0f;
  a.sampling.max_tokens = std::max(64, eng->max_model_len() - int32_t(a.prompt.size()) - 1);
  a.sampling.ignore_eos = true;
  const engine* e = eng.get();
  const uint64_t a_id = eng->submit(a, [&](const generation_event& ev) {
    const bool encoding = e->stats().n_images_encoding > 0;
    std::lock_guard lock(m);
    if (ev.has_token) {
      a_times.push_back(clock_type::now());
      a_encoding.push_back(encoding);
    }
    if (ev.finish != finish_reason::NONE) a_done = true;
    cv.notify_all();
  });
  auto wait_a = [&](size_t n) {
    std::unique_lock lock(m);
    cv.wait(lock, [&] { return a_times.size() >= n || a_done; });
  };
  wait_a(40);  // warm: the stream decodes steadily

  generation_request b;
  b.prompt = eng->get_tokenizer().encode("Look:");
  b.prompt.push_back(mi.image_start_token_id);
  b.prompt.insert(b.prompt.end(), size_t(im.n_tokens()), mi.image_token_id);
  b.prompt.push_back(mi.image_end_token_id);
  b.images.push_back(std::move(im));
  b.sampling.temperature = 0.0f;
  b.sampling.max_tokens = 4;
  size_t a_before = 0;
  clock_type::time_point t_submit;
  {
    std::lock_guard lock(m);
    a_before = a_times.size();
    t_submit = clock_type::now();
  }
  eng->submit(std::move(b), [&](const generation_event& ev) {
    std::lock_guard lock(m);
    if (ev.has_token && b_first == clock_type::time_point{}) b_first = clock_type::now();
    if (ev.finish != finish_reason::NONE) b_done = true;
    cv.notify_all();
  });
  {
    std::unique_lock lock(m);
    cv.wait(lock, [&] { return b_done; });
  }
  wait_a(a_times.size() + 20);
  eng->cancel(a_id);
  {
    std::unique_lock lock(m);
    cv.wait(lock, [&] { return a_done; });
  }
  const double eng_encode_ms = eng->stats().vision_encode_ms_total;
  eng->shutdown();

  // Gaps before the image arrived (after warm-up) and while the image request waited for its first token.
  double worst_before = 0, worst_during = 0, worst_encoding = 0;
  int32_t n_during = 0, n_encoding = 0;
  for (size_t i = a_before; i < a_times.size(); ++i)
    if (a_encoding[i] || (i > 0 && a_encoding[i - 1])) {
      worst_encoding = std::max(worst_encoding, ms_between(std::max(a_times[i - 1], t_submit), a_times[i]));
      n_encoding += a_encoding[i];
    }
  for (size_t i = 10; i < a_before; ++i) worst_before = std::max(worst_before, ms_between(a_times[i - 1], a_times[i]));
  for (size_t i = a_before; i < a_times.size(); ++i) {
    if (a_times[i] > b_first) {
      worst_during = std::max(worst_during, ms_between(std::max(a_times[i - 1], t_submit), a_times[i]));
      break;  // the gap that spans the image request's first token ends here
    }
    worst_during = std::max(worst_during, ms_between(std::max(a_times[i - 1], t_submit), a_times[i]));
    ++n_during;
  }
  nlohmann::json out = {{"what", "worst inter-token gap of a running stream when a request with a new image arrives"},
                        {"model_dir", model_dir},
                        {"image", std::to_string(width) + "x" + std::to_string(height)},
                        {"image_tokens", n_image_tokens},
                        {"threads", eng->n_threads()},
                        {"vision_threads", eng->n_vision_threads()},
                        {"worst_gap_before_ms", worst_before},
                        {"worst_gap_while_image_pending_ms", worst_during},
                        {"stream_tokens_while_image_pending", n_during},
                        {"worst_gap_while_encoding_ms", worst_encoding},
                        {"stream_tokens_while_encoding", n_encoding},
                        {"vision_encode_ms", eng_encode_ms},
                        {"max_batch_tokens", eo.max_batch_tokens},
                        {"image_request_ttft_ms", ms_between(t_submit, b_first)}};
  std::printf("%s\n", out.dump(2).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 3 && std::string(argv[2]) == "--vision-gap") {
    log_init("warn");
    int w = 1080, h = 2400;
    if (argc > 3 && std::sscanf(argv[3], "%dx%d", &w, &h) != 2) {
      std::fprintf(stderr, "inproc_bench: bad size '%s' (expected WxH)\n", argv[3]);
      return 2;
    }
    try {
      return vision_gap(argv[1], w, h, argc > 4 ? std::stoi(argv[4]) : 0, argc > 5 ? std::stoi(argv[5]) : 0,
                        argc > 6 ? std::stoi(argv[6]) : 0);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "inproc_bench: %s\n", e.what());
      return 1;
    }
  }
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: inproc_bench MODEL_DIR [max_tokens=64] [repeats=5] [threads=0] [prompt]\n"
                 "       inproc_bench MODEL_DIR --vision-gap [WxH=1080x2400] [threads=0] [vision_threads=0] [max_batch_tokens]\n");
    return 2;
  }
  log_init("warn");  // logs go to stderr; stdout carries only the JSON
  std::string model_dir = argv[1];
  int32_t max_tokens = argc > 2 ? std::stoi(argv[2]) : 64;
  int repeats = argc > 3 ? std::stoi(argv[3]) : 5;
  engine_options eo;
  eo.model_dir = model_dir;
  eo.n_threads = argc > 4 ? std::stoi(argv[4]) : 0;
  std::string prompt = argc > 5 ? argv[5] : "Describe what a phone agent does, step by step.";
  try {
    auto eng = engine::create(eo);
    chat_context_options co;
    co.model_dir = model_dir;
    co.info = eng->info();
    auto chat = chat_context::load(co, eng->get_tokenizer());
    nlohmann::json messages = {{{"role", "system"}, {"content", "You are a helpful assistant."}},
                               {{"role", "user"}, {"content", prompt}}};

    std::vector<double> ttft_ms, decode_tps, e2e_ms;
    int32_t n_prompt = 0, n_out = 0;
    for (int r = 0; r < repeats + 1; ++r) {  // the first run warms up and is not counted
      auto t0 = clock_type::now();
      prepared_prompt p = chat->prepare_chat(messages, {});
      p.request.sampling.temperature = 0.7f;
      p.request.sampling.seed = uint64_t(r + 1);
      p.request.sampling.max_tokens = max_tokens;
      p.request.sampling.ignore_eos = true;
      std::mutex m;
      std::condition_variable cv;
      bool done = false;
      clock_type::time_point first, last;
      int32_t n = 0;
      eng->submit(std::move(p.request), [&](const generation_event& ev) {
        std::lock_guard lock(m);
        if (ev.has_token) {
          if (n == 0) first = clock_type::now();
          last = clock_type::now();
          n++;
        }
        if (ev.finish != finish_reason::NONE) {
          n_prompt = ev.n_prompt_tokens;
          done = true;
          cv.notify_all();
        }
      });
      std::unique_lock lock(m);
      cv.wait(lock, [&] { return done; });
      if (r == 0) continue;
      n_out = n;
      ttft_ms.push_back(std::chrono::duration<double, std::milli>(first - t0).count());
      e2e_ms.push_back(std::chrono::duration<double, std::milli>(last - t0).count());
      if (n > 1) decode_tps.push_back((n - 1) / std::chrono::duration<double>(last - first).count());
    }
    eng->shutdown();
    auto med = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      return v.empty() ? 0.0 : v[v.size() / 2];
    };
    nlohmann::json out = {{"what", "engine in-process, batch 1, chat prompt through the chat layer"},
                          {"model_dir", model_dir},
                          {"prompt_tokens", n_prompt},
                          {"output_tokens", n_out},
                          {"repeats", repeats},
                          {"ttft_ms_median", med(ttft_ms)},
                          {"e2e_ms_median", med(e2e_ms)},
                          {"decode_tokens_per_s_median", med(decode_tps)},
                          {"overall_tokens_per_s_median", n_out / (med(e2e_ms) / 1000.0)}};
    std::printf("%s\n", out.dump(2).c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "inproc_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
