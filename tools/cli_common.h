// tools/cli_common.h: helpers shared by the CLI commands: the default (demo) model, token lists, images, and
// waiting for an engine request's events.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "autoglm/engine.h"
#include "media/glm4v_preprocess.h"
#include "media/image.h"

namespace CLI {
class App;
}

namespace autoglm::cli {

// --quant TYPE and --quant-keep PATTERN=TYPE (serve, run, logits, bench, eval): a Hugging Face checkpoint's
// weights quantized while it loads, as `autoglm quantize --type / --keep` would store them.
struct quant_flags {
  std::string type;
  std::vector<std::string> keep;
  std::string repack_cache;  // --repack-cache: where the CPU's weight copies are kept between runs
  // Registers the options on `app`.
  void add_to(CLI::App& app);
  // Copies them into `eo` and checks them (throws autoglm::error naming the option), before any load.
  void apply(engine_options& eo) const;
};

// The bundled demo checkpoint (random weights, real layout).
std::string default_model_dir();
// Resolves -m: empty means the demo model, with a plain notice on stderr.
std::string resolve_model_dir(const std::string& requested);
// "1,2, 3" -> {1, 2, 3}; throws autoglm::error on anything else.
std::vector<int32_t> parse_token_list(const std::string& text);
// Decodes and preprocesses an image file for the model in model_dir (preprocessor_config.json, overrides > 0).
vision_input load_image_input(const std::string& path, const std::string& model_dir, int64_t min_pixels = 0,
                              int64_t max_pixels = 0);
// Resident memory of this process now and at its peak (VmRSS / VmHWM of /proc/self/status; 0 where unknown).
struct process_memory {
  uint64_t rss_bytes = 0, peak_rss_bytes = 0;
};
process_memory read_process_memory();
// "f32" / "f16" / "bf16" / "q8_0" for --kv-type; throws autoglm::error naming the option on anything else.
kv_cache_type parse_kv_type_option(const std::string& text);
// Submits a request and waits for its final event; on_event (optional) sees every event on the engine thread
// first. Throws autoglm::error when the engine refuses the request or it ends in an error.
generation_event run_to_completion(engine& eng, generation_request request,
                                   const event_callback& on_event = nullptr);
// A synthetic w x h screenshot for benchmarks: smooth gradients plus noise drawn from rng (the encoder's cost does
// not depend on content).
image_rgb8 synthetic_screenshot(int w, int h, std::mt19937& rng);

// Benchmarks: milliseconds between two steady-clock points; the median of samples (0 when empty); a JSON result
// printed on stdout and, when out_file is set, written there too.
double ms_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b);
double median(std::vector<double> v);
void print_json(const nlohmann::json& out, const std::string& out_file);

// Replaces each occurrence of image_token_id with images[k].n_tokens() copies, in order (HF processor rule).
std::vector<int32_t> expand_image_placeholders(const std::vector<int32_t>& tokens, int32_t image_token_id,
                                               const std::vector<vision_input>& images);

}  // namespace autoglm::cli
