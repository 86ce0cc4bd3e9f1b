// media/glm4v_preprocess.h: Glm4vImageProcessor re-implemented — smart_resize, Pillow-exact bicubic resampling,
// CLIP normalization and the (hb, wb, hm, wm) x (C, T, 14, 14) patch layout the vision encoder consumes.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "autoglm/bulk_allocator.h"
#include "autoglm/types.h"
#include "media/image.h"

namespace autoglm {

// Which transformers 5.x backend to reproduce bit for bit. torchvision is what AutoImageProcessor (and so vLLM)
// picks by default; pil is Glm4vImageProcessorPil / use_fast=False.
enum class hf_image_backend { torchvision, pil };

struct glm4v_preprocess_config {
  int32_t patch_size = 14, temporal_patch_size = 2, merge_size = 2;
  // Bounds on t*h*w with t = temporal_patch_size (HF size.shortest_edge / size.longest_edge).
  int64_t min_pixels = 112 * 112, max_pixels = 28 * 28 * 15000;
  float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
  float std[3] = {0.26862954f, 0.26130258f, 0.27577711f};
  // pil:         resize_bicubic, then (float32(x * (1/255)) - mean) / std in fp32.
  // torchvision: resize_bicubic_torchvision, then (x - 255*mean) / (255*std) in fp32 (fused rescale).
  hf_image_backend backend = hf_image_backend::torchvision;

  // Reads <model_dir>/preprocessor_config.json: size.{shortest_edge,longest_edge} or min_pixels/max_pixels,
  // patch_size, temporal_patch_size, merge_size, image_mean, image_std. Missing keys keep the defaults above.
  static glm4v_preprocess_config load(const std::string& model_dir);
  // Same, from the JSON text (source names the file in error messages).
  static glm4v_preprocess_config parse(const std::string& json_text, const std::string& source);
  // Applies request/CLI options such as vLLM's mm_processor_kwargs: {"max_pixels": 5000000}, "min_pixels", or
  // {"size": {"shortest_edge", "longest_edge"}}. Other keys are ignored; bad values throw autoglm::error.
  void apply_overrides(const std::string& json_text, const std::string& source);
};

// Returns (h, w), both multiples of patch_size * merge_size. Throws autoglm::error for aspect ratio > 200.
std::pair<int32_t, int32_t> glm4v_smart_resize(int32_t height, int32_t width, const glm4v_preprocess_config& cfg);

// PIL Image.resize((width, height), BICUBIC) on RGB, bit for bit: separable horizontal-then-vertical passes,
// cubic a = -0.5 with the support widened by the scale when downscaling, 22-bit fixed-point coefficients,
// uint8 rounding and clamping after each pass.
image_rgb8 resize_bicubic(const image_rgb8& src, int32_t width, int32_t height);
// torchvision.transforms.v2.functional.resize(uint8 tensor, BICUBIC, antialias=True), bit for bit (ATen's uint8
// kernel: same windows, int16 weights at a per-axis precision). Within 1-2 steps of resize_bicubic.
image_rgb8 resize_bicubic_torchvision(const image_rgb8& src, int32_t width, int32_t height);
// The fixed-point taps resize_bicubic (torchvision false) or resize_bicubic_torchvision applies along one axis of
// in_size samples resized to out_size (autoglm/types.h: resample_axis; none when the sizes are equal). Applied
// horizontally then vertically, each pass rounded to uint8, they give those functions' bytes.
resample_axis bicubic_resample_axis(int32_t in_size, int32_t out_size, bool torchvision);
namespace media_detail {
// resize_bicubic (torchvision false) or resize_bicubic_torchvision with the horizontal pass in plain scalar code
// (no SSE4.1 / AVX2 rows): the same bytes, for tests that compare the SIMD rows against it.
image_rgb8 resize_bicubic_scalar(const image_rgb8& src, int32_t width, int32_t height, bool torchvision);
}  // namespace media_detail

struct glm4v_pixels {
  int32_t grid_t = 1, grid_h = 0, grid_w = 0;
  // [grid_t * grid_h * grid_w, 3 * temporal_patch_size * patch_size * patch_size], rows ordered (hb, wb, hm, wm),
  // each row (C, T, ph, pw) with the frame repeated over T.
  pixel_array values;  // sized without zeroing, then written in full (bulk_allocator.h says why)
  int32_t n_tokens() const;  // grid_t * grid_h * grid_w / merge_size^2 (merge 2 assumed by the model)
  int32_t n_patches() const { return grid_t * grid_h * grid_w; }
};

// The patch grid glm4v_preprocess produces for an image of this size: smart_resize alone, no pixel touched. Lets a
// caller count an image's tokens from its header (probe_image) before decoding it.
glm4v_pixels glm4v_image_grid(int32_t height, int32_t width, const glm4v_preprocess_config& cfg);

// Normalizes and patchifies an image that already has the target size (multiples of patch_size * merge_size).
glm4v_pixels glm4v_patchify(const image_rgb8& resized, const glm4v_preprocess_config& cfg);
// The patch value of each byte per channel, [c * 256 + b]: the backend's rescale and normalize in fp32, as HF.
std::array<float, 768> glm4v_byte_values(const glm4v_preprocess_config& cfg);
// What glm4v_preprocess does, left to the vision tower's device (ops::image_patches): the image as it is (moved in),
// the resize taps to the smart_resize size and the byte table. grid (glm4v_image_grid) says the patch grid.
raw_image glm4v_raw_image(image_rgb8 img, const glm4v_preprocess_config& cfg);
// The vision tower's input for a decoded image (moved in), keyed by content_hash: its patch rows made here
// (pixel_values: glm4v_preprocess), or with on_device the image left to the vision tower's device (raw:
// glm4v_raw_image, the grid from glm4v_image_grid).
vision_input glm4v_vision_input(image_rgb8 img, const glm4v_preprocess_config& cfg, bool on_device,
                                uint64_t content_hash);
// smart_resize + the backend's resize (skipped when the size already matches) + glm4v_patchify.
glm4v_pixels glm4v_preprocess(const image_rgb8& img, const glm4v_preprocess_config& cfg);

}  // namespace autoglm
