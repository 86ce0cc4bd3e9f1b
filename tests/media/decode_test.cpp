// tests/media/decode_test.cpp: PNG/JPEG/WebP decoding, colour conversion rules, limits and malformed input.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include <zlib.h>

#include "core/error.h"
#include "encode_util.h"
#include "media/image.h"

namespace autoglm {
namespace {

using test::encode_jpeg;
using test::encode_png;
using test::encode_webp;

TEST(decode, png_rgb8_roundtrip) {
  auto img = test::random_image(37, 23, 1);
  auto bytes = encode_png(37, 23, PNG_COLOR_TYPE_RGB, 8, img.rgb);
  EXPECT_EQ(sniff_image_format(bytes.data(), bytes.size()), image_format::png);
  auto d = decode_image(bytes.data(), bytes.size());
  EXPECT_EQ(d.width, 37);
  EXPECT_EQ(d.height, 23);
  EXPECT_EQ(d.rgb, img.rgb);
}

TEST(decode, png_interlaced) {
  auto img = test::random_image(33, 19, 2);
  auto bytes = encode_png(33, 19, PNG_COLOR_TYPE_RGB, 8, img.rgb, {}, {}, /*interlace=*/true);
  auto d = decode_image(bytes.data(), bytes.size());
  EXPECT_EQ(d.rgb, img.rgb);
}

TEST(decode, png_gray_and_low_bit_depth) {
  std::vector<uint8_t> g = test::random_bytes(16 * 9, 3);
  auto d = decode_image(encode_png(16, 9, PNG_COLOR_TYPE_GRAY, 8, g).data(), encode_png(16, 9, PNG_COLOR_TYPE_GRAY, 8, g).size());
  ASSERT_EQ(d.rgb.size(), g.size() * 3);
  for (size_t i = 0; i < g.size(); ++i) {
    EXPECT_EQ(d.rgb[i * 3], g[i]);
    EXPECT_EQ(d.rgb[i * 3 + 2], g[i]);
  }
  // 1-bit grey: 8 pixels per byte, 0 -> 0, 1 -> 255 (PIL's "1" -> RGB).
  std::vector<uint8_t> bits = {0b10100000};
  auto b = encode_png(3, 1, PNG_COLOR_TYPE_GRAY, 1, bits);
  auto d1 = decode_image(b.data(), b.size());
  EXPECT_EQ(d1.rgb, (std::vector<uint8_t>{255, 255, 255, 0, 0, 0, 255, 255, 255}));
}

TEST(decode, png_16bit_keeps_high_byte) {
  // 2x1 RGB16: samples big-endian.
  std::vector<uint8_t> s = {0x12, 0x34, 0xff, 0xff, 0x00, 0x80, 0x80, 0x7f, 0x01, 0x00, 0xab, 0xcd};
  auto bytes = encode_png(2, 1, PNG_COLOR_TYPE_RGB, 16, s);
  auto d = decode_image(bytes.data(), bytes.size());
  EXPECT_EQ(d.rgb, (std::vector<uint8_t>{0x12, 0xff, 0x00, 0x80, 0x01, 0xab}));
  std::vector<uint8_t> g = {0xfe, 0x01, 0x03, 0xff};
  auto gb = encode_png(2, 1, PNG_COLOR_TYPE_GRAY, 16, g);
  auto dg = decode_image(gb.data(), gb.size());
  EXPECT_EQ(dg.rgb, (std::vector<uint8_t>{0xfe, 0xfe, 0xfe, 0x03, 0x03, 0x03}));
}

TEST(decode, png_palette_ignores_trns) {
  std::vector<uint8_t> pal = {10, 20, 30, 200, 100, 50, 0, 255, 0};
  std::vector<uint8_t> idx = {0, 1, 2, 1, 0, 2};
  auto bytes = encode_png(3, 2, PNG_COLOR_TYPE_PALETTE, 8, idx, pal, /*trns=*/{0, 128});
  auto d = decode_image(bytes.data(), bytes.size());
  std::vector<uint8_t> want;
  for (uint8_t i : idx) want.insert(want.end(), pal.begin() + i * 3, pal.begin() + i * 3 + 3);
  EXPECT_EQ(d.rgb, want);  // PIL's P -> RGB ignores transparency; vLLM does too (not mode RGBA)
}

TEST(decode, png_rgba_composite_and_drop) {
  // pixels: opaque red, fully transparent green, half-transparent blue (a = 128), a = 1 grey.
  std::vector<uint8_t> s = {255, 0, 0, 255, 0, 255, 0, 0, 0, 0, 255, 128, 100, 100, 100, 1};
  auto bytes = encode_png(4, 1, PNG_COLOR_TYPE_RGBA, 8, s);
  auto comp = decode_image(bytes.data(), bytes.size());
  // over white with PIL's rounding: (c * a + 255 * (255 - a)) / 255, rounded to nearest.
  EXPECT_EQ(comp.rgb, (std::vector<uint8_t>{255, 0, 0, 255, 255, 255, 127, 127, 255, 254, 254, 254}));
  image_limits drop;
  drop.alpha = alpha_mode::drop;
  auto dr = decode_image(bytes.data(), bytes.size(), drop);
  EXPECT_EQ(dr.rgb, (std::vector<uint8_t>{255, 0, 0, 0, 255, 0, 0, 0, 255, 100, 100, 100}));
}

TEST(decode, png_gray_alpha_drops_alpha) {
  std::vector<uint8_t> s = {10, 0, 200, 128};
  auto bytes = encode_png(2, 1, PNG_COLOR_TYPE_GRAY_ALPHA, 8, s);
  auto d = decode_image(bytes.data(), bytes.size());  // PIL mode LA -> convert("RGB") drops alpha, even in vLLM
  EXPECT_EQ(d.rgb, (std::vector<uint8_t>{10, 10, 10, 200, 200, 200}));
}

TEST(decode, jpeg_rgb_and_gray) {
  auto img = test::smooth_image(64, 48, 4);
  auto bytes = encode_jpeg(64, 48, 3, img.rgb, 95);
  EXPECT_EQ(sniff_image_format(bytes.data(), bytes.size()), image_format::jpeg);
  auto d = decode_image(bytes.data(), bytes.size());
  ASSERT_EQ(d.width, 64);
  ASSERT_EQ(d.height, 48);
  double err = 0;
  for (size_t i = 0; i < d.rgb.size(); ++i) err += std::abs(int(d.rgb[i]) - int(img.rgb[i]));
  EXPECT_LT(err / d.rgb.size(), 4.0);  // lossy, but close
  std::vector<uint8_t> g(32 * 16);
  for (size_t i = 0; i < g.size(); ++i) g[i] = static_cast<uint8_t>(i % 32 * 8);
  auto gb = encode_jpeg(32, 16, 1, g, 95);
  auto dg = decode_image(gb.data(), gb.size());
  for (size_t i = 0; i < g.size(); ++i) {
    EXPECT_EQ(dg.rgb[i * 3], dg.rgb[i * 3 + 1]);
    EXPECT_NEAR(dg.rgb[i * 3], g[i], 12);
  }
}

TEST(decode, webp_lossless_rgb_and_rgba) {
  auto img = test::random_image(31, 17, 5);
  auto bytes = encode_webp(31, 17, img.rgb, false, true);
  EXPECT_EQ(sniff_image_format(bytes.data(), bytes.size()), image_format::webp);
  auto d = decode_image(bytes.data(), bytes.size());
  EXPECT_EQ(d.rgb, img.rgb);
  std::vector<uint8_t> rgba = {255, 0, 0, 255, 0, 0, 255, 128, 9, 9, 9, 0};
  auto wb = encode_webp(3, 1, rgba, true, true);
  image_limits drop;
  drop.alpha = alpha_mode::drop;
  auto dd = decode_image(wb.data(), wb.size(), drop);
  EXPECT_EQ(dd.rgb[0], 255);
  EXPECT_EQ(dd.rgb[5], 255);
  auto dc = decode_image(wb.data(), wb.size());
  EXPECT_EQ(dc.rgb, (std::vector<uint8_t>{255, 0, 0, 127, 127, 255, 255, 255, 255}));
}

TEST(decode, webp_lossy) {
  auto img = test::smooth_image(40, 24, 6);
  auto bytes = encode_webp(40, 24, img.rgb, false, false);
  auto d = decode_image(bytes.data(), bytes.size());
  EXPECT_EQ(d.width, 40);
  EXPECT_EQ(d.height, 24);
}

TEST(decode, truncated_files_are_errors) {
  auto img = test::random_image(40, 30, 7);
  auto png = encode_png(40, 30, PNG_COLOR_TYPE_RGB, 8, img.rgb);
  auto jpg = encode_jpeg(40, 30, 3, img.rgb);
  auto webp = encode_webp(40, 30, img.rgb, false, true);
  for (auto* f : {&png, &jpg, &webp}) {
    for (size_t keep : {f->size() / 2, f->size() - 10, size_t{20}}) {
      std::vector<uint8_t> t(f->begin(), f->begin() + keep);
      EXPECT_THROW(decode_image(t.data(), t.size()), error) << "format " << int(sniff_image_format(f->data(), 12))
                                                             << " kept " << keep;
    }
  }
}

TEST(decode, corrupt_data_is_an_error) {
  auto img = test::random_image(40, 30, 8);
  auto png = encode_png(40, 30, PNG_COLOR_TYPE_RGB, 8, img.rgb);
  for (size_t i = 60; i < png.size() - 20; i += 7) png[i] ^= 0x5a;  // breaks zlib data and CRCs
  EXPECT_THROW(decode_image(png.data(), png.size()), error);
  auto garbage = test::random_bytes(1000, 9);
  EXPECT_THROW(decode_image(garbage.data(), garbage.size()), error);
  std::vector<uint8_t> fake_png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 1, 2, 3};
  EXPECT_THROW(decode_image(fake_png.data(), fake_png.size()), error);
  std::vector<uint8_t> fake_jpg = {0xff, 0xd8, 0xff, 0xe0, 0, 0, 1, 2};
  EXPECT_THROW(decode_image(fake_jpg.data(), fake_jpg.size()), error);
  std::vector<uint8_t> fake_webp = {'R', 'I', 'F', 'F', 50, 0, 0, 0, 'W', 'E', 'B', 'P', 'V', 'P', '8', ' ', 1};
  EXPECT_THROW(decode_image(fake_webp.data(), fake_webp.size()), error);
  EXPECT_THROW(decode_image(nullptr, 0), error);
}

// Builds a PNG whose IHDR claims w x h, followed by a tiny IDAT: must fail on the header, before allocating.
std::vector<uint8_t> png_with_header(uint32_t w, uint32_t h) {
  auto be32 = [](std::vector<uint8_t>& v, uint32_t x) {
    for (int s = 24; s >= 0; s -= 8) v.push_back(static_cast<uint8_t>(x >> s));
  };
  std::vector<uint8_t> out = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  std::vector<uint8_t> chunk = {'I', 'H', 'D', 'R'};
  be32(chunk, w);
  be32(chunk, h);
  chunk.insert(chunk.end(), {8, 2, 0, 0, 0});
  be32(out, 13);
  out.insert(out.end(), chunk.begin(), chunk.end());
  be32(out, static_cast<uint32_t>(crc32(0, chunk.data(), static_cast<uInt>(chunk.size()))));
  std::vector<uint8_t> idat = {'I', 'D', 'A', 'T', 0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01};
  be32(out, static_cast<uint32_t>(idat.size() - 4));
  out.insert(out.end(), idat.begin(), idat.end());
  be32(out, static_cast<uint32_t>(crc32(0, idat.data(), static_cast<uInt>(idat.size()))));
  return out;
}

TEST(decode, huge_declared_dimensions_rejected_before_allocation) {
  auto png = png_with_header(100000, 100000);
  try {
    decode_image(png.data(), png.size());
    FAIL() << "expected an error";
  } catch (const error& e) {
    EXPECT_NE(std::string(e.what()).find("100000x100000"), std::string::npos) << e.what();
  }
  // Within max_side but over max_pixels.
  image_limits lim;
  lim.max_side = 20000;
  lim.max_pixels = 1000;
  auto png2 = png_with_header(100, 11);
  EXPECT_THROW(decode_image(png2.data(), png2.size(), lim), error);
  // A real image over the limits.
  auto img = test::random_image(50, 40, 10);
  auto ok = encode_png(50, 40, PNG_COLOR_TYPE_RGB, 8, img.rgb);
  lim.max_pixels = 50 * 40 - 1;
  EXPECT_THROW(decode_image(ok.data(), ok.size(), lim), error);
  lim.max_pixels = 50 * 40;
  EXPECT_NO_THROW(decode_image(ok.data(), ok.size(), lim));
  lim.max_side = 49;
  EXPECT_THROW(decode_image(ok.data(), ok.size(), lim), error);
  auto jpg = encode_jpeg(50, 40, 3, img.rgb);
  EXPECT_THROW(decode_image(jpg.data(), jpg.size(), lim), error);
  auto webp = encode_webp(50, 40, img.rgb, false, true);
  EXPECT_THROW(decode_image(webp.data(), webp.size(), lim), error);
  image_limits small_file;
  small_file.max_file_bytes = ok.size() - 1;
  EXPECT_THROW(decode_image(ok.data(), ok.size(), small_file), error);
}

TEST(decode, unsupported_formats_named) {
  std::vector<uint8_t> gif = {'G', 'I', 'F', '8', '9', 'a', 1, 0, 1, 0, 0, 0, 0};
  try {
    decode_image(gif.data(), gif.size());
    FAIL();
  } catch (const error& e) {
    EXPECT_NE(std::string(e.what()).find("GIF"), std::string::npos);
  }
  std::vector<uint8_t> bmp = {'B', 'M', 0, 0, 0, 0, 0, 0};
  try {
    decode_image(bmp.data(), bmp.size());
    FAIL();
  } catch (const error& e) {
    EXPECT_NE(std::string(e.what()).find("BMP"), std::string::npos);
  }
}

TEST(decode, file_api) {
  auto img = test::random_image(9, 7, 11);
  auto png = encode_png(9, 7, PNG_COLOR_TYPE_RGB, 8, img.rgb);
  const std::string path = ::testing::TempDir() + "/autoglm_media_decode_test.png";
  {
    std::ofstream f(path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(png.data()), static_cast<std::streamsize>(png.size()));
  }
  EXPECT_EQ(decode_image_file(path).rgb, img.rgb);
  std::remove(path.c_str());
  EXPECT_THROW(decode_image_file(path), error);
}

TEST(decode, hash_depends_on_dims_and_pixels) {
  auto a = test::random_image(8, 4, 12);
  auto b = a;
  EXPECT_EQ(hash_image(a), hash_image(b));
  b.rgb[5] ^= 1;
  EXPECT_NE(hash_image(a), hash_image(b));
  auto c = a;
  c.width = 4, c.height = 8;
  EXPECT_NE(hash_image(a), hash_image(c));
}

}  // namespace
}  // namespace autoglm
