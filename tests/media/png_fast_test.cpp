// tests/media/png_fast_test.cpp: the libdeflate PNG path (media/png_fast.h) against libpng on the same bytes. It
// must give libpng's samples for every file it takes (each filter type forced, adaptive filtering, odd widths, one
// row, many small IDAT chunks, ancillary chunks, bytes after IEND) and take nothing it cannot vouch for (other
// types, interlacing, any CRC error, a PLTE, a zlib window under 32 KiB, a truncated or padded zlib stream, IDATs
// split by another chunk, an image over the limits): for those decode_image still answers exactly as libpng does.
#include <gtest/gtest.h>
#include <png.h>
#include <zlib.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "encode_util.h"
#include "media/image.h"
#include "media/png_fast.h"

using namespace autoglm;

namespace {

// An 8-bit PNG of `channels` (3: RGB, 4: RGBA) written by libpng with the given filter set (PNG_FILTER_* flags) and
// zlib buffer size (small: many IDAT chunks).
std::vector<uint8_t> write_png(int w, int h, int channels, const std::vector<uint8_t>& px, int filters,
                               size_t zbuf = 8192, bool interlace = false) {
  return test::encode_png(w, h, channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_RGBA, 8, px, {}, {}, interlace,
                          filters, zbuf);
}

// Pixels with every kind of neighbourhood: random bytes, then smooth gradients and flat runs (which the encoder's
// adaptive filtering answers with different filters).
std::vector<uint8_t> test_pixels(int w, int h, int channels, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> px(size_t(w) * h * channels);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < channels; ++c) {
        const size_t i = (size_t(y) * w + x) * channels + c;
        px[i] = y % 3 == 0 ? uint8_t(rng()) : y % 3 == 1 ? uint8_t(x * 7 + y * 3 + c * 50) : uint8_t(200 + c);
      }
  return px;
}

// A chunk (length, type, data, CRC) as bytes.
std::vector<uint8_t> chunk(const char* type, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> c(8 + data.size() + 4);
  const uint32_t n = uint32_t(data.size());
  c[0] = uint8_t(n >> 24), c[1] = uint8_t(n >> 16), c[2] = uint8_t(n >> 8), c[3] = uint8_t(n);
  std::memcpy(c.data() + 4, type, 4);
  std::copy(data.begin(), data.end(), c.begin() + 8);
  const uint32_t crc = uint32_t(crc32(crc32(0, nullptr, 0), c.data() + 4, uInt(4 + data.size())));
  c[8 + n] = uint8_t(crc >> 24), c[9 + n] = uint8_t(crc >> 16), c[10 + n] = uint8_t(crc >> 8), c[11 + n] = uint8_t(crc);
  return c;
}

// Offset of the first chunk of `type` (its length field).
size_t find_chunk(const std::vector<uint8_t>& png, const char* type) {
  for (size_t pos = 8; pos + 12 <= png.size();) {
    const uint32_t len = uint32_t(png[pos]) << 24 | uint32_t(png[pos + 1]) << 16 | uint32_t(png[pos + 2]) << 8 | png[pos + 3];
    if (std::memcmp(png.data() + pos + 4, type, 4) == 0) return pos;
    pos += size_t(len) + 12;
  }
  return std::string::npos;
}

std::vector<uint8_t> insert_before(std::vector<uint8_t> png, const char* before, const std::vector<uint8_t>& c) {
  const size_t at = find_chunk(png, before);
  png.insert(png.begin() + long(at), c.begin(), c.end());
  return png;
}

struct fast_result {
  bool taken = false;
  int w = 0, h = 0, ch = 0;
  std::vector<uint8_t> samples;
};

fast_result run_fast(const std::vector<uint8_t>& png, const image_limits& lim = {}) {
  fast_result r;
  r.taken = media_detail::png_fast_samples(png.data(), png.size(), lim, r.w, r.h, r.ch, r.samples);
  return r;
}

// What decode_image gives, or its error message.
std::string decode_outcome(const std::vector<uint8_t>& png, std::vector<uint8_t>* rgb = nullptr) {
  try {
    const image_rgb8 img = decode_image(png.data(), png.size());
    if (rgb) *rgb = img.rgb;
    return "ok " + std::to_string(img.width) + "x" + std::to_string(img.height);
  } catch (const error& e) {
    return e.what();
  }
}

}  // namespace

TEST(png_fast, every_filter_and_layout_gives_the_source_samples) {
  const int filter_sets[] = {PNG_FILTER_NONE, PNG_FILTER_SUB, PNG_FILTER_UP, PNG_FILTER_AVG, PNG_FILTER_PAETH,
                             PNG_ALL_FILTERS};
  for (int channels : {3, 4})
    // Every shape's raw data over 16 KiB: below that libpng writes a smaller zlib window, which this path leaves to
    // libpng (see the last test).
    for (const auto& [w, h] : std::vector<std::pair<int, int>>{{1, 6000}, {3, 2000}, {17, 400}, {64, 100}, {301, 20},
                                                              {2000, 3}})
      for (int filters : filter_sets)
        for (size_t zbuf : {size_t(64), size_t(8192)}) {
          const std::vector<uint8_t> px = test_pixels(w, h, channels, uint32_t(w * 31 + h + channels));
          const std::vector<uint8_t> png = write_png(w, h, channels, px, filters, zbuf);
          const fast_result r = run_fast(png);
          const std::string what = std::to_string(channels) + "ch " + std::to_string(w) + "x" + std::to_string(h) +
                                   " filters " + std::to_string(filters) + " zbuf " + std::to_string(zbuf);
          ASSERT_TRUE(r.taken) << what;
          EXPECT_EQ(r.w, w) << what;
          EXPECT_EQ(r.h, h) << what;
          EXPECT_EQ(r.ch, channels) << what;
          EXPECT_EQ(r.samples, px) << what;
        }
}

TEST(png_fast, decode_image_gives_the_same_rgb_as_before) {
  // RGBA through decode_image: composited over white by default, as the libpng path does (decode_test checks that
  // path's values; here the two paths must agree byte for byte).
  const int w = 137, h = 41;
  const std::vector<uint8_t> px = test_pixels(w, h, 4, 9);
  const std::vector<uint8_t> png = write_png(w, h, 4, px, PNG_ALL_FILTERS);
  ASSERT_TRUE(run_fast(png).taken);
  std::vector<uint8_t> fast_rgb, libpng_rgb;
  ASSERT_EQ(decode_outcome(png, &fast_rgb), "ok 137x41");
  // A PLTE (legal in a true-colour file, which ignores it) sends the same pixels through libpng.
  const std::vector<uint8_t> via_libpng = insert_before(png, "IDAT", chunk("PLTE", {1, 2, 3}));
  ASSERT_FALSE(run_fast(via_libpng).taken);
  ASSERT_EQ(decode_outcome(via_libpng, &libpng_rgb), "ok 137x41");
  EXPECT_EQ(fast_rgb, libpng_rgb);
}

TEST(png_fast, ancillary_chunks_and_bytes_after_iend_are_ignored) {
  const std::vector<uint8_t> px = test_pixels(100, 60, 3, 4);
  std::vector<uint8_t> png = write_png(100, 60, 3, px, PNG_ALL_FILTERS);
  png = insert_before(png, "IDAT", chunk("tEXt", {'a', 0, 'b'}));
  png = insert_before(png, "IEND", chunk("zzZz", {1, 2, 3}));
  png.insert(png.end(), {9, 9, 9});
  const fast_result r = run_fast(png);
  ASSERT_TRUE(r.taken);
  EXPECT_EQ(r.samples, px);
}

TEST(png_fast, what_it_cannot_vouch_for_goes_to_libpng) {
  const int w = 128, h = 64;
  const std::vector<uint8_t> px = test_pixels(w, h, 3, 5);
  const std::vector<uint8_t> png = write_png(w, h, 3, px, PNG_ALL_FILTERS, 4096);
  ASSERT_TRUE(run_fast(png).taken);
  const std::string ok = "ok 128x64";

  // A small image: libpng wrote a zlib window under 32 KiB, whose distance limit only zlib enforces.
  const std::vector<uint8_t> small_px = test_pixels(5, 3, 3, 8);
  const std::vector<uint8_t> small_png = write_png(5, 3, 3, small_px, PNG_ALL_FILTERS);
  EXPECT_FALSE(run_fast(small_png).taken);
  std::vector<uint8_t> small_rgb;
  EXPECT_EQ(decode_outcome(small_png, &small_rgb), "ok 5x3");
  EXPECT_EQ(small_rgb, small_px);

  // Interlaced: libpng decodes it.
  const std::vector<uint8_t> interlaced = write_png(w, h, 3, px, PNG_ALL_FILTERS, 8192, true);
  EXPECT_FALSE(run_fast(interlaced).taken);
  EXPECT_EQ(decode_outcome(interlaced), ok);

  // A PLTE in a true-colour file: legal, left to libpng.
  const std::vector<uint8_t> with_plte = insert_before(png, "IDAT", chunk("PLTE", {1, 2, 3}));
  EXPECT_FALSE(run_fast(with_plte).taken);
  EXPECT_EQ(decode_outcome(with_plte), ok);

  // A bad CRC in IDAT (here the zlib header byte: fuzz builds, which skip CRCs, refuse it too): libpng's error.
  std::vector<uint8_t> bad_crc = png;
  const size_t idat = find_chunk(bad_crc, "IDAT");
  bad_crc[idat + 8] ^= 0x40;
  EXPECT_FALSE(run_fast(bad_crc).taken);
  EXPECT_NE(decode_outcome(bad_crc).find("png:"), std::string::npos);

  // Truncated anywhere: never taken; decode_image's answer is libpng's.
  for (size_t cut : {size_t(20), size_t(40), png.size() / 2, png.size() - 13, png.size() - 1}) {
    const std::vector<uint8_t> t(png.begin(), png.begin() + long(cut));
    EXPECT_FALSE(run_fast(t).taken) << cut;
    EXPECT_NE(decode_outcome(t).find("png:"), std::string::npos) << cut;
  }

  // IDAT chunks split by another chunk.
  const uint32_t len0 = uint32_t(png[idat]) << 24 | uint32_t(png[idat + 1]) << 16 | uint32_t(png[idat + 2]) << 8 | png[idat + 3];
  const size_t next = idat + 12 + len0;
  ASSERT_EQ(std::memcmp(png.data() + next + 4, "IDAT", 4), 0);  // zbuf 4096: several IDATs
  std::vector<uint8_t> split = png;
  const std::vector<uint8_t> t = chunk("tEXt", {'x', 0, 'y'});
  split.insert(split.begin() + long(next), t.begin(), t.end());
  EXPECT_FALSE(run_fast(split).taken);

  // Over the limits: refused before any allocation; libpng's path names the size.
  image_limits small;
  small.max_side = 10;
  EXPECT_FALSE(run_fast(png, small).taken);
}

TEST(png_fast, a_zlib_stream_that_is_short_long_or_padded_is_not_taken) {
  const int w = 9, h = 4;
  const std::vector<uint8_t> px = test_pixels(w, h, 3, 6);
  // Rows filtered with type 0, compressed by zlib ourselves: one row too few, one too many, and garbage after the
  // stream inside IDAT.
  auto make = [&](int rows, bool pad) {
    std::vector<uint8_t> raw;
    for (int y = 0; y < rows; ++y) {
      raw.push_back(0);
      const int sy = y % h;
      raw.insert(raw.end(), px.begin() + long(sy) * w * 3, px.begin() + long(sy + 1) * w * 3);
    }
    uLongf n = compressBound(uLong(raw.size()));
    std::vector<uint8_t> z(n);
    compress2(z.data(), &n, raw.data(), uLong(raw.size()), 9);
    z.resize(n);
    if (pad) z.insert(z.end(), {0, 0, 0});
    std::vector<uint8_t> ihdr = {0, 0, 0, uint8_t(w), 0, 0, 0, uint8_t(h), 8, 2, 0, 0, 0};
    std::vector<uint8_t> png = {137, 80, 78, 71, 13, 10, 26, 10};
    for (const auto& c : {chunk("IHDR", ihdr), chunk("IDAT", z), chunk("IEND", {})}) png.insert(png.end(), c.begin(), c.end());
    return png;
  };
  const fast_result exact = run_fast(make(h, false));
  ASSERT_TRUE(exact.taken);
  EXPECT_EQ(exact.samples, px);
  EXPECT_FALSE(run_fast(make(h - 1, false)).taken);
  EXPECT_FALSE(run_fast(make(h + 1, false)).taken);
  EXPECT_FALSE(run_fast(make(h, true)).taken);
}
