// media/glm4v_preprocess.cpp: Glm4vImageProcessor's smart_resize, normalization and patch layout, plus loading
// its settings from preprocessor_config.json.
#include "media/glm4v_preprocess.h"

#include <climits>
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_io.h"
#include "formats/json_limits.h"
#include "media/parallel_rows.h"

namespace autoglm {

namespace {

// preprocessor_config.json is a few hundred bytes; the cap only keeps a wrong path from reading a huge file.
constexpr uint64_t k_max_config_bytes = 1u << 20;
// Bounds on the fields that size buffers or divide. The released model uses 14 / 2 / 2 and at most
// 28*28*15000 pixels; these leave wide room while keeping every size product within int32 (grid sizes, token
// counts) and a patch row (3 * t * p * p floats) small.
constexpr int64_t k_max_patch_size = 256, k_max_temporal_patch_size = 16, k_max_merge_size = 16;
constexpr int64_t k_max_pixels_limit = int64_t(1) << 30;

int64_t get_int(const nlohmann::json& j, const char* key, int64_t fallback, const std::string& source,
                const std::string& prefix = "") {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  const auto& v = j[key];
  if (v.is_number_integer()) {
    if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX))
      throw error(source + ": '" + prefix + key + "' is out of range");
    return v.get<int64_t>();
  }
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (d == std::floor(d) && std::fabs(d) < 9.0e15) return static_cast<int64_t>(d);
  }
  throw error(source + ": '" + prefix + key + "' must be an integer");
}

void check_range(int64_t v, int64_t lo, int64_t hi, const std::string& key, const std::string& source) {
  if (v < lo || v > hi)
    throw error(source + ": '" + key + "' must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "] (got " +
                std::to_string(v) + ")");
}

void get_triplet(const nlohmann::json& j, const char* key, float out[3], const std::string& source) {
  if (!j.contains(key) || j[key].is_null()) return;
  const auto& v = j[key];
  if (v.is_number()) {
    out[0] = out[1] = out[2] = static_cast<float>(v.get<double>());
  } else {
    if (!v.is_array() || v.size() != 3) throw error(source + ": '" + key + "' must be a list of 3 numbers");
    for (int c = 0; c < 3; ++c) {
      if (!v[c].is_number()) throw error(source + ": '" + key + "' must be a list of 3 numbers");
      out[c] = static_cast<float>(v[c].get<double>());  // Python floats are doubles; the processors use fp32
    }
  }
  for (int c = 0; c < 3; ++c)
    if (!std::isfinite(out[c])) throw error(source + ": '" + key + "' must hold finite fp32 numbers");
}

nlohmann::json parse_object(const std::string& text, const std::string& source) {
  nlohmann::json j;
  try {
    j = parse_json(text);  // bounded depth and size: the text can come from a request (mm_processor_kwargs)
  } catch (const json_parse_error& e) {
    throw error(source + ": invalid JSON: " + e.what());
  }
  if (!j.is_object()) throw error(source + ": expected a JSON object");
  return j;
}

// min/max pixels from either spelling; `lo_key`/`hi_key` name the key that set each value (for errors).
void read_pixel_bounds(const nlohmann::json& j, const std::string& source, int64_t& lo, int64_t& hi,
                       std::string& lo_key, std::string& hi_key) {
  // Older configs carry min_pixels/max_pixels; transformers reads size.{shortest,longest}_edge, which wins.
  if (j.contains("min_pixels") && !j["min_pixels"].is_null())
    lo = get_int(j, "min_pixels", lo, source), lo_key = "min_pixels";
  if (j.contains("max_pixels") && !j["max_pixels"].is_null())
    hi = get_int(j, "max_pixels", hi, source), hi_key = "max_pixels";
  if (j.contains("size") && j["size"].is_object()) {
    const nlohmann::json& sz = j["size"];
    if (sz.contains("shortest_edge") && !sz["shortest_edge"].is_null())
      lo = get_int(sz, "shortest_edge", lo, source, "size."), lo_key = "size.shortest_edge";
    if (sz.contains("longest_edge") && !sz["longest_edge"].is_null())
      hi = get_int(sz, "longest_edge", hi, source, "size."), hi_key = "size.longest_edge";
  }
  check_range(lo, 1, k_max_pixels_limit, lo_key, source);
  check_range(hi, 1, k_max_pixels_limit, hi_key, source);
  if (hi < lo)
    throw error(source + ": '" + hi_key + "' (" + std::to_string(hi) + ") must be at least '" + lo_key + "' (" +
                std::to_string(lo) + ")");
}

}  // namespace

glm4v_preprocess_config glm4v_preprocess_config::parse(const std::string& text, const std::string& source) {
  const nlohmann::json j = parse_object(text, source);
  glm4v_preprocess_config cfg;
  const int64_t patch = get_int(j, "patch_size", cfg.patch_size, source);
  const int64_t temporal = get_int(j, "temporal_patch_size", cfg.temporal_patch_size, source);
  const int64_t merge = get_int(j, "merge_size", cfg.merge_size, source);
  check_range(patch, 1, k_max_patch_size, "patch_size", source);
  check_range(temporal, 1, k_max_temporal_patch_size, "temporal_patch_size", source);
  check_range(merge, 1, k_max_merge_size, "merge_size", source);
  cfg.patch_size = static_cast<int32_t>(patch);
  cfg.temporal_patch_size = static_cast<int32_t>(temporal);
  cfg.merge_size = static_cast<int32_t>(merge);
  std::string lo_key = "min_pixels", hi_key = "max_pixels";
  read_pixel_bounds(j, source, cfg.min_pixels, cfg.max_pixels, lo_key, hi_key);
  get_triplet(j, "image_mean", cfg.mean, source);
  get_triplet(j, "image_std", cfg.std, source);
  for (float s : cfg.std)
    if (!(s > 0.0f)) throw error(source + ": 'image_std' must be positive (it divides)");
  return cfg;
}

void glm4v_preprocess_config::apply_overrides(const std::string& text, const std::string& source) {
  const nlohmann::json j = parse_object(text, source);
  int64_t lo = min_pixels, hi = max_pixels;
  std::string lo_key = "min_pixels", hi_key = "max_pixels";
  read_pixel_bounds(j, source, lo, hi, lo_key, hi_key);
  min_pixels = lo;
  max_pixels = hi;
}

glm4v_preprocess_config glm4v_preprocess_config::load(const std::string& model_dir) {
  const std::string path = model_dir + "/preprocessor_config.json";
  return parse(read_regular_file(path, k_max_config_bytes), path);
}

std::pair<int32_t, int32_t> glm4v_smart_resize(int32_t height, int32_t width, const glm4v_preprocess_config& cfg) {
  if (height <= 0 || width <= 0)
    throw error("image size " + std::to_string(width) + "x" + std::to_string(height) + " is invalid");
  // Mirrors transformers' smart_resize(num_frames=temporal_patch_size, ...) in doubles, with Python's semantics:
  // int() truncates, round() is half-to-even (nearbyint in the default rounding mode).
  const int64_t factor = static_cast<int64_t>(cfg.patch_size) * cfg.merge_size;
  const int64_t t = cfg.temporal_patch_size;
  int64_t h = height, w = width;
  if (h < factor || w < factor) {
    const double s = std::max(static_cast<double>(factor) / h, static_cast<double>(factor) / w);
    h = static_cast<int64_t>(static_cast<double>(h) * s);
    w = static_cast<int64_t>(static_cast<double>(w) * s);
  }
  if (h <= 0 || w <= 0 || static_cast<double>(std::max(h, w)) / static_cast<double>(std::min(h, w)) > 200.0)
    throw error("image aspect ratio of " + std::to_string(width) + "x" + std::to_string(height) +
                " is over 200 (Glm4vImageProcessor limit)");
  int64_t h_bar = static_cast<int64_t>(std::nearbyint(static_cast<double>(h) / factor)) * factor;
  int64_t w_bar = static_cast<int64_t>(std::nearbyint(static_cast<double>(w) / factor)) * factor;
  const int64_t t_bar = static_cast<int64_t>(std::nearbyint(static_cast<double>(t) / t)) * t;
  if (t_bar * h_bar * w_bar > cfg.max_pixels) {
    const double beta = std::sqrt(static_cast<double>(t * h * w) / static_cast<double>(cfg.max_pixels));
    h_bar =
        std::max<int64_t>(factor, static_cast<int64_t>(std::floor(static_cast<double>(h) / beta / factor)) * factor);
    w_bar =
        std::max<int64_t>(factor, static_cast<int64_t>(std::floor(static_cast<double>(w) / beta / factor)) * factor);
  } else if (t_bar * h_bar * w_bar < cfg.min_pixels) {
    const double beta = std::sqrt(static_cast<double>(cfg.min_pixels) / static_cast<double>(t * h * w));
    h_bar = static_cast<int64_t>(std::ceil(static_cast<double>(h) * beta / factor)) * factor;
    w_bar = static_cast<int64_t>(std::ceil(static_cast<double>(w) * beta / factor)) * factor;
  }
  if (h_bar > 1'000'000 || w_bar > 1'000'000) throw error("smart_resize: target size out of range");
  return {static_cast<int32_t>(h_bar), static_cast<int32_t>(w_bar)};
}

glm4v_pixels glm4v_image_grid(int32_t height, int32_t width, const glm4v_preprocess_config& cfg) {
  const auto [h, w] = glm4v_smart_resize(height, width, cfg);
  glm4v_pixels out;  // values stay empty
  out.grid_t = 1;    // one image = one temporal patch (the frame repeated), as glm4v_patchify lays it out
  out.grid_h = h / cfg.patch_size;
  out.grid_w = w / cfg.patch_size;
  return out;
}

int32_t glm4v_pixels::n_tokens() const { return grid_t * grid_h * grid_w / 4; }

std::array<float, 768> glm4v_byte_values(const glm4v_preprocess_config& cfg) {
  // The HF formula per backend, in fp32 like numpy/torch, as one table per channel: value = lut[c * 256 + byte].
  std::array<float, 768> lut;
  for (int c = 0; c < 3; ++c) {
    if (cfg.backend == hf_image_backend::torchvision) {
      // torchvision backend: mean/std tensors (fp32) times 1/rescale_factor, then (x - m) / s in fp32.
      const float scale = static_cast<float>(1.0 / (1.0 / 255.0));
      const float m255 = cfg.mean[c] * scale, s255 = cfg.std[c] * scale;
      for (int v = 0; v < 256; ++v) lut[size_t(c * 256 + v)] = (static_cast<float>(v) - m255) / s255;
    } else {
      // PIL backend: rescale in float64 then cast to fp32, normalize in fp32.
      for (int v = 0; v < 256; ++v) {
        const float x = static_cast<float>(static_cast<double>(v) * (1.0 / 255.0));
        lut[size_t(c * 256 + v)] = (x - cfg.mean[c]) / cfg.std[c];
      }
    }
  }
  return lut;
}

raw_image glm4v_raw_image(image_rgb8 img, const glm4v_preprocess_config& cfg) {
  AG_CHECK(img.width > 0 && img.height > 0 && img.rgb.size() == size_t(img.width) * size_t(img.height) * 3,
           "malformed image");
  const auto [h, w] = glm4v_smart_resize(img.height, img.width, cfg);
  const bool torchvision = cfg.backend == hf_image_backend::torchvision;
  raw_image r;
  r.width = img.width;
  r.height = img.height;
  r.horizontal = bicubic_resample_axis(img.width, w, torchvision);
  r.vertical = bicubic_resample_axis(img.height, h, torchvision);
  r.byte_values = glm4v_byte_values(cfg);
  r.rgb = std::move(img.rgb);
  return r;
}

vision_input glm4v_vision_input(image_rgb8 img, const glm4v_preprocess_config& cfg, bool on_device,
                                uint64_t content_hash) {
  glm4v_pixels px = on_device ? glm4v_image_grid(img.height, img.width, cfg) : glm4v_preprocess(img, cfg);
  vision_input v;
  v.grid_t = px.grid_t;
  v.grid_h = px.grid_h;
  v.grid_w = px.grid_w;
  v.pixel_values = std::move(px.values);
  v.content_hash = content_hash;
  if (on_device) v.raw = std::make_shared<const raw_image>(glm4v_raw_image(std::move(img), cfg));
  return v;
}

glm4v_pixels glm4v_patchify(const image_rgb8& img, const glm4v_preprocess_config& cfg) {
  const int p = cfg.patch_size, m = cfg.merge_size, tp = cfg.temporal_patch_size;
  if (img.width % (p * m) != 0 || img.height % (p * m) != 0)
    throw error("glm4v_patchify: image " + std::to_string(img.width) + "x" + std::to_string(img.height) +
                " is not a multiple of " + std::to_string(p * m));
  AG_CHECK(img.rgb.size() == static_cast<size_t>(img.width) * img.height * 3, "malformed image");
  glm4v_pixels out;
  out.grid_t = 1;
  out.grid_h = img.height / p;
  out.grid_w = img.width / p;

  const std::array<float, 768> values = glm4v_byte_values(cfg);
  const float(*lut)[256] = reinterpret_cast<const float(*)[256]>(values.data());

  // Rows (hb, wb, hm, wm); row layout (C, T, ph, pw). values: [grid_h * grid_w, 3 * tp * p * p], normalized while
  // gathered (a screenshot is 16M values: one pass over them, no planar copy).
  const size_t row_len = static_cast<size_t>(3) * tp * p * p;
  out.values.resize(static_cast<size_t>(out.grid_h) * out.grid_w * row_len);
  // One band of merge blocks (hb) writes grid_w * m rows of the output: bands are independent.
  const size_t band_rows = static_cast<size_t>(out.grid_w) * m;
  const size_t img_row = static_cast<size_t>(img.width) * 3;
  media_detail::parallel_rows(out.grid_h / m, int64_t(band_rows * row_len * 4), [&](int64_t hb0, int64_t hb1) {
    float* row = out.values.data() + size_t(hb0) * band_rows * row_len;
    for (int hb = int(hb0); hb < int(hb1); ++hb)
      for (int wb = 0; wb < out.grid_w / m; ++wb)
        for (int hm = 0; hm < m; ++hm)
          for (int wm = 0; wm < m; ++wm, row += row_len) {
            const int y0 = (hb * m + hm) * p, x0 = (wb * m + wm) * p;
            for (int c = 0; c < 3; ++c) {
              // The first temporal slice, then its copies (a still image fills every temporal slot).
              float* dst = row + static_cast<size_t>(c) * tp * p * p;
              for (int py = 0; py < p; ++py) {
                const uint8_t* src = img.rgb.data() + static_cast<size_t>(y0 + py) * img_row + size_t(x0) * 3 + c;
                float* d = dst + py * p;
                for (int px = 0; px < p; ++px) d[px] = lut[c][src[px * 3]];
              }
              for (int t = 1; t < tp; ++t) std::copy(dst, dst + p * p, dst + static_cast<size_t>(t) * p * p);
            }
          }
  });
  return out;
}

glm4v_pixels glm4v_preprocess(const image_rgb8& img, const glm4v_preprocess_config& cfg) {
  const auto [h, w] = glm4v_smart_resize(img.height, img.width, cfg);
  if (h == img.height && w == img.width) return glm4v_patchify(img, cfg);
  return glm4v_patchify(
      cfg.backend == hf_image_backend::pil ? resize_bicubic(img, w, h) : resize_bicubic_torchvision(img, w, h), cfg);
}

}  // namespace autoglm
