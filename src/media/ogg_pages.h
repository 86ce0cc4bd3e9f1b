// media/ogg_pages.h: the Ogg page layout (RFC 3533), read just far enough to route a stream to its decoder and
// to tell a complete file from a truncated one — which neither libvorbisfile nor (from version to version)
// libsndfile reports: both quietly decode up to the last complete page.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace autoglm {

enum class ogg_codec { unknown, vorbis, opus, flac, speex, theora };

// The codec of the first page's first packet (its identification header); unknown when the page at offset 0 is
// incomplete or fails its checksum.
ogg_codec ogg_first_codec(const uint8_t* d, size_t n);
const char* ogg_codec_name(ogg_codec c);

// Walks the pages from the start as libogg reads them: junk between pages and pages that fail their checksum are
// skipped. `problem` is "" when the last page
// is complete and flagged end-of-stream, otherwise what is wrong ("the last page is cut off after 123 of 4096
// bytes", "the last page is not flagged end-of-stream"); `end` is where the last complete page ends (decoders are
// given the bytes up to there: libsndfile takes trailing junk for a missing end of stream).
struct ogg_scan {
  std::string problem;
  size_t end = 0;
  bool several_streams = false;  // pages of more than one serial number: a chained or multiplexed file
};
ogg_scan ogg_check_pages(const uint8_t* d, size_t n);

}  // namespace autoglm
