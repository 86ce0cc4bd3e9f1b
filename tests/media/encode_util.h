// tests/media/encode_util.h: writes PNG (libpng), JPEG (libjpeg) and WebP (libwebp) into memory so decoder tests
// can build their inputs, plus small helpers shared by the media tests.
#pragma once

#include <csetjmp>
#include <cstdint>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <jpeglib.h>
#include <png.h>
#include <webp/encode.h>

#include "media/image.h"

namespace autoglm::test {

// samples: rows of width * channels samples (bit_depth 8 -> 1 byte each, 16 -> 2 bytes big-endian).
// For palette images pass palette (RGB triplets) and optional trns alpha per entry.
inline std::vector<uint8_t> encode_png(int width, int height, int color_type, int bit_depth,
                                       const std::vector<uint8_t>& samples, const std::vector<uint8_t>& palette = {},
                                       const std::vector<uint8_t>& trns = {}, bool interlace = false,
                                       int filters = -1, size_t zbuf = 0) {
  std::vector<uint8_t> out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    throw std::runtime_error("encode_png failed");
  }
  png_set_write_fn(
      png, &out,
      [](png_structp p, png_bytep data, png_size_t n) {
        auto* v = static_cast<std::vector<uint8_t>*>(png_get_io_ptr(p));
        v->insert(v->end(), data, data + n);
      },
      nullptr);
  png_set_IHDR(png, info, width, height, bit_depth, color_type,
               interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  if (filters >= 0) png_set_filter(png, PNG_FILTER_TYPE_BASE, filters);  // PNG_FILTER_* flags; default: libpng's choice
  if (zbuf) png_set_compression_buffer_size(png, zbuf);  // small: many IDAT chunks
  if (color_type == PNG_COLOR_TYPE_PALETTE) {
    std::vector<png_color> pal(palette.size() / 3);
    for (size_t i = 0; i < pal.size(); ++i) pal[i] = {palette[i * 3], palette[i * 3 + 1], palette[i * 3 + 2]};
    png_set_PLTE(png, info, pal.data(), static_cast<int>(pal.size()));
    if (!trns.empty()) png_set_tRNS(png, info, trns.data(), static_cast<int>(trns.size()), nullptr);
  }
  png_write_info(png, info);
  const size_t rowbytes = png_get_rowbytes(png, info);
  std::vector<png_bytep> rows(height);
  for (int y = 0; y < height; ++y) rows[y] = const_cast<png_bytep>(samples.data() + rowbytes * y);
  png_write_image(png, rows.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

inline std::vector<uint8_t> encode_jpeg(int width, int height, int components, const std::vector<uint8_t>& pixels,
                                        int quality = 90) {
  jpeg_compress_struct c{};
  jpeg_error_mgr err{};
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&c, &buf, &size);
  c.image_width = width;
  c.image_height = height;
  c.input_components = components;
  c.in_color_space = components == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, quality, TRUE);
  jpeg_start_compress(&c, TRUE);
  while (c.next_scanline < c.image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(pixels.data() + static_cast<size_t>(c.next_scanline) * width * components);
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  std::vector<uint8_t> out(buf, buf + size);
  jpeg_destroy_compress(&c);
  free(buf);
  return out;
}

inline std::vector<uint8_t> encode_webp(int width, int height, const std::vector<uint8_t>& pixels, bool rgba,
                                        bool lossless) {
  uint8_t* buf = nullptr;
  size_t n = 0;
  if (lossless)
    n = rgba ? WebPEncodeLosslessRGBA(pixels.data(), width, height, width * 4, &buf)
             : WebPEncodeLosslessRGB(pixels.data(), width, height, width * 3, &buf);
  else
    n = rgba ? WebPEncodeRGBA(pixels.data(), width, height, width * 4, 90.0f, &buf)
             : WebPEncodeRGB(pixels.data(), width, height, width * 3, 90.0f, &buf);
  if (n == 0) throw std::runtime_error("encode_webp failed");
  std::vector<uint8_t> out(buf, buf + n);
  WebPFree(buf);
  return out;
}

inline std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng() >> 24);
  return v;
}

inline image_rgb8 random_image(int w, int h, uint32_t seed) {
  image_rgb8 img;
  img.width = w, img.height = h;
  img.rgb = random_bytes(static_cast<size_t>(w) * h * 3, seed);
  return img;
}

// A smooth image (gradients + mild noise): JPEG-friendly content.
inline image_rgb8 smooth_image(int w, int h, uint32_t seed) {
  std::mt19937 rng(seed);
  image_rgb8 img;
  img.width = w, img.height = h;
  img.rgb.resize(static_cast<size_t>(w) * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = &img.rgb[(static_cast<size_t>(y) * w + x) * 3];
      p[0] = static_cast<uint8_t>(255 * x / std::max(1, w - 1));
      p[1] = static_cast<uint8_t>(255 * y / std::max(1, h - 1));
      p[2] = static_cast<uint8_t>((x * 3 + y * 5 + static_cast<int>(rng() % 8)) & 255);
    }
  return img;
}

}  // namespace autoglm::test
