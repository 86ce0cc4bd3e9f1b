// media/mpeg_frame.cpp: MPEG audio frame headers (ISO 11172-3 / 13818-3) and the VBR tags of the first frame.
#include "media/mpeg_frame.h"

#include <cstring>

namespace autoglm {

namespace {

// kbit/s by bitrate index 1..14; [0] MPEG-1 layer I, II, III, [3] MPEG-2/2.5 layer I, [4] MPEG-2/2.5 layer II/III.
constexpr int k_bitrates[5][14] = {
    {32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448},
    {32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384},
    {32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320},
    {32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256},
    {8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160},
};
constexpr int k_rates_mpeg1[3] = {44100, 48000, 32000};

constexpr size_t k_search_bytes = 64 * 1024;

}  // namespace

mpeg_frame_header mpeg_parse_frame_header(const uint8_t* p, size_t avail) {
  mpeg_frame_header h;
  if (!p || avail < 4 || p[0] != 0xFF || (p[1] & 0xE0) != 0xE0) return h;
  const int version_bits = (p[1] >> 3) & 3;  // 0: 2.5, 1: reserved, 2: MPEG-2, 3: MPEG-1
  const int layer_bits = (p[1] >> 1) & 3;    // 0: reserved, 1: III, 2: II, 3: I
  const int bitrate_index = p[2] >> 4;
  const int rate_index = (p[2] >> 2) & 3;
  if (version_bits == 1 || layer_bits == 0 || bitrate_index == 0 || bitrate_index == 15 || rate_index == 3) return h;
  h.version = version_bits == 3 ? 10 : version_bits == 2 ? 20 : 25;
  h.layer = 4 - layer_bits;
  const int table = h.version == 10 ? h.layer - 1 : (h.layer == 1 ? 3 : 4);
  h.bitrate_kbps = k_bitrates[table][bitrate_index - 1];
  h.sample_rate = k_rates_mpeg1[rate_index] / (h.version == 10 ? 1 : h.version == 20 ? 2 : 4);
  const int padding = (p[2] >> 1) & 1;
  h.mono = (p[3] >> 6) == 3;
  h.crc = (p[1] & 1) == 0;
  const size_t bps = size_t(h.bitrate_kbps) * 1000;
  if (h.layer == 1)
    h.frame_bytes = (12 * bps / h.sample_rate + padding) * 4;
  else if (h.layer == 3 && h.version != 10)
    h.frame_bytes = 72 * bps / h.sample_rate + padding;  // 576 samples per frame
  else
    h.frame_bytes = 144 * bps / h.sample_rate + padding;
  h.valid = true;
  return h;
}

size_t id3v2_tag_size(const uint8_t* d, size_t n) {
  if (!d || n < 10 || std::memcmp(d, "ID3", 3) != 0) return 0;
  // The body size is "syncsafe": 4 bytes of 7 bits each.
  for (int i = 6; i < 10; ++i)
    if (d[i] & 0x80) return 0;
  const size_t body = (size_t(d[6]) << 21) | (size_t(d[7]) << 14) | (size_t(d[8]) << 7) | d[9];
  const bool footer = d[5] & 0x10;
  return 10 + body + (footer ? 10 : 0);
}

size_t mpeg_find_stream(const uint8_t* d, size_t n) {
  const size_t limit = n < k_search_bytes ? n : k_search_bytes;
  for (size_t at = 0; at + 4 <= limit; ++at) {
    const mpeg_frame_header h = mpeg_parse_frame_header(d + at, n - at);
    if (!h.valid || at + h.frame_bytes + 4 > n) continue;
    const mpeg_frame_header next = mpeg_parse_frame_header(d + at + h.frame_bytes, n - at - h.frame_bytes);
    if (next.valid && next.version == h.version && next.layer == h.layer && next.sample_rate == h.sample_rate)
      return at;
  }
  return SIZE_MAX;
}

bool mpeg_has_length_tag(const uint8_t* d, size_t n) {
  size_t at = id3v2_tag_size(d, n);
  if (at >= n) return false;
  // Encoders may pad between the tag and the first frame: take the first frame header within the search window.
  const size_t end = n - at < k_search_bytes ? n : at + k_search_bytes;
  while (at + 4 <= end && !mpeg_parse_frame_header(d + at, n - at).valid) ++at;
  const mpeg_frame_header h = mpeg_parse_frame_header(d + at, n - at);
  if (!h.valid || h.layer != 3) return false;
  // Xing/Info sit right after the side information, whose size depends on version and channels; VBRI at +36.
  const size_t side = h.version == 10 ? (h.mono ? 17 : 32) : (h.mono ? 9 : 17);
  const size_t xing = at + 4 + (h.crc ? 2 : 0) + side;
  auto tag_at = [&](size_t off, const char* tag) { return off + 4 <= n && std::memcmp(d + off, tag, 4) == 0; };
  return tag_at(xing, "Xing") || tag_at(xing, "Info") || tag_at(at + 36, "VBRI");
}

}  // namespace autoglm
