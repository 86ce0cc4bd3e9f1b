// media/mpeg_frame.h: just enough of the MPEG audio (MP1/2/3) frame layout to sniff a stream and to know
// whether its length is exact. libmpg123 decodes; through libsndfile it tells neither where a stream with junk in
// front starts nor whether the length it reports comes from a Xing/Info/VBRI tag (exact) or from the file size
// and the first frame's bitrate (an estimate, wrong for VBR).
#pragma once

#include <cstddef>
#include <cstdint>

namespace autoglm {

struct mpeg_frame_header {
  bool valid = false;
  int version = 0;  // 10 = MPEG-1, 20 = MPEG-2, 25 = MPEG-2.5
  int layer = 0;    // 1..3
  int bitrate_kbps = 0;
  int sample_rate = 0;
  bool mono = false;
  bool crc = false;
  size_t frame_bytes = 0;
};

// The 4-byte header at p (free-format bitrate and reserved fields are invalid).
mpeg_frame_header mpeg_parse_frame_header(const uint8_t* p, size_t avail);
// Bytes of an ID3v2 tag at the start (header, body and footer), 0 when there is none.
size_t id3v2_tag_size(const uint8_t* d, size_t n);
// The first offset in the first 64 KiB where two consecutive valid frame headers sit; SIZE_MAX if none.
size_t mpeg_find_stream(const uint8_t* d, size_t n);
// Whether the first frame (after any ID3v2 tag) carries a Xing, Info or VBRI tag: the frame count is then exact.
bool mpeg_has_length_tag(const uint8_t* d, size_t n);

}  // namespace autoglm
