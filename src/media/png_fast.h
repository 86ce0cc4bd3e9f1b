// media/png_fast.h: the PNG that phones send as screenshots (8-bit RGB or RGBA, not interlaced) read without
// libpng (internal to media): the chunks walked and CRC-checked here, the IDAT stream inflated in one call of
// libdeflate (2-3x zlib's inflate, which is most of libpng's time on a 1080x2400 screenshot), the rows unfiltered
// here. Anything else (other colour types and depths, interlacing, any malformation, even a bad CRC in an
// ancillary chunk) returns false and the caller decodes the file with libpng: the same samples where this path
// succeeds, and libpng's own errors and fixes for the rest.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "media/image.h"

namespace autoglm::media_detail {

// On true: width x height pixels of `channels` (3: RGB, 4: RGBA) interleaved 8-bit samples in `samples`, rows
// without filter bytes. Dimensions over `lim` return false before anything is allocated (libpng then reports them).
bool png_fast_samples(const uint8_t* data, size_t size, const image_limits& lim, int& width, int& height,
                      int& channels, std::vector<uint8_t>& samples);

}  // namespace autoglm::media_detail
