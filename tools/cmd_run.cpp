// tools/cmd_run.cpp: `autoglm run`: one-off generation, streamed to stdout. Builds the prompt exactly as the
// server does (chat template, tokenizer, images through the chat layer) and generates through the engine.
#include <CLI/CLI.hpp>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <mutex>
#include <deque>

#include "autoglm/engine.h"
#include "chat/chat_session.h"
#include "chat/output_stream.h"
#include "cli_common.h"
#include "command.h"
#include "core/error.h"
#include "media/image.h"

namespace autoglm::cli {

namespace {

std::string file_as_data_uri(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw error(path + ": cannot open image");
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  return "data:image/" + std::string(image_format_name(sniff_image_format(p, bytes.size()))) + ";base64," +
         base64_encode(p, bytes.size());
}

int run_run(int argc, char** argv) {
  CLI::App app{"Generate an answer for one prompt (and images), streamed to stdout"};
  std::string model_dir, prompt, system, tokens_text;
  std::vector<std::string> images;
  int max_tokens = 256, threads = 0, top_k = -1;
  float temp = -1, top_p = -1, min_p = -1, rep = -1, freq = 0, pres = 0;
  int64_t seed = -1, min_pixels = 0, max_pixels = 0;
  std::string kv_type = "f32";
  bool no_think = false, show_reasoning = false, stats = false;
  quant_flags quant;
  app.add_option("-m,--model", model_dir, "model directory (Hugging Face layout); default: the bundled demo model");
  app.add_option("-p,--prompt", prompt, "the user message");
  app.add_option("--tokens", tokens_text, "raw prompt token ids instead of -p (no chat template)");
  app.add_option("--image", images, "image file attached to the user message (repeatable)");
  app.add_option("--system", system, "system message");
  app.add_option("-n,--max-tokens", max_tokens, "maximum tokens to generate");
  app.add_option("--temp,--temperature", temp, "sampling temperature (0 = greedy; default from generation_config.json)");
  app.add_option("--top-p", top_p, "nucleus sampling");
  app.add_option("--top-k", top_k, "top-k sampling (0 = off)");
  app.add_option("--min-p", min_p, "min-p sampling");
  app.add_option("--repetition-penalty", rep, "HF repetition penalty");
  app.add_option("--frequency-penalty", freq, "OpenAI frequency penalty");
  app.add_option("--presence-penalty", pres, "OpenAI presence penalty");
  app.add_option("--seed", seed, "seed for reproducible sampling");
  app.add_option("--threads", threads, "CPU threads (default: all cores)");
  std::string device = "cpu";
  int32_t tensor_parallel_size = 1;
  app.add_option("--device", device, "where the model runs: cpu or cuda:N (a build with the CUDA backend)")->capture_default_str();
  app.add_option("--tensor-parallel-size,--tp", tensor_parallel_size, "split the decoder over N ranks (tensor parallelism) on consecutive devices from --device (cuda:N.. through NCCL; on the CPU an in-process group, for testing); images are encoded data-parallel, one per rank")
      ->capture_default_str()->check(CLI::Range(1, 64));
  app.add_option("--kv-type", kv_type, "KV cache element type: f32, f16 or bf16 (half the memory), q8_0 (about a quarter)")->capture_default_str();
  app.add_option("--min-pixels", min_pixels, "image min_pixels override");
  app.add_option("--max-pixels", max_pixels, "image max_pixels override (Open-AutoGLM uses 5000000)");
  quant.add_to(app);
  app.add_flag("--no-think", no_think, "render the non-thinking prompt (enable_thinking=false)");
  app.add_flag("--show-reasoning", show_reasoning, "print <think> reasoning to stderr instead of hiding the tags");
  app.add_flag("--stats", stats, "print token counts and speed to stderr at the end");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (prompt.empty() && tokens_text.empty()) throw error("give a prompt with -p TEXT (or raw ids with --tokens)");
  model_dir = resolve_model_dir(model_dir);

  engine_options eo;
  eo.model_dir = model_dir;
  eo.n_threads = threads;
  eo.device = device;
  eo.tensor_parallel_size = tensor_parallel_size;
  eo.max_num_seqs = 1;
  eo.kv_cache_dtype = parse_kv_type_option(kv_type);
  quant.apply(eo);
  auto eng = engine::create(eo);

  generation_request req;
  if (!tokens_text.empty()) {
    req.prompt = parse_token_list(tokens_text);
    if (!images.empty()) throw error("--image needs -p (the chat template places the image)");
  } else {
    chat_context_options co;
    co.model_dir = model_dir;
    co.min_pixels = min_pixels;
    co.max_pixels = max_pixels;
    co.info = eng->info();
    co.preprocess_on_device = device.rfind("cuda", 0) == 0;
    auto chat = chat_context::load(co, eng->get_tokenizer());
    nlohmann::json messages = nlohmann::json::array();
    if (!system.empty()) messages.push_back({{"role", "system"}, {"content", system}});
    nlohmann::json content = nlohmann::json::array();
    for (auto& f : images) content.push_back({{"type", "image_url"}, {"image_url", {{"url", file_as_data_uri(f)}}}});
    content.push_back({{"type", "text"}, {"text", prompt}});
    messages.push_back({{"role", "user"}, {"content", content}});
    chat_options opts;
    if (no_think) opts.enable_thinking = false;
    req = chat->prepare_chat(messages, opts).request;
  }
  const generation_defaults d = load_generation_defaults(model_dir);
  sampling_params& sp = req.sampling;
  sp.temperature = temp >= 0 ? temp : d.temperature;
  sp.top_p = top_p >= 0 ? top_p : d.top_p;
  sp.top_k = top_k >= 0 ? top_k : d.top_k;
  sp.min_p = min_p >= 0 ? min_p : d.min_p;
  sp.repetition_penalty = rep > 0 ? rep : d.repetition_penalty;
  sp.frequency_penalty = freq;
  sp.presence_penalty = pres;
  if (seed >= 0) sp.seed = uint64_t(seed);
  sp.max_tokens = max_tokens;

  std::mutex mu;
  std::condition_variable cv;
  std::deque<generation_event> events;
  const int32_t n_prompt = int32_t(req.prompt.size());
  auto t0 = std::chrono::steady_clock::now();
  uint64_t id = eng->submit(std::move(req), [&](const generation_event& e) {
    std::lock_guard<std::mutex> lock(mu);
    events.push_back(e);
    cv.notify_one();
  });
  if (id == 0) throw error("the engine refused the request");
  output_options oo;
  oo.split_reasoning = show_reasoning;
  output_stream out(eng->get_tokenizer(), oo);
  auto emit = [&](const output_delta& dl) {
    if (!dl.reasoning.empty()) std::fputs(dl.reasoning.c_str(), stderr);
    std::fputs(dl.content.c_str(), stdout);
    std::fflush(stdout);
  };
  generation_event last;
  double ttft_ms = -1;
  for (bool done = false; !done;) {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return !events.empty(); });
    generation_event e = std::move(events.front());
    events.pop_front();
    lock.unlock();
    if (e.has_token) {
      if (ttft_ms < 0) ttft_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      emit(out.push(e.token));
    }
    if (e.finish != finish_reason::NONE) {
      last = e;
      done = true;
    }
  }
  emit(out.finish());
  std::fputc('\n', stdout);
  eng->shutdown();
  double total_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  if (last.finish == finish_reason::ERROR) throw error("generation failed: " + last.error);
  if (stats)
    std::fprintf(stderr, "[%d prompt tokens, %d generated, finish=%s, time to first token %.1f ms, total %.1f ms, %.2f tokens/s overall]\n",
                 n_prompt, last.n_generated_tokens, finish_reason_name(last.finish), ttft_ms, total_ms,
                 last.n_generated_tokens * 1000.0 / total_ms);
  return 0;
}

}  // namespace

AUTOGLM_COMMAND("run", "generate an answer for one prompt (and images), streamed to stdout", run_run);

}  // namespace autoglm::cli
