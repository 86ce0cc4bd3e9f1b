// tools/cli_common.cpp: see cli_common.h.
#include "cli_common.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include "core/error.h"
#include "media/glm4v_preprocess.h"
#include "media/image.h"
#include "ops/repack_cache.h"

namespace autoglm::cli {

std::string default_model_dir() {
  if (const char* env = std::getenv("AUTOGLM_DEMO_MODEL")) return env;
  return AUTOGLM_DEFAULT_MODEL_DIR;
}

std::string resolve_model_dir(const std::string& requested) {
  if (!requested.empty()) return requested;
  std::string dir = default_model_dir();
  std::fprintf(stderr,
               "note: no --model given; using the bundled demo model (%s).\n"
               "      It has RANDOM weights and the real GLM-4.1V layout, so its output is gibberish.\n"
               "      For real answers download zai-org/AutoGLM-Phone-9B from Hugging Face and pass its directory:\n"
               "      autoglm <command> --model /path/to/AutoGLM-Phone-9B\n",
               dir.c_str());
  return dir;
}

std::vector<int32_t> parse_token_list(const std::string& text) {
  std::vector<int32_t> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t a = item.find_first_not_of(" \t\n"), b = item.find_last_not_of(" \t\n");
    if (a == std::string::npos) throw error("empty entry in token list '" + text + "'");
    item = item.substr(a, b - a + 1);
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (...) {
      used = 0;
    }
    if (used != item.size() || v < 0 || v > INT32_MAX) throw error("bad token id '" + item + "' in token list");
    out.push_back(int32_t(v));
  }
  if (out.empty()) throw error("empty token list");
  return out;
}

vision_input load_image_input(const std::string& path, const std::string& model_dir, int64_t min_pixels, int64_t max_pixels) {
  image_rgb8 img = decode_image_file(path);
  glm4v_preprocess_config cfg = glm4v_preprocess_config::load(model_dir);
  if (min_pixels > 0) cfg.min_pixels = min_pixels;
  if (max_pixels > 0) cfg.max_pixels = max_pixels;
  const uint64_t hash = hash_image(img);
  return glm4v_vision_input(std::move(img), cfg, false, hash);
}

image_rgb8 synthetic_screenshot(int w, int h, std::mt19937& rng) {
  image_rgb8 img;
  img.width = w;
  img.height = h;
  img.rgb.resize(size_t(w) * size_t(h) * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c)
        img.rgb[(size_t(y) * size_t(w) + size_t(x)) * 3 + size_t(c)] =
            uint8_t((x * 255 / w + y * 255 / h * c + int(rng() % 32)) & 255);
  return img;
}

double ms_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : (v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]));
}

void print_json(const nlohmann::json& out, const std::string& out_file) {
  const std::string text = out.dump(2);
  std::puts(text.c_str());
  if (!out_file.empty()) std::ofstream(out_file) << text << "\n";
}

void quant_flags::add_to(CLI::App& app) {
  app.add_option("--quant", type,
                 "quantize the Hugging Face checkpoint's weights at load: q8_0, q6_k, q5_k, q4_k, q4_0, q5_0, "
                 "q5_1, q4_1 (as `autoglm quantize --type` writes them, with its policy: norms, biases and "
                 "convolutions stay float; rows that are not whole blocks fall back) or i8 (per-row scales)");
  app.add_option("--quant-keep", keep,
                 "PATTERN=TYPE: with --quant, tensors whose checkpoint name matches PATTERN ('*' = "
                 "any characters) are held as TYPE (also f32, f16, bf16), e.g. 'lm_head*=q8_0' (repeatable, first "
                 "match wins; as quantize --keep)");
  app.add_option("--repack-cache", repack_cache,
                 "directory where the CPU keeps its faster layout of quantized weights between runs (made at the "
                 "first load, mapped at later ones instead of made again; costs as much disk as those weights). "
                 "Default: AUTOGLM_REPACK_CACHE, else none");
}

void quant_flags::apply(engine_options& eo) const {
  if (!repack_cache.empty()) repack_cache::set_directory(repack_cache);
  eo.weight_quant = type;
  eo.weight_quant_keep = keep;
  try {
    check_weight_quant_options(eo);
  } catch (const invalid_request& e) {
    throw error(std::string(e.param() == "weight_quant" ? "--quant" : "--quant-keep") + ": " + e.what());
  }
}

process_memory read_process_memory() {
  process_memory m;
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    auto kb = [&](const char* key) -> uint64_t {
      return line.rfind(key, 0) == 0 ? uint64_t(std::strtoull(line.c_str() + std::strlen(key), nullptr, 10)) * 1024 : 0;
    };
    if (uint64_t v = kb("VmRSS:")) m.rss_bytes = v;
    if (uint64_t v = kb("VmHWM:")) m.peak_rss_bytes = v;
  }
  return m;
}

kv_cache_type parse_kv_type_option(const std::string& text) {
  try {
    return parse_kv_cache_type(text);
  } catch (const invalid_request&) {
    throw error("--kv-type must be f32, f16, bf16 or q8_0, got '" + text + "'");
  }
}

generation_event run_to_completion(engine& eng, generation_request request, const event_callback& on_event) {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  generation_event last;
  const uint64_t id = eng.submit(std::move(request), [&](const generation_event& ev) {
    if (on_event) on_event(ev);
    if (ev.finish == finish_reason::NONE) return;
    std::lock_guard<std::mutex> lk(mu);
    last = ev;
    done = true;
    cv.notify_all();
  });
  if (id == 0) throw error("the engine refused the request (queue full or shutting down)");
  std::unique_lock<std::mutex> lk(mu);
  cv.wait(lk, [&] { return done; });
  if (last.finish == finish_reason::ERROR) throw error("generation failed: " + last.error);
  return last;
}

std::vector<int32_t> expand_image_placeholders(const std::vector<int32_t>& tokens, int32_t image_token_id,
                                               const std::vector<vision_input>& images) {
  std::vector<int32_t> out;
  size_t k = 0;
  for (int32_t t : tokens) {
    if (t == image_token_id && image_token_id >= 0) {
      if (k >= images.size())
        throw error("the token list has more image placeholders (" + std::to_string(image_token_id) + ") than --image files (" +
                    std::to_string(images.size()) + ")");
      out.insert(out.end(), size_t(images[k++].n_tokens()), t);
    } else {
      out.push_back(t);
    }
  }
  if (k != images.size())
    throw error(std::to_string(images.size()) + " --image files but " + std::to_string(k) + " image placeholders in the tokens");
  return out;
}

}  // namespace autoglm::cli
