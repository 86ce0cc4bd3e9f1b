// tools/cmd_logits.cpp: `autoglm logits`: one full forward pass through the engine (every prompt position's
// logits via generation_request::return_prompt_logits), printed as JSON for independent parity checks.
// Output: {"n_positions": N, "vocab": V, "logits_last": [V floats], "argmax": [N ints]}.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>

#include "autoglm/engine.h"
#include "cli_common.h"
#include "command.h"
#include "core/error.h"

namespace autoglm::cli {

static int run_logits(int argc, char** argv) {
  CLI::App app{"Full forward pass over a token list; prints the last position's logits and the argmax at every position"};
  std::string model_dir, tokens_text, dump_dir;
  std::vector<std::string> image_files;
  int threads = 0;
  int64_t min_pixels = 0, max_pixels = 0;
  quant_flags quant;
  app.add_option("-m,--model", model_dir, "model directory (Hugging Face layout); default: the bundled demo model");
  app.add_option("--tokens", tokens_text, "comma-separated token ids; each image placeholder id stands for one --image")->required();
  app.add_option("--image", image_files, "image file (PNG/JPEG/WebP), once per placeholder, in order");
  app.add_option("--threads", threads, "CPU threads (default: all cores)");
  std::string device = "cpu";
  app.add_option("--device", device, "where the model runs: cpu or cuda:N (a build with the CUDA backend)")->capture_default_str();
  app.add_option("--min-pixels", min_pixels, "override the processor's min_pixels");
  app.add_option("--max-pixels", max_pixels, "override the processor's max_pixels");
  quant.add_to(app);
  app.add_option("--dump-dir", dump_dir, "write every named intermediate activation as <name>.f32 plus index.json");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  model_dir = resolve_model_dir(model_dir);
  std::vector<int32_t> tokens = parse_token_list(tokens_text);

  nlohmann::json index = nlohmann::json::array();
  std::mutex dump_mu;  // the decoder and the vision worker dump from their own threads
  engine_options eo;
  eo.model_dir = model_dir;
  eo.n_threads = threads;
  eo.device = device;
  eo.max_num_seqs = 1;
  eo.enable_prefix_caching = false;
  quant.apply(eo);
  if (!dump_dir.empty())
    eo.dump = [&](const std::string& name, const float* d, int64_t rows, int64_t cols) {
      std::lock_guard<std::mutex> lk(dump_mu);
      std::ofstream out(dump_dir + "/" + name + ".f32", std::ios::binary);
      out.write(reinterpret_cast<const char*>(d), std::streamsize(rows * cols * 4));
      index.push_back({{"name", name}, {"rows", rows}, {"cols", cols}});
    };
  auto eng = engine::create(eo);
  const model_info& info = eng->info();
  std::vector<vision_input> images;
  for (auto& f : image_files) images.push_back(load_image_input(f, model_dir, min_pixels, max_pixels));
  tokens = expand_image_placeholders(tokens, info.image_token_id, images);
  for (int32_t t : tokens)
    if (t >= info.vocab_size) throw error("token id " + std::to_string(t) + " is outside the vocabulary of " + std::to_string(info.vocab_size));
  if (int64_t(tokens.size()) >= eng->max_model_len())
    throw error(std::to_string(tokens.size()) + " tokens do not fit the model's context of " +
                std::to_string(eng->max_model_len()));

  generation_request req;
  req.prompt = tokens;
  req.images = std::move(images);
  req.sampling.temperature = 0.0f;
  req.sampling.max_tokens = 1;
  req.return_prompt_logits = true;
  std::vector<float> logits;
  run_to_completion(*eng, std::move(req), [&](const generation_event& ev) {
    if (!ev.prompt_logits.empty()) logits = ev.prompt_logits;
  });
  eng->shutdown();
  if (!dump_dir.empty()) std::ofstream(dump_dir + "/index.json") << index.dump(1);

  const int64_t V = info.vocab_size, N = int64_t(tokens.size());
  if (int64_t(logits.size()) != N * V) throw error("the engine returned no prompt logits");
  nlohmann::json out;
  out["n_positions"] = N;
  out["vocab"] = V;
  out["logits_last"] = std::vector<float>(logits.end() - V, logits.end());
  std::vector<int32_t> am(static_cast<size_t>(N));
  for (int64_t p = 0; p < N; ++p) {
    const float* row = logits.data() + p * V;
    am[size_t(p)] = int32_t(std::max_element(row, row + V) - row);
  }
  out["argmax"] = am;
  std::fputs(out.dump().c_str(), stdout);
  std::fputc('\n', stdout);
  return 0;
}

AUTOGLM_COMMAND("logits", "full forward pass over --tokens (and --image); prints logits as JSON", run_logits);

}  // namespace autoglm::cli
