// tests/fuzz/fuzz_image.cpp: libFuzzer target for image inputs (src/media): header probing and PNG/JPEG/WebP
// decoding with limits, then the GLM-4.1V preprocessing (smart_resize, bicubic resize, normalization, patchify)
// the vision encoder gets.
// An input that starts with "data:" is first taken apart as a data URI (decode_image_reference), as the server
// does with image_url; every input also goes through base64 encode -> decode, which must give it back.
// Limits are smaller than the server's (4 Mpixel decode, 50 kpixel after resize) so each execution stays fast;
// the code paths and limit checks are the same.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "fuzz_common.h"
#include "media/glm4v_preprocess.h"
#include "media/image.h"

namespace {

using namespace autoglm;

glm4v_preprocess_config preprocess_config(hf_image_backend backend) {
  glm4v_preprocess_config cfg;
  cfg.backend = backend;
  cfg.max_pixels = 28 * 28 * 64;
  return cfg;
}

void preprocess(const image_rgb8& img, const glm4v_preprocess_config& cfg) {
  glm4v_pixels px;
  try {
    px = glm4v_preprocess(img, cfg);
  } catch (const autoglm::error&) {
    return;  // e.g. an aspect ratio over 200
  }
  FUZZ_CHECK(px.grid_t == 1 && px.grid_h > 0 && px.grid_w > 0);
  FUZZ_CHECK(px.grid_h % cfg.merge_size == 0 && px.grid_w % cfg.merge_size == 0);
  // smart_resize (transformers' rule, which we match) keeps a side at its minimum (merge_size patches) when the
  // other is far longer: the pixel count may then pass max_pixels, as it does in transformers; never otherwise.
  // (The tokens are charged from the same grid against the context before any decode: the bound that matters.)
  const int64_t pixels = int64_t(px.grid_h) * px.grid_w * cfg.patch_size * cfg.patch_size;
  const bool side_at_minimum = px.grid_h == cfg.merge_size || px.grid_w == cfg.merge_size;
  FUZZ_CHECK(side_at_minimum || pixels <= cfg.max_pixels,
             std::to_string(img.width) + "x" + std::to_string(img.height) + " -> grid " + std::to_string(px.grid_w) +
                 "x" + std::to_string(px.grid_h));
  const size_t row = size_t(3) * cfg.temporal_patch_size * cfg.patch_size * cfg.patch_size;
  FUZZ_CHECK(px.values.size() == size_t(px.n_patches()) * row, std::to_string(px.values.size()));
  FUZZ_CHECK(px.n_tokens() * cfg.merge_size * cfg.merge_size == px.n_patches());
  for (float v : px.values) FUZZ_CHECK(std::isfinite(v) && std::fabs(v) < 10.0f, std::to_string(v));
  // The token count the chat layer charges from the header alone must be what preprocessing produces.
  glm4v_pixels grid = glm4v_image_grid(img.height, img.width, cfg);
  FUZZ_CHECK(grid.grid_t == px.grid_t && grid.grid_h == px.grid_h && grid.grid_w == px.grid_w, "glm4v_image_grid");
}

// The server's path (chat layer): probe the header, charge its tokens, then decode holding the decoder to the
// probed size. Cross-checked with a plain decode where they disagree: an image that decodes must probe to the
// size it decodes to, or the server would refuse (or miscount) a valid image.
void decode_and_preprocess(const uint8_t* data, size_t size, size_t selector) {
  image_limits limits;
  limits.max_side = 4096;
  limits.max_pixels = 4'000'000;
  limits.alpha = selector & 2 ? alpha_mode::drop : alpha_mode::composite_rgba_white;
  image_info info;
  bool probed = false;
  try {
    info = probe_image(data, size, limits);
    probed = true;
  } catch (const autoglm::error&) {
  }
  image_rgb8 img;
  try {
    img = probed ? decode_image(data, size, info, limits) : decode_image(data, size, limits);
  } catch (const autoglm::error&) {
    if (probed) {
      try {
        image_rgb8 plain = decode_image(data, size, limits);
        autoglm::fuzz::invariant_failed("decodes, but not to the size probe_image reports",
                         std::to_string(plain.width) + "x" + std::to_string(plain.height) + " vs probed " +
                             std::to_string(info.width) + "x" + std::to_string(info.height));
      } catch (const autoglm::error&) {
      }
    }
    return;
  }
  FUZZ_CHECK(probed, std::string("decodes, but probe_image rejects it (") + image_format_name(sniff_image_format(data, size)) + ")");
  FUZZ_CHECK(img.width == info.width && img.height == info.height);
  FUZZ_CHECK(img.width > 0 && img.height > 0 && img.width <= limits.max_side && img.height <= limits.max_side);
  FUZZ_CHECK(int64_t(img.width) * img.height <= limits.max_pixels);
  FUZZ_CHECK(img.rgb.size() == size_t(img.width) * img.height * 3);
  hash_image(img);
  preprocess(img, preprocess_config(selector & 1 ? hf_image_backend::pil : hf_image_backend::torchvision));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The options (alpha handling, resize backend) come from the input length, so seeds stay plain image files.
  const size_t selector = size;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string encoded = base64_encode(data, size);
  FUZZ_CHECK(base64_decode(encoded) == std::vector<uint8_t>(data, data + size), "base64 round trip");
  sniff_image_format(data, size);
  if (text.size() >= 5 && (text.substr(0, 5) == "data:" || text.substr(0, 5) == "DATA:")) {
    std::vector<uint8_t> bytes;
    try {
      bytes = decode_image_reference(text);
    } catch (const autoglm::error&) {
      return 0;
    }
    decode_and_preprocess(bytes.data(), bytes.size(), selector);
    return 0;
  }
  decode_and_preprocess(data, size, selector);
  return 0;
}
