// media/ogg_pages.cpp: Ogg page headers (RFC 3533 section 6): "OggS", version, header type (0x04: end of
// stream), granule position, serial, sequence number, CRC, then the segment count and the lacing values whose sum
// is the body length.
#include "media/ogg_pages.h"

#include <array>
#include <cstring>

namespace autoglm {

namespace {

constexpr size_t k_header_bytes = 27;

bool capture_at(const uint8_t* d, size_t n, size_t pos) {
  return pos + 4 <= n && std::memcmp(d + pos, "OggS", 4) == 0;
}

// Total page length from its header, or 0 when the header itself does not fit.
size_t page_length(const uint8_t* d, size_t n, size_t pos) {
  if (pos + k_header_bytes > n) return 0;
  const size_t segments = d[pos + 26];
  if (pos + k_header_bytes + segments > n) return 0;
  size_t body = 0;
  for (size_t i = 0; i < segments; ++i) body += d[pos + k_header_bytes + i];
  return k_header_bytes + segments + body;
}

// The page checksum: CRC-32 with polynomial 0x04c11db7, MSB first, initial value 0, no final xor, over the whole
// page with its CRC field (bytes 22..25) taken as zero.
uint32_t page_crc(const uint8_t* page, size_t len) {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t r = i << 24;
      for (int b = 0; b < 8; ++b) r = r & 0x80000000u ? (r << 1) ^ 0x04c11db7u : r << 1;
      t[i] = r;
    }
    return t;
  }();
  uint32_t crc = 0;
  for (size_t i = 0; i < len; ++i) {
    const uint8_t byte = i >= 22 && i < 26 ? 0 : page[i];
    crc = (crc << 8) ^ table[((crc >> 24) ^ byte) & 0xFF];
  }
  return crc;
}

}  // namespace

ogg_codec ogg_first_codec(const uint8_t* d, size_t n) {
  // libogg skips pages whose checksum fails, so the decoder's first page is the first *valid* one: the codec is
  // read from the page at offset 0 only when its checksum holds (otherwise a damaged Opus page could hide the
  // Vorbis stream behind it from this check).
  if (!d || !capture_at(d, n, 0)) return ogg_codec::unknown;
  const size_t len = page_length(d, n, 0);
  if (len == 0 || len > n) return ogg_codec::unknown;
  const uint32_t stored = d[22] | (d[23] << 8) | (d[24] << 16) | (uint32_t(d[25]) << 24);
  if (page_crc(d, len) != stored) return ogg_codec::unknown;
  const size_t body = k_header_bytes + d[26];
  auto is = [&](const char* magic, size_t len) { return body + len <= n && std::memcmp(d + body, magic, len) == 0; };
  if (is("\x01vorbis", 7)) return ogg_codec::vorbis;
  if (is("OpusHead", 8)) return ogg_codec::opus;
  if (is("\x7f" "FLAC", 5)) return ogg_codec::flac;
  if (is("Speex   ", 8)) return ogg_codec::speex;
  if (is("\x80theora", 7)) return ogg_codec::theora;
  return ogg_codec::unknown;
}

const char* ogg_codec_name(ogg_codec c) {
  switch (c) {
    case ogg_codec::vorbis: return "Vorbis";
    case ogg_codec::opus: return "Opus";
    case ogg_codec::flac: return "FLAC";
    case ogg_codec::speex: return "Speex";
    case ogg_codec::theora: return "Theora";
    default: return "an unknown codec";
  }
}

ogg_scan ogg_check_pages(const uint8_t* d, size_t n) {
  ogg_scan scan;
  size_t pos = 0;
  uint8_t last_type = 0;
  uint32_t first_serial = 0;
  while (pos < n) {
    if (!capture_at(d, n, pos)) {
      // Junk between pages: resynchronize on the next capture pattern.
      const void* next = memmem(d + pos, n - pos, "OggS", 4);
      if (!next) break;
      pos = static_cast<size_t>(static_cast<const uint8_t*>(next) - d);
      continue;
    }
    const size_t len = page_length(d, n, pos);
    if (len == 0 || pos + len > n) {
      scan.problem = "the last page is cut off after " + std::to_string(n - pos) + " bytes" +
                     (len ? " of " + std::to_string(len) : std::string());
      return scan;
    }
    // A page that fails its checksum is skipped, as libogg skips it: the decoders never see it.
    const uint32_t stored = d[pos + 22] | (d[pos + 23] << 8) | (d[pos + 24] << 16) | (uint32_t(d[pos + 25]) << 24);
    if (page_crc(d + pos, len) != stored) {
      ++pos;
      continue;
    }
    last_type = d[pos + 5];
    const uint32_t serial = d[pos + 14] | (d[pos + 15] << 8) | (d[pos + 16] << 16) | (uint32_t(d[pos + 17]) << 24);
    if (scan.end == 0) first_serial = serial;
    scan.several_streams = scan.several_streams || serial != first_serial;
    pos += len;
    scan.end = pos;
  }
  if (scan.end == 0) scan.problem = "no complete page";
  else if (!(last_type & 0x04)) scan.problem = "the last page is not flagged end-of-stream";
  return scan;
}

}  // namespace autoglm
