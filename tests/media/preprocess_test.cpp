// tests/media/preprocess_test.cpp: smart_resize table, config loading, normalization and patch layout; the resize
// taps and byte table left to a device (glm4v_raw_image).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "encode_util.h"
#include "media/glm4v_preprocess.h"

namespace autoglm {
namespace {

glm4v_preprocess_config with_max(int64_t max_pixels) {
  glm4v_preprocess_config c;
  c.max_pixels = max_pixels;
  return c;
}

struct resize_case {
  int32_t h, w;
  int64_t max_pixels;
  int32_t want_h, want_w;
};

TEST(smart_resize, table) {
  const int64_t def = 28 * 28 * 15000, glm = 9633792, open_autoglm = 5000000;
  const resize_case cases[] = {
      {2400, 1080, def, 2408, 1092},           // spec §5: portrait phone screenshot
      {2400, 1080, glm, 2408, 1092},
      {2400, 1080, open_autoglm, 2352, 1036},  // max_pixels 5,000,000
      {1080, 2400, open_autoglm, 1036, 2352},
      {336, 336, def, 336, 336},               // 144 tokens
      {30, 20, def, 112, 84},                  // below 28: upscale, then min_pixels (HF fixture)
      {1, 1, def, 84, 84},                     // HF fixture
      {37, 100, def, 56, 140},                 // HF fixture
      {200, 300, def, 196, 308},
      {360, 640, def, 364, 644},
      {77, 123, def, 84, 112},
      {150, 200, def, 140, 196},
      {90, 160, def, 84, 168},
      {42, 28, def, 112, 84},                  // round(1.5) == 2 (half to even), then grown to min_pixels
      {70, 70, def, 84, 84},                   // round(2.5) == 2: 56x56 -> below min -> 84
      {70, 280, def, 56, 280},                 // round(2.5) == 2, not 3
      {98, 280, def, 112, 280},                // round(3.5) == 4
      {1, 200, def, 28, 5600},                 // aspect exactly 200 is allowed
      {8000, 8000, def, 2408, 2408},
  };
  for (const auto& c : cases) {
    auto [h, w] = glm4v_smart_resize(c.h, c.w, with_max(c.max_pixels));
    EXPECT_EQ(h, c.want_h) << c.h << "x" << c.w << " max " << c.max_pixels;
    EXPECT_EQ(w, c.want_w) << c.h << "x" << c.w << " max " << c.max_pixels;
    EXPECT_EQ(h % 28, 0);
    EXPECT_EQ(w % 28, 0);
    EXPECT_LE(2 * int64_t{h} * w, std::max<int64_t>(c.max_pixels, 2 * 28 * 28 * 200));
  }
}

TEST(smart_resize, token_counts) {
  image_rgb8 img;
  img.width = img.height = 336;
  img.rgb.assign(336 * 336 * 3, 128);
  glm4v_preprocess_config cfg;
  auto px = glm4v_preprocess(img, cfg);
  EXPECT_EQ(px.grid_t, 1);
  EXPECT_EQ(px.grid_h, 24);
  EXPECT_EQ(px.grid_w, 24);
  EXPECT_EQ(px.n_tokens(), 144);
  EXPECT_EQ(px.values.size(), size_t{576} * 1176);
  auto [h, w] = glm4v_smart_resize(2400, 1080, cfg);
  EXPECT_EQ((h / 14) * (w / 14) / 4, 3354);
  auto [h5, w5] = glm4v_smart_resize(2400, 1080, with_max(5000000));
  EXPECT_EQ((h5 / 14) * (w5 / 14) / 4, 3108);
}

TEST(smart_resize, aspect_ratio_over_200_is_an_error) {
  glm4v_preprocess_config cfg;
  EXPECT_THROW(glm4v_smart_resize(1, 201, cfg), error);
  EXPECT_THROW(glm4v_smart_resize(6000, 29, cfg), error);
  EXPECT_NO_THROW(glm4v_smart_resize(5800, 29, cfg));
  EXPECT_THROW(glm4v_smart_resize(0, 10, cfg), error);
}

TEST(preprocess_config, load_size_and_overrides) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(::testing::TempDir()) / "autoglm_media_cfg";
  fs::create_directories(dir);
  {
    std::ofstream f(dir / "preprocessor_config.json");
    f << R"({"size": {"shortest_edge": 12544, "longest_edge": 9633792}, "patch_size": 14,
             "temporal_patch_size": 2, "merge_size": 2, "image_mean": [0.5, 0.25, 0.125],
             "image_std": [0.1, 0.2, 0.3], "min_pixels": 1, "max_pixels": 2,
             "image_processor_type": "Glm4vImageProcessor"})";
  }
  auto cfg = glm4v_preprocess_config::load(dir.string());
  EXPECT_EQ(cfg.min_pixels, 12544);  // size wins over the legacy keys
  EXPECT_EQ(cfg.max_pixels, 9633792);
  EXPECT_FLOAT_EQ(cfg.mean[2], 0.125f);
  EXPECT_FLOAT_EQ(cfg.std[1], 0.2f);
  auto legacy = glm4v_preprocess_config::parse(R"({"min_pixels": 3136, "max_pixels": 5000000})", "x.json");
  EXPECT_EQ(legacy.min_pixels, 3136);
  EXPECT_EQ(legacy.max_pixels, 5000000);
  EXPECT_FLOAT_EQ(legacy.mean[0], 0.48145466f);  // defaults kept
  EXPECT_THROW(glm4v_preprocess_config::parse("{", "bad.json"), error);
  EXPECT_THROW(glm4v_preprocess_config::parse(R"({"image_mean": [1, 2]})", "bad.json"), error);
  EXPECT_THROW(glm4v_preprocess_config::parse(R"({"patch_size": "14"})", "bad.json"), error);
  EXPECT_THROW(glm4v_preprocess_config::load((dir / "missing").string()), error);
  fs::remove_all(dir);
}

TEST(preprocess_config, overrides) {
  glm4v_preprocess_config cfg;
  cfg.apply_overrides(R"({"max_pixels": 5000000})", "mm_processor_kwargs");
  EXPECT_EQ(cfg.max_pixels, 5000000);
  EXPECT_EQ(cfg.min_pixels, 12544);
  EXPECT_EQ(glm4v_smart_resize(2400, 1080, cfg), std::make_pair(2352, 1036));
  cfg.apply_overrides(R"({"size": {"shortest_edge": 3136, "longest_edge": 9633792}, "other": 1})", "opts");
  EXPECT_EQ(cfg.min_pixels, 3136);
  EXPECT_EQ(cfg.max_pixels, 9633792);
  EXPECT_THROW(cfg.apply_overrides(R"({"max_pixels": 10})", "opts"), error);  // below min
  EXPECT_THROW(cfg.apply_overrides(R"({"max_pixels": "big"})", "opts"), error);
  EXPECT_THROW(cfg.apply_overrides("[1]", "opts"), error);
  EXPECT_EQ(cfg.max_pixels, 9633792);  // unchanged after failures
}

TEST(preprocess, patch_layout_and_normalization) {
  // 168 x 112 image (already a valid size, above min_pixels): grid 8 x 12, rows ordered (hb, wb, hm, wm),
  // each row (C, T, 14, 14).
  const int W = 168, H = 112;
  auto img = test::random_image(W, H, 21);
  glm4v_preprocess_config cfg;
  cfg.backend = hf_image_backend::pil;
  auto px = glm4v_preprocess(img, cfg);
  ASSERT_EQ(px.grid_h, 8);
  ASSERT_EQ(px.grid_w, 12);
  ASSERT_EQ(px.values.size(), size_t{96} * 1176);
  for (int hb = 0; hb < 4; ++hb)
    for (int wb = 0; wb < 6; ++wb)
      for (int hm = 0; hm < 2; ++hm)
        for (int wm = 0; wm < 2; ++wm) {
          const int row = ((hb * 6 + wb) * 2 + hm) * 2 + wm;
          for (int c = 0; c < 3; ++c)
            for (int t = 0; t < 2; ++t)
              for (int py = 0; py < 14; py += 3)
                for (int pxx = 0; pxx < 14; pxx += 2) {
                  const int y = (hb * 2 + hm) * 14 + py, x = (wb * 2 + wm) * 14 + pxx;
                  const uint8_t v = img.rgb[(static_cast<size_t>(y) * W + x) * 3 + c];
                  const float want = (static_cast<float>(v * (1.0 / 255.0)) - cfg.mean[c]) / cfg.std[c];
                  const float got = px.values[static_cast<size_t>(row) * 1176 + ((c * 2 + t) * 14 + py) * 14 + pxx];
                  ASSERT_EQ(got, want) << "row " << row << " c " << c << " t " << t;
                }
        }
}

TEST(preprocess, fused_normalization_is_within_an_ulp_or_two) {
  auto img = test::random_image(28, 28, 22);
  glm4v_preprocess_config a, b;
  a.backend = hf_image_backend::pil;
  b.backend = hf_image_backend::torchvision;
  auto pa = glm4v_preprocess(img, a), pb = glm4v_preprocess(img, b);
  ASSERT_EQ(pa.values.size(), pb.values.size());
  float max_diff = 0;
  for (size_t i = 0; i < pa.values.size(); ++i) max_diff = std::max(max_diff, std::fabs(pa.values[i] - pb.values[i]));
  EXPECT_LT(max_diff, 2e-6f);
}

TEST(preprocess, non_multiple_input_is_resized) {
  auto img = test::random_image(100, 37, 23);
  auto px = glm4v_preprocess(img, glm4v_preprocess_config{});
  EXPECT_EQ(px.grid_h, 4);
  EXPECT_EQ(px.grid_w, 10);
  EXPECT_EQ(px.n_tokens(), 10);
  EXPECT_THROW(glm4v_patchify(img, glm4v_preprocess_config{}), error);
}

}  // namespace
}  // namespace autoglm

namespace autoglm {
namespace {

// One axis of raw_image's resize applied as autoglm/types.h states it (the rule GPU backends implement), over
// `lines` lines of `n` samples each (stride between samples `step`, between lines `line_step`, in bytes).
std::vector<uint8_t> apply_axis(const resample_axis& a, const std::vector<uint8_t>& in, int64_t lines, int64_t step,
                                int64_t line_step, int64_t out_step, int64_t out_line_step, size_t out_bytes) {
  std::vector<uint8_t> out(out_bytes);
  for (int64_t l = 0; l < lines; ++l)
    for (int32_t i = 0; i < a.out_size; ++i) {
      int32_t acc = int32_t{1} << (a.precision - 1);
      for (int32_t k = 0; k < a.count[size_t(i)]; ++k)
        acc += int32_t(in[size_t(l * line_step + (a.first[size_t(i)] + k) * step)]) * a.weight[size_t(i * a.ksize + k)];
      out[size_t(l * out_line_step + i * out_step)] = uint8_t(std::clamp(acc >> a.precision, 0, 255));
    }
  return out;
}

// raw_image's resize, channel by channel: horizontal pass, then vertical.
image_rgb8 resize_by_taps(const raw_image& r) {
  image_rgb8 img{r.width, r.height, r.rgb};
  if (r.horizontal.out_size != r.horizontal.in_size) {
    const int32_t w = r.horizontal.out_size;
    std::vector<uint8_t> out(size_t(w) * img.height * 3);
    for (int c = 0; c < 3; ++c) {
      std::vector<uint8_t> in_c(img.rgb.begin() + c, img.rgb.end());
      const auto o = apply_axis(r.horizontal, in_c, img.height, 3, int64_t(img.width) * 3, 3, int64_t(w) * 3,
                                out.size() - size_t(c));
      for (size_t j = 0; j + size_t(c) < out.size(); j += 3) out[j + size_t(c)] = o[j];
    }
    img = {w, img.height, std::move(out)};
  }
  if (r.vertical.out_size != r.vertical.in_size) {
    const int32_t h = r.vertical.out_size;
    const int64_t row = int64_t(img.width) * 3;
    img = {img.width, h, apply_axis(r.vertical, img.rgb, row, row, 1, row, 1, size_t(row) * h)};
  }
  return img;
}

TEST(glm4v_raw_image, its_taps_and_byte_table_give_glm4v_preprocess_values) {
  // Downscaled, upscaled (below min_pixels), the target size already (no pass), one axis only, a wide image; both
  // backends. The taps applied by the stated rule give the backend's resize bytes; the byte table gives its values.
  struct image_case {
    int32_t w, h;
    int64_t max_pixels;
  };
  const image_case cases[] = {{1080, 2400, 28 * 28 * 300}, {30, 20, 28 * 28 * 15000}, {168, 112, 28 * 28 * 15000},
                              {168, 100, 28 * 28 * 15000}, {700, 90, 28 * 28 * 200}};
  uint32_t seed = 40;
  for (const image_case& c : cases)
    for (hf_image_backend b : {hf_image_backend::torchvision, hf_image_backend::pil}) {
      glm4v_preprocess_config cfg = with_max(c.max_pixels);
      cfg.backend = b;
      const image_rgb8 img = test::random_image(c.w, c.h, seed++);
      const glm4v_pixels want = glm4v_preprocess(img, cfg);
      const raw_image r = glm4v_raw_image(img, cfg);
      EXPECT_EQ(r.rgb, img.rgb);
      ASSERT_EQ(r.horizontal.out_size, want.grid_w * cfg.patch_size);
      ASSERT_EQ(r.vertical.out_size, want.grid_h * cfg.patch_size);
      const image_rgb8 resized = resize_by_taps(r);
      const auto [h, w] = glm4v_smart_resize(c.h, c.w, cfg);
      const image_rgb8 host = b == hf_image_backend::pil ? resize_bicubic(img, w, h) : resize_bicubic_torchvision(img, w, h);
      EXPECT_EQ(resized.rgb, host.rgb) << c.w << "x" << c.h << (b == hf_image_backend::pil ? " pil" : " torchvision");
      // The patch rows from the resized bytes through the byte table, in glm4v_patchify's layout.
      const int p = cfg.patch_size, tp = cfg.temporal_patch_size, m = cfg.merge_size;
      const size_t row_len = size_t(3) * tp * p * p;
      ASSERT_EQ(want.values.size(), size_t(want.n_patches()) * row_len);
      size_t differ = 0, row = 0;
      for (int hb = 0; hb < want.grid_h / m; ++hb)
        for (int wb = 0; wb < want.grid_w / m; ++wb)
          for (int hm = 0; hm < m; ++hm)
            for (int wm = 0; wm < m; ++wm, ++row)
              for (size_t j = 0; j < row_len; ++j) {
                const int px = int(j % p), py = int(j / p % p), ch = int(j / (size_t(p) * p * tp));
                const int y = (hb * m + hm) * p + py, x = (wb * m + wm) * p + px;
                const float v = r.byte_values[size_t(ch * 256 + resized.rgb[(size_t(y) * resized.width + x) * 3 + ch])];
                differ += v != want.values[row * row_len + j];
              }
      EXPECT_EQ(differ, 0u) << c.w << "x" << c.h;
    }
}

}  // namespace
}  // namespace autoglm
