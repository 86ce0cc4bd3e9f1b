// bench/load/inproc_bench.cpp: the engine at batch 1 without HTTP — the baseline the server's overhead is
// measured against (bench/load/overhead.mjs runs both with the same prompt, max_tokens and threads).
// Uses only the public engine API and the chat layer, exactly as the server does. Writes JSON to stdout.
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

using namespace autoglm;
using clock_type = std::chrono::steady_clock;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: inproc_bench MODEL_DIR [max_tokens=64] [repeats=5] [threads=0] [prompt]\n");
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
