// media/png_fast.cpp: 8-bit RGB / RGBA PNGs without libpng (see png_fast.h).
//
// What is checked, so that every file this path takes is one libpng decodes to the same samples: the signature;
// chunk names of ASCII letters, lengths within the file and under 2^31, every chunk's CRC; IHDR first with depth
// 8, colour type 2 or 6, compression 0, filter 0, interlace 0, sides up to libpng's 1,000,000; IDAT chunks
// consecutive; no critical chunk but IHDR, IDAT and IEND (a PLTE, legal in true colour, goes to libpng); ancillary
// chunks of at most 16 MiB (libpng's limit here, png_set_chunk_malloc_max) skipped; IEND present (bytes after it
// are not read, as libpng does not read them); a zlib stream with a 32 KiB window (CINFO 7: what encoders write;
// a smaller window's distance limit is left to zlib) that inflates, adler-32 checked, to exactly height x (1 + row
// bytes) bytes with nothing of the IDAT data left over; filter types 0-4. Anything else: false, and libpng decides.
#include "media/png_fast.h"

#include <libdeflate.h>

#include <cstdint>
#include <cstring>
#include <memory>

#include "autoglm/bulk_allocator.h"

namespace autoglm::media_detail {

namespace {

constexpr uint8_t k_signature[8] = {137, 80, 78, 71, 13, 10, 26, 10};
constexpr uint32_t k_max_chunk = 0x7fffffffu;          // PNG's limit on a chunk length
constexpr uint32_t k_max_ancillary = 16u << 20;         // as image_decode.cpp's png_set_chunk_malloc_max
constexpr uint32_t k_max_side = 1000000;                // libpng's default user limit on width and height

#if defined(FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION)
// Fuzz builds skip the IDAT chunks' CRCs, so mutated image data reaches the zlib and filter code (libFuzzer cannot
// make a CRC match); the other chunks' are checked as libpng's header probe checks them, so probe and decode still
// agree. Every other build checks them all.
constexpr bool k_check_idat_crc = false;
#else
constexpr bool k_check_idat_crc = true;
#endif

uint32_t be32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }

bool letters(const uint8_t* t) {
  for (int i = 0; i < 4; ++i)
    if (!((t[i] >= 'A' && t[i] <= 'Z') || (t[i] >= 'a' && t[i] <= 'z'))) return false;
  return true;
}

bool is_type(const uint8_t* t, const char* name) { return std::memcmp(t, name, 4) == 0; }

inline uint8_t paeth(int a, int b, int c) {
  const int pa = b > c ? b - c : c - b, pb = a > c ? a - c : c - a, p2 = a + b - 2 * c, pc = p2 < 0 ? -p2 : p2;
  return uint8_t(pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
}

// One row: cur[0, n) = the filtered bytes raw[0, n) undone against the row above (prior: zeros for the first row).
template <int BPP>
void unfilter_row(int filter, const uint8_t* raw, const uint8_t* prior, uint8_t* cur, size_t n) {
  switch (filter) {
    case 0:
      std::memcpy(cur, raw, n);
      break;
    case 1:
      for (size_t i = 0; i < BPP; ++i) cur[i] = raw[i];
      for (size_t i = BPP; i < n; ++i) cur[i] = uint8_t(raw[i] + cur[i - BPP]);
      break;
    case 2:
      for (size_t i = 0; i < n; ++i) cur[i] = uint8_t(raw[i] + prior[i]);
      break;
    case 3:
      for (size_t i = 0; i < BPP; ++i) cur[i] = uint8_t(raw[i] + (prior[i] >> 1));
      for (size_t i = BPP; i < n; ++i) cur[i] = uint8_t(raw[i] + ((unsigned(cur[i - BPP]) + prior[i]) >> 1));
      break;
    default:  // 4: Paeth (left and upper-left are 0 in the first pixel, so the predictor is the byte above)
      for (size_t i = 0; i < BPP; ++i) cur[i] = uint8_t(raw[i] + prior[i]);
      for (size_t i = BPP; i < n; ++i) cur[i] = uint8_t(raw[i] + paeth(cur[i - BPP], prior[i], prior[i - BPP]));
      break;
  }
}

template <int BPP>
bool unfilter(const uint8_t* z, size_t height, size_t row_bytes, uint8_t* out) {
  const std::vector<uint8_t> zeros(row_bytes, 0);
  for (size_t y = 0; y < height; ++y) {
    const uint8_t* line = z + y * (row_bytes + 1);
    if (line[0] > 4) return false;
    unfilter_row<BPP>(line[0], line + 1, y ? out + (y - 1) * row_bytes : zeros.data(), out + y * row_bytes,
                      row_bytes);
  }
  return true;
}

struct decompressor_deleter {
  void operator()(libdeflate_decompressor* d) const { libdeflate_free_decompressor(d); }
};

}  // namespace

bool png_fast_samples(const uint8_t* data, size_t size, const image_limits& lim, int& width, int& height,
                      int& channels, std::vector<uint8_t>& samples) {
  if (size < 8 + 25 || std::memcmp(data, k_signature, 8) != 0) return false;
  size_t pos = 8;
  uint32_t w = 0, h = 0;
  int ch = 0;
  bool seen_ihdr = false, seen_iend = false, seen_idat = false, idat_done = false;
  std::vector<uint8_t> idat;
  while (!seen_iend) {
    if (size - pos < 12) return false;
    const uint32_t len = be32(data + pos);
    const uint8_t* type = data + pos + 4;
    if (len > k_max_chunk || len > size - pos - 12 || !letters(type)) return false;
    const uint8_t* body = type + 4;
    if ((k_check_idat_crc || !is_type(type, "IDAT")) && libdeflate_crc32(0, type, size_t(len) + 4) != be32(body + len))
      return false;
    const bool critical = type[0] <= 'Z';
    if (!seen_ihdr) {
      if (!is_type(type, "IHDR") || len != 13) return false;
      w = be32(body), h = be32(body + 4);
      const uint8_t depth = body[8], color = body[9];
      if (w == 0 || h == 0 || w > k_max_side || h > k_max_side || depth != 8 || (color != 2 && color != 6) ||
          body[10] != 0 || body[11] != 0 || body[12] != 0)
        return false;
      if (int64_t(w) > lim.max_side || int64_t(h) > lim.max_side || int64_t(w) * int64_t(h) > lim.max_pixels)
        return false;
      ch = color == 2 ? 3 : 4;
      seen_ihdr = true;
    } else if (is_type(type, "IDAT")) {
      if (idat_done) return false;  // IDAT chunks must be consecutive
      seen_idat = true;
      idat.insert(idat.end(), body, body + len);
    } else {
      idat_done = seen_idat;
      if (is_type(type, "IEND")) {
        if (len != 0 || !seen_idat) return false;
        seen_iend = true;
      } else if (critical || len > k_max_ancillary) {
        return false;  // PLTE (legal but unusual in true colour) and unknown critical chunks: libpng's rules
      }
    }
    pos += size_t(len) + 12;
  }
  // zlib header: deflate (CM 8) with a 32 KiB window (CINFO 7).
  if (idat.size() < 2 || idat[0] != 0x78) return false;
  const size_t row_bytes = size_t(w) * size_t(ch), expected = size_t(h) * (row_bytes + 1);
  std::vector<uint8_t, bulk_allocator<uint8_t>> z(expected);
  const std::unique_ptr<libdeflate_decompressor, decompressor_deleter> d(libdeflate_alloc_decompressor());
  if (!d) return false;
  size_t in_used = 0, out_made = 0;
  if (libdeflate_zlib_decompress_ex(d.get(), idat.data(), idat.size(), z.data(), expected, &in_used, &out_made) !=
          LIBDEFLATE_SUCCESS ||
      out_made != expected || in_used != idat.size())
    return false;
  samples.resize(size_t(h) * row_bytes);
  if (!(ch == 3 ? unfilter<3>(z.data(), h, row_bytes, samples.data())
                : unfilter<4>(z.data(), h, row_bytes, samples.data())))
    return false;
  width = int(w), height = int(h), channels = ch;
  return true;
}

}  // namespace autoglm::media_detail
