// bench/media/png_decode_bench.cpp: decoding a phone screenshot PNG, the libdeflate path that decode_image takes for
// 8-bit RGB/RGBA (media/png_fast.h) against libpng's row-by-row read (the path before it, and the fallback), in one
// process and interleaved (each pair runs both back to back, the order alternating). The image is screenshot-like:
// flat panels, rows of dark "text" runs, a noisy photo region, encoded by libpng with its adaptive filters (about
// 1.1 MB for 1080x2400, as Android's screencap PNGs). Both decoders see the same bytes; the samples are compared.
//
// Usage: autoglm_png_decode_bench [--size WxH] [--pairs P] [-o FILE]
#include <png.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "media/image.h"

using namespace autoglm;

namespace {

std::vector<uint8_t> screenshot(int w, int h) {
  std::vector<uint8_t> px(size_t(w) * h * 3);
  std::mt19937 rng(1);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = &px[(size_t(y) * w + x) * 3];
      const uint8_t base = uint8_t(200 + (y / 120 % 3) * 20);
      p[0] = base, p[1] = base, p[2] = uint8_t(base - 10);
      if (y % 120 > 40 && y % 120 < 70 && (x / 9 + y / 120) % 5 != 0 && rng() % 3 == 0) p[0] = p[1] = p[2] = 30;
      if (y > h * 2 / 3 && y < h * 5 / 6) p[0] = uint8_t(rng()), p[1] = uint8_t(x + y), p[2] = uint8_t(rng() % 64 + x / 8);
    }
  return px;
}

void write_cb(png_structp p, png_bytep data, png_size_t n) {
  auto* v = static_cast<std::vector<uint8_t>*>(png_get_io_ptr(p));
  v->insert(v->end(), data, data + n);
}

std::vector<uint8_t> encode(int w, int h, const std::vector<uint8_t>& px) {
  std::vector<uint8_t> out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png))) throw std::runtime_error("png encode failed");
  png_set_write_fn(png, &out, write_cb, nullptr);
  png_set_IHDR(png, info, w, h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  std::vector<png_bytep> rows(h);
  for (int y = 0; y < h; ++y) rows[y] = const_cast<png_bytep>(px.data() + size_t(y) * w * 3);
  png_write_image(png, rows.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

struct reader {
  const std::vector<uint8_t>* data;
  size_t pos;
};

// libpng's read of the same bytes, as image_decode.cpp's libpng path does it (rows into one buffer).
std::vector<uint8_t> libpng_decode(const std::vector<uint8_t>& bytes) {
  reader r{&bytes, 0};
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  std::vector<uint8_t> out;
  if (setjmp(png_jmpbuf(png))) throw std::runtime_error("libpng decode failed");
  png_set_read_fn(png, &r, [](png_structp p, png_bytep dst, png_size_t n) {
    auto* rd = static_cast<reader*>(png_get_io_ptr(p));
    std::memcpy(dst, rd->data->data() + rd->pos, n);
    rd->pos += n;
  });
  png_read_info(png, info);
  const png_uint_32 h = png_get_image_height(png, info);
  const size_t rb = png_get_rowbytes(png, info);
  out.resize(rb * h);
  for (png_uint_32 y = 0; y < h; ++y) png_read_row(png, out.data() + rb * y, nullptr);
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  return out;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int w = 1080, h = 2400, pairs = 15;
  std::string out_path;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--size" && i + 1 < argc && std::sscanf(argv[i + 1], "%dx%d", &w, &h) == 2) ++i;
    else if (a == "--pairs" && i + 1 < argc) pairs = std::max(1, std::atoi(argv[++i]));
    else if (a == "-o" && i + 1 < argc) out_path = argv[++i];
    else {
      std::fprintf(stderr, "usage: %s [--size WxH] [--pairs P] [-o FILE]\n", argv[0]);
      return 2;
    }
  }
  const std::vector<uint8_t> px = screenshot(w, h);
  const std::vector<uint8_t> png = encode(w, h, px);
  std::vector<double> fast_ms, libpng_ms;
  bool same = true;
  using clock = std::chrono::steady_clock;
  for (int p = 0; p < pairs; ++p) {
    for (int k = 0; k < 2; ++k) {
      const bool fast = (p + k) % 2 == 0;
      const auto t0 = clock::now();
      std::vector<uint8_t> rgb = fast ? decode_image(png.data(), png.size()).rgb : libpng_decode(png);
      const double ms = std::chrono::duration<double, std::milli>(clock::now() - t0).count();
      (fast ? fast_ms : libpng_ms).push_back(ms);
      same = same && rgb == px;
    }
  }
  const nlohmann::json j = {
      {"benchmark", "png_decode"},
      {"image", {{"width", w}, {"height", h}, {"png_bytes", png.size()}}},
      {"pairs", pairs},
      {"decode_image_ms", median(fast_ms)},
      {"decode_image_ms_min_max", {*std::min_element(fast_ms.begin(), fast_ms.end()),
                                   *std::max_element(fast_ms.begin(), fast_ms.end())}},
      {"libpng_ms", median(libpng_ms)},
      {"libpng_ms_min_max", {*std::min_element(libpng_ms.begin(), libpng_ms.end()),
                             *std::max_element(libpng_ms.begin(), libpng_ms.end())}},
      {"speedup", median(libpng_ms) / median(fast_ms)},
      {"same_samples", same}};
  std::printf("%s\n", j.dump(2).c_str());
  if (!out_path.empty()) std::ofstream(out_path) << j.dump(2) << "\n";
  return same ? 0 : 1;
}
