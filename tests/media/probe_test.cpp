// tests/media/probe_test.cpp: probe_image (sizes from PNG/JPEG/WebP headers, nothing decoded), headers that are
// truncated or lie, the base64 byte limit checked before decoding, glm4v_image_grid against real preprocessing,
// and preprocessor_config.json validation.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include <zlib.h>

#include "core/error.h"
#include "encode_util.h"
#include "media/glm4v_preprocess.h"
#include "media/image.h"

namespace autoglm {
namespace {

using test::encode_jpeg;
using test::encode_png;
using test::encode_webp;

void be32(std::vector<uint8_t>& v, uint32_t x) {
  for (int s = 24; s >= 0; s -= 8) v.push_back(static_cast<uint8_t>(x >> s));
}

void png_chunk(std::vector<uint8_t>& out, const char* type, const std::vector<uint8_t>& data) {
  be32(out, static_cast<uint32_t>(data.size()));
  std::vector<uint8_t> body(type, type + 4);
  body.insert(body.end(), data.begin(), data.end());
  out.insert(out.end(), body.begin(), body.end());
  be32(out, static_cast<uint32_t>(crc32(0, body.data(), static_cast<uInt>(body.size()))));
}

// A PNG whose IHDR declares w x h RGB but whose IDAT holds `idat` (compressed bytes).
std::vector<uint8_t> png_declaring(uint32_t w, uint32_t h, const std::vector<uint8_t>& idat) {
  std::vector<uint8_t> out = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  std::vector<uint8_t> ihdr;
  be32(ihdr, w);
  be32(ihdr, h);
  ihdr.insert(ihdr.end(), {8, 2, 0, 0, 0});
  png_chunk(out, "IHDR", ihdr);
  png_chunk(out, "IDAT", idat);
  png_chunk(out, "IEND", {});
  return out;
}

std::vector<uint8_t> deflate(const std::vector<uint8_t>& raw) {
  uLongf n = compressBound(static_cast<uLong>(raw.size()));
  std::vector<uint8_t> out(n);
  EXPECT_EQ(compress2(out.data(), &n, raw.data(), static_cast<uLong>(raw.size()), 9), Z_OK);
  out.resize(n);
  return out;
}

void le24(std::vector<uint8_t>& v, uint32_t x) {
  for (int s = 0; s < 24; s += 8) v.push_back(static_cast<uint8_t>(x >> s));
}
void le32(std::vector<uint8_t>& v, uint32_t x) {
  for (int s = 0; s < 32; s += 8) v.push_back(static_cast<uint8_t>(x >> s));
}

// An extended WebP (VP8X) whose canvas is cw x ch around the frame chunk of `simple` (a plain VP8/VP8L file).
std::vector<uint8_t> webp_vp8x(uint32_t cw, uint32_t ch, const std::vector<uint8_t>& simple) {
  std::vector<uint8_t> chunks = {'V', 'P', '8', 'X'};
  le32(chunks, 10);
  chunks.insert(chunks.end(), {0, 0, 0, 0});
  le24(chunks, cw - 1);
  le24(chunks, ch - 1);
  chunks.insert(chunks.end(), simple.begin() + 12, simple.end());  // the frame chunk after "RIFF....WEBP"
  std::vector<uint8_t> out = {'R', 'I', 'F', 'F'};
  le32(out, static_cast<uint32_t>(chunks.size() + 4));
  out.insert(out.end(), {'W', 'E', 'B', 'P'});
  out.insert(out.end(), chunks.begin(), chunks.end());
  return out;
}

void expect_error(const std::function<void()>& fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "expected an error mentioning '" << needle << "'";
  } catch (const error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(probe, every_format_matches_the_decoded_size) {
  auto img = test::smooth_image(61, 37, 1);
  std::vector<std::pair<std::string, std::vector<uint8_t>>> files = {
      {"png rgb", encode_png(61, 37, PNG_COLOR_TYPE_RGB, 8, img.rgb)},
      {"png interlaced", encode_png(61, 37, PNG_COLOR_TYPE_RGB, 8, img.rgb, {}, {}, true)},
      {"png grey", encode_png(61, 37, PNG_COLOR_TYPE_GRAY, 8, std::vector<uint8_t>(61 * 37, 7))},
      {"jpeg rgb", encode_jpeg(61, 37, 3, img.rgb)},
      {"jpeg grey", encode_jpeg(61, 37, 1, std::vector<uint8_t>(61 * 37, 99))},
      {"webp lossy (VP8)", encode_webp(61, 37, img.rgb, false, false)},
      {"webp lossless (VP8L)", encode_webp(61, 37, img.rgb, false, true)},
  };
  std::vector<uint8_t> rgba(61 * 37 * 4, 128);
  files.push_back({"webp lossy + alpha (VP8X)", encode_webp(61, 37, rgba, true, false)});
  files.push_back({"webp VP8X canvas", webp_vp8x(61, 37, encode_webp(61, 37, img.rgb, false, true))});
  for (auto& [name, bytes] : files) {
    SCOPED_TRACE(name);
    const image_info info = probe_image(bytes.data(), bytes.size());
    EXPECT_EQ(info.width, 61);
    EXPECT_EQ(info.height, 37);
    const image_rgb8 d = decode_image(bytes.data(), bytes.size(), info, image_limits{});
    EXPECT_EQ(d.width, 61);
    EXPECT_EQ(d.height, 37);
  }
  EXPECT_EQ(probe_image(files[0].second.data(), files[0].second.size()).format, image_format::png);
  EXPECT_EQ(probe_image(files[3].second.data(), files[3].second.size()).format, image_format::jpeg);
  EXPECT_EQ(probe_image(files[5].second.data(), files[5].second.size()).format, image_format::webp);
}

TEST(probe, jpeg_size_found_after_large_app_segments) {
  auto img = test::smooth_image(20, 10, 2);
  auto jpg = encode_jpeg(20, 10, 3, img.rgb);
  // Three 60 KB APP1 segments between SOI and the rest: SOF comes ~180 KB into the file.
  std::vector<uint8_t> out = {0xff, 0xd8};
  for (int k = 0; k < 3; ++k) {
    out.insert(out.end(), {0xff, 0xe1});
    const uint16_t len = 60000;
    out.push_back(static_cast<uint8_t>(len >> 8));
    out.push_back(static_cast<uint8_t>(len & 0xff));
    out.insert(out.end(), len - 2, 0x41);
  }
  out.insert(out.end(), jpg.begin() + 2, jpg.end());
  const image_info info = probe_image(out.data(), out.size());
  EXPECT_EQ(info.width, 20);
  EXPECT_EQ(info.height, 10);
}

// The image bomb of issue 8: all-zero 8000x8000 RGB, 192 MB of pixels in ~190 KB. The probe reads the header and
// never inflates IDAT, so it answers without a pixel buffer.
TEST(probe, bomb_is_sized_from_the_header) {
  const uint32_t w = 8000, h = 8000;
  std::vector<uint8_t> raw((size_t(w) * 3 + 1) * h, 0);  // filter byte 0 + zero samples per row
  auto png = png_declaring(w, h, deflate(raw));
  raw = {};
  EXPECT_LT(png.size(), 400u << 10);
  const image_info info = probe_image(png.data(), png.size());
  EXPECT_EQ(info.width, 8000);
  EXPECT_EQ(info.height, 8000);
  image_limits small;
  small.max_pixels = 10'000'000;
  expect_error([&] { probe_image(png.data(), png.size(), small); }, "8000x8000");
  small = {};
  small.max_side = 4096;
  expect_error([&] { probe_image(png.data(), png.size(), small); }, "max side 4096");
  small = {};
  small.max_file_bytes = 1000;
  expect_error([&] { probe_image(png.data(), png.size(), small); }, "over the limit of 1000");
}

TEST(probe, truncated_headers_are_errors) {
  auto img = test::smooth_image(30, 20, 3);
  auto png = encode_png(30, 20, PNG_COLOR_TYPE_RGB, 8, img.rgb);
  auto jpg = encode_jpeg(30, 20, 3, img.rgb);
  auto webp = encode_webp(30, 20, img.rgb, false, true);
  auto vp8x = webp_vp8x(30, 20, webp);
  for (size_t cut : {9, 20, 30}) {
    SCOPED_TRACE(cut);
    EXPECT_THROW(probe_image(png.data(), cut), error);
  }
  // JPEG: cut inside the markers before SOF (the quantization tables come first).
  for (size_t cut : {4, 30, 100}) {
    SCOPED_TRACE(cut);
    EXPECT_THROW(probe_image(jpg.data(), cut), error);
  }
  for (size_t cut : {12, 16, 22}) {
    SCOPED_TRACE(cut);
    EXPECT_THROW(probe_image(webp.data(), cut), error);
    EXPECT_THROW(probe_image(vp8x.data(), cut), error);
  }
  // A corrupted IHDR CRC is a libpng error, not a size.
  auto bad = png;
  bad[29] ^= 0xff;
  EXPECT_THROW(probe_image(bad.data(), bad.size()), error);
  EXPECT_THROW(probe_image(nullptr, 0), error);
  std::vector<uint8_t> gif = {'G', 'I', 'F', '8', '9', 'a', 1, 0, 1, 0, 0, 0, 0};
  expect_error([&] { probe_image(gif.data(), gif.size()); }, "GIF");
}

// A header that lies: the size it declares is not what the data holds. Probing believes the header (that is
// what is charged against the token budget); decoding then fails with a clear error instead of returning an
// image of another size.
TEST(probe, lying_headers_fail_at_decode) {
  // PNG: IHDR says 4000x4000 (48 MB of pixels) but IDAT holds one row.
  std::vector<uint8_t> row(4000 * 3 + 1, 0);
  auto png = png_declaring(4000, 4000, deflate(row));
  const image_info pi = probe_image(png.data(), png.size());
  EXPECT_EQ(pi.width, 4000);
  expect_error([&] { decode_image(png.data(), png.size(), pi, image_limits{}); }, "png:");
  // JPEG: SOF says 3000x2000 but the scan data covers 64x64. libjpeg (like PIL) fills the missing blocks, so the
  // image has the declared size: what was charged before decoding is what the prompt gets.
  auto img = test::smooth_image(64, 64, 4);
  auto jpg = encode_jpeg(64, 64, 3, img.rgb);
  size_t sof = 2;
  while (!(jpg[sof] == 0xff && jpg[sof + 1] == 0xc0)) ++sof;
  jpg[sof + 5] = 2000 >> 8, jpg[sof + 6] = 2000 & 0xff, jpg[sof + 7] = 3000 >> 8, jpg[sof + 8] = 3000 & 0xff;
  const image_info ji = probe_image(jpg.data(), jpg.size());
  EXPECT_EQ(ji.width, 3000);
  EXPECT_EQ(ji.height, 2000);
  const image_rgb8 jd = decode_image(jpg.data(), jpg.size(), ji, image_limits{});
  EXPECT_EQ(jd.width, 3000);
  EXPECT_EQ(jd.height, 2000);
  // WebP: a VP8X canvas of 3000x3000 around a 16x16 lossless frame; libwebp checks the two against each other
  // while reading the header, so the probe already refuses it.
  auto frame = encode_webp(16, 16, test::random_bytes(16 * 16 * 3, 4), false, true);
  auto webp = webp_vp8x(3000, 3000, frame);
  expect_error([&] { probe_image(webp.data(), webp.size()); }, "VP8X canvas size");
  // A probe of another file than the one decoded (the size check itself).
  auto small = encode_png(8, 6, PNG_COLOR_TYPE_RGB, 8, test::random_bytes(8 * 6 * 3, 5));
  expect_error([&] { decode_image(small.data(), small.size(), image_info{image_format::png, 9, 6}, image_limits{}); },
               "header declares 9x6 but the image data decodes to 8x6");
}

TEST(probe, base64_limit_is_checked_before_decoding) {
  auto png = encode_png(8, 6, PNG_COLOR_TYPE_RGB, 8, test::random_bytes(8 * 6 * 3, 6));
  const std::string b64 = base64_encode(png.data(), png.size());
  EXPECT_EQ(base64_decoded_size(b64), png.size());
  EXPECT_EQ(base64_decoded_size("QUJD\nRA=="), 4u);
  EXPECT_EQ(base64_decoded_size("QUJDRA"), 4u);
  EXPECT_EQ(decode_image_reference("data:image/png;base64," + b64, png.size()), png);
  expect_error([&] { decode_image_reference("data:image/png;base64," + b64, png.size() - 1); },
               "over the limit of " + std::to_string(png.size() - 1));
  expect_error([&] { decode_image_reference(b64, 10); }, "over the limit of 10");
  // Whitespace does not count: a payload with line breaks exactly at the limit is accepted.
  std::string wrapped;
  for (size_t i = 0; i < b64.size(); i += 8) wrapped += b64.substr(i, 8) + "\r\n";
  EXPECT_EQ(decode_image_reference(wrapped, png.size()), png);
  // Invalid characters are still reported by the decoder (the count skips them).
  EXPECT_THROW(decode_image_reference("data:image/png;base64,QU*D", 100), error);
}

TEST(probe, image_grid_matches_preprocessing) {
  glm4v_preprocess_config cfg;
  cfg.min_pixels = 12544;
  cfg.max_pixels = 300000;  // small, so large images are downscaled
  for (auto [w, h] : std::vector<std::pair<int, int>>{{56, 56}, {61, 37}, {10, 300}, {500, 400}, {1000, 30}}) {
    SCOPED_TRACE(std::to_string(w) + "x" + std::to_string(h));
    const glm4v_pixels grid = glm4v_image_grid(h, w, cfg);
    const glm4v_pixels px = glm4v_preprocess(test::random_image(w, h, 7), cfg);
    EXPECT_EQ(grid.grid_t, px.grid_t);
    EXPECT_EQ(grid.grid_h, px.grid_h);
    EXPECT_EQ(grid.grid_w, px.grid_w);
    EXPECT_EQ(grid.n_tokens(), px.n_tokens());
    EXPECT_TRUE(grid.values.empty());
  }
  // The 8000x8000 bomb under the released model's config: capped by max_pixels, not by its own size.
  glm4v_preprocess_config glm;
  glm.max_pixels = 9633792;
  const glm4v_pixels bomb = glm4v_image_grid(8000, 8000, glm);
  EXPECT_EQ(bomb.grid_h, 156);
  EXPECT_EQ(bomb.grid_w, 156);
  EXPECT_EQ(bomb.n_tokens(), 6084);
}

void expect_config_error(const std::string& json, const std::string& key) {
  try {
    glm4v_preprocess_config::parse(json, "preprocessor_config.json");
    ADD_FAILURE() << "no error for " << json;
  } catch (const error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("preprocessor_config.json"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'" + key + "'"), std::string::npos) << msg;
  }
}

TEST(preprocess_config, fields_that_size_memory_or_divide_are_validated) {
  expect_config_error(R"({"patch_size": 0})", "patch_size");
  expect_config_error(R"({"patch_size": -14})", "patch_size");
  expect_config_error(R"({"patch_size": 100000})", "patch_size");
  expect_config_error(R"({"merge_size": 0})", "merge_size");
  expect_config_error(R"({"merge_size": 4096})", "merge_size");
  expect_config_error(R"({"temporal_patch_size": 0})", "temporal_patch_size");
  expect_config_error(R"({"temporal_patch_size": 1000})", "temporal_patch_size");
  expect_config_error(R"({"min_pixels": 0})", "min_pixels");
  expect_config_error(R"({"max_pixels": 1099511627776})", "max_pixels");
  expect_config_error(R"({"size": {"shortest_edge": -1, "longest_edge": 100}})", "size.shortest_edge");
  expect_config_error(R"({"size": {"shortest_edge": 5000, "longest_edge": 100}})", "size.longest_edge");
  expect_config_error(R"({"size": {"longest_edge": 18446744073709551615}})", "size.longest_edge");
  expect_config_error(R"({"image_std": [0.2, 0, 0.2]})", "image_std");
  expect_config_error(R"({"image_std": [0.2, 0.2]})", "image_std");
  expect_config_error(R"({"image_mean": [0.5, 0.5, 0.5, 0.5]})", "image_mean");
  expect_config_error(R"({"image_mean": "grey"})", "image_mean");
  // Nested past the JSON depth limit: an error, not a stack overflow.
  std::string deep = R"({"x": )" + std::string(100000, '[') + std::string(100000, ']') + "}";
  EXPECT_THROW(glm4v_preprocess_config::parse(deep, "preprocessor_config.json"), error);
  // The released model's values still load.
  auto cfg = glm4v_preprocess_config::parse(
      R"({"patch_size": 14, "temporal_patch_size": 2, "merge_size": 2,
          "size": {"shortest_edge": 12544, "longest_edge": 9633792}})",
      "preprocessor_config.json");
  EXPECT_EQ(cfg.max_pixels, 9633792);
}

TEST(preprocess_config, load_reads_only_regular_files) {
  const std::string dir = ::testing::TempDir() + "/autoglm_probe_fifo_" + std::to_string(::getpid());
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  const std::string path = dir + "/preprocessor_config.json";
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  // A FIFO with no writer would block a plain ifstream forever.
  expect_error([&] { glm4v_preprocess_config::load(dir); }, "not a regular file");
  std::remove(path.c_str());
  expect_error([&] { glm4v_preprocess_config::load(dir); }, path);
  {
    std::ofstream f(path);
    f << R"({"merge_size": 0})";
  }
  expect_error([&] { glm4v_preprocess_config::load(dir); }, "merge_size");
  std::remove(path.c_str());
  ::rmdir(dir.c_str());
}

}  // namespace
}  // namespace autoglm
