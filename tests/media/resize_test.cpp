// tests/media/resize_test.cpp: resize_bicubic against an independent double-precision separable reference.
// The reference uses the same window and cubic (a = -0.5, support scaled when downscaling) but float weights and
// round-half-up to uint8 between the passes; the fixed-point implementation may differ from it by at most one
// step, and only rarely. (Bit-exactness against Pillow is checked by preprocess_parity_test.cpp.)
#include <gtest/gtest.h>

#include <cmath>

#include "encode_util.h"
#include "media/glm4v_preprocess.h"

namespace autoglm {
namespace {

double ref_cubic(double x) {
  x = std::fabs(x);
  if (x < 1) return 1.5 * x * x * x - 2.5 * x * x + 1;
  if (x < 2) return -0.5 * x * x * x + 2.5 * x * x - 4 * x + 2;
  return 0;
}

// Weights for one output coordinate, over input indices [lo, hi).
void ref_weights(int in_size, int out_size, int i, int& lo, std::vector<double>& w) {
  const double scale = double(in_size) / out_size, fs = std::max(1.0, scale), support = 2 * fs;
  const double center = (i + 0.5) * scale;
  lo = std::max(0, int(std::floor(center - support + 0.5)));
  const int hi = std::min(in_size, int(std::floor(center + support + 0.5)));
  w.assign(hi - lo, 0);
  double sum = 0;
  for (int k = lo; k < hi; ++k) sum += w[k - lo] = ref_cubic((k + 0.5 - center) / fs);
  for (auto& v : w) v /= sum;
}

uint8_t to_u8(double v) { return static_cast<uint8_t>(std::clamp(std::floor(v + 0.5), 0.0, 255.0)); }

image_rgb8 ref_resize(const image_rgb8& src, int W, int H) {
  image_rgb8 mid = src;
  if (W != src.width) {
    mid.width = W;
    mid.rgb.assign(size_t(W) * src.height * 3, 0);
    for (int x = 0; x < W; ++x) {
      int lo;
      std::vector<double> w;
      ref_weights(src.width, W, x, lo, w);
      for (int y = 0; y < src.height; ++y)
        for (int c = 0; c < 3; ++c) {
          double acc = 0;
          for (size_t k = 0; k < w.size(); ++k) acc += w[k] * src.rgb[(size_t(y) * src.width + lo + k) * 3 + c];
          mid.rgb[(size_t(y) * W + x) * 3 + c] = to_u8(acc);
        }
    }
  }
  if (H == src.height) return mid;
  image_rgb8 out;
  out.width = W, out.height = H;
  out.rgb.assign(size_t(W) * H * 3, 0);
  for (int y = 0; y < H; ++y) {
    int lo;
    std::vector<double> w;
    ref_weights(src.height, H, y, lo, w);
    for (int x = 0; x < W; ++x)
      for (int c = 0; c < 3; ++c) {
        double acc = 0;
        for (size_t k = 0; k < w.size(); ++k) acc += w[k] * mid.rgb[((lo + k) * size_t(W) + x) * 3 + c];
        out.rgb[(size_t(y) * W + x) * 3 + c] = to_u8(acc);
      }
  }
  return out;
}

struct size_case {
  int sw, sh, dw, dh;
};

TEST(resize_bicubic, matches_double_reference_up_and_down) {
  const size_case cases[] = {
      {100, 37, 140, 56},  // up both
      {300, 200, 140, 84},  // down both
      {64, 64, 28, 140},   // down x, up y
      {20, 30, 84, 112},   // tiny upscale
      {1, 1, 28, 28},      // single pixel
      {97, 53, 97, 28},    // vertical only
      {97, 53, 41, 53},    // horizontal only
      {257, 129, 256, 130},  // near-identity
      {500, 31, 29, 3},    // strong downscale
  };
  uint32_t seed = 100;
  for (const auto& c : cases) {
    for (bool smooth : {false, true}) {
      auto src = smooth ? test::smooth_image(c.sw, c.sh, seed) : test::random_image(c.sw, c.sh, seed);
      ++seed;
      auto got = resize_bicubic(src, c.dw, c.dh);
      auto want = ref_resize(src, c.dw, c.dh);
      ASSERT_EQ(got.width, c.dw);
      ASSERT_EQ(got.height, c.dh);
      ASSERT_EQ(got.rgb.size(), want.rgb.size());
      int max_diff = 0;
      size_t n_diff = 0;
      for (size_t i = 0; i < got.rgb.size(); ++i) {
        const int d = std::abs(int(got.rgb[i]) - int(want.rgb[i]));
        max_diff = std::max(max_diff, d);
        n_diff += d != 0;
      }
      // One-step differences come from 22-bit weight quantization (and their propagation into the second pass).
      EXPECT_LE(max_diff, 1) << c.sw << "x" << c.sh << " -> " << c.dw << "x" << c.dh;
      EXPECT_LE(double(n_diff) / got.rgb.size(), 0.02) << c.sw << "x" << c.sh << " -> " << c.dw << "x" << c.dh;
      // torchvision's variant has coarser (int16) weights: within 2 steps of the same reference.
      auto tv = resize_bicubic_torchvision(src, c.dw, c.dh);
      ASSERT_EQ(tv.rgb.size(), want.rgb.size());
      int tv_diff = 0;
      for (size_t i = 0; i < tv.rgb.size(); ++i) tv_diff = std::max(tv_diff, std::abs(int(tv.rgb[i]) - int(want.rgb[i])));
      EXPECT_LE(tv_diff, 2) << "torchvision " << c.sw << "x" << c.sh << " -> " << c.dw << "x" << c.dh;
    }
  }
}

// The SIMD horizontal rows (SSE4.1: one pixel per vector; AVX2: two, each over the longer window of the pair with
// zero weights past its own) give the scalar row's bytes: odd widths, windows that end on the row's last pixel
// (scalar fallback there), strong downscales (long windows), both fixed-point flavors.
TEST(resize_bicubic, simd_rows_equal_scalar_rows_bit_for_bit) {
  const size_case cases[] = {{1080, 9, 1092, 9},  {1080, 7, 1092, 11}, {101, 13, 37, 13},  {33, 5, 34, 5},
                             {7, 3, 2, 3},        {2, 2, 9, 4},        {640, 6, 97, 5},    {299, 4, 301, 7},
                             {1, 3, 5, 3},        {250, 8, 3, 8},      {1000, 3, 999, 3},  {64, 2, 127, 2}};
  uint32_t seed = 900;
  for (const auto& c : cases)
    for (bool torch : {false, true}) {
      const auto src = test::random_image(c.sw, c.sh, seed++);
      const auto got = torch ? resize_bicubic_torchvision(src, c.dw, c.dh) : resize_bicubic(src, c.dw, c.dh);
      const auto want = media_detail::resize_bicubic_scalar(src, c.dw, c.dh, torch);
      ASSERT_EQ(got.rgb.size(), want.rgb.size());
      size_t first_diff = got.rgb.size();
      for (size_t i = 0; i < got.rgb.size() && first_diff == got.rgb.size(); ++i)
        if (got.rgb[i] != want.rgb[i]) first_diff = i;
      EXPECT_EQ(first_diff, got.rgb.size()) << (torch ? "torchvision " : "pillow ") << c.sw << "x" << c.sh << " -> "
                                             << c.dw << "x" << c.dh << ": first differing byte";
    }
}

TEST(resize_bicubic, identity_and_constant_images) {
  auto src = test::random_image(40, 30, 7);
  EXPECT_EQ(resize_bicubic(src, 40, 30).rgb, src.rgb);
  image_rgb8 flat;
  flat.width = 33, flat.height = 17;
  flat.rgb.assign(33 * 17 * 3, 201);
  for (auto [w, h] : {std::pair{84, 56}, std::pair{7, 5}, std::pair{33, 60}}) {
    for (const auto& r : {resize_bicubic(flat, w, h), resize_bicubic_torchvision(flat, w, h)})
      for (uint8_t v : r.rgb) ASSERT_EQ(v, 201);  // weights sum to one (up to rounding that cannot reach a step)
  }
}

}  // namespace
}  // namespace autoglm
