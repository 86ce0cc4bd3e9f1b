// media/image.h: decoded images and how they get in — PNG/JPEG/WebP header probing and decoding (libpng,
// libjpeg-turbo, libwebp) with limits checked before any pixel allocation, a strict base64 decoder, data-URI
// parsing and a content hash.
// Colour conversion follows what the reference stack hands to Glm4vImageProcessor (see alpha_mode).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace autoglm {

// Interleaved 8-bit RGB, row-major: rgb[(y * width + x) * 3 + c].
struct image_rgb8 {
  int32_t width = 0, height = 0;
  std::vector<uint8_t> rgb;
};

// How an alpha channel becomes RGB.
//  - composite_rgba_white: what vLLM does before calling the HF processor (convert_image_mode: a mode-"RGBA" image
//    is pasted over white with its alpha as mask; every other mode, e.g. LA or palette+tRNS, goes through PIL
//    convert("RGB"), which drops alpha). This is the serving path of AutoGLM, hence the default.
//  - drop: what transformers 5.x convert_to_rgb does on its own (PIL convert("RGB") ignores alpha everywhere).
enum class alpha_mode { composite_rgba_white, drop };

struct image_limits {
  size_t max_file_bytes = 32u << 20;
  int32_t max_side = 16384;
  int64_t max_pixels = 64'000'000;
  alpha_mode alpha = alpha_mode::composite_rgba_white;
};

enum class image_format { unknown, png, jpeg, webp, gif, bmp, tiff, heif, ico };
image_format sniff_image_format(const uint8_t* data, size_t size);
const char* image_format_name(image_format f);

struct image_info {
  image_format format = image_format::unknown;
  int32_t width = 0, height = 0;
};

// The size of an encoded image from its header alone (PNG IHDR, JPEG SOF, WebP VP8X/VP8/VP8L), nothing decoded:
// cost and memory do not depend on the pixel count. Applies all limits (bytes, side, pixels) and throws
// autoglm::error like decode_image for unsupported formats, truncated headers and anything over the limits.
image_info probe_image(const uint8_t* data, size_t size, const image_limits& limits = {});

// Throws autoglm::error for unsupported formats, corrupt/truncated data and anything over the limits.
image_rgb8 decode_image(const uint8_t* data, size_t size, const image_limits& limits = {});
// Same, and the decoded size must be the one probe_image reported (a header that lies is an error).
image_rgb8 decode_image(const uint8_t* data, size_t size, const image_info& probed, const image_limits& limits);
// Regular files only (core/file_io.h), at most limits.max_file_bytes.
image_rgb8 decode_image_file(const std::string& path, const image_limits& limits = {});

// Standard or url-safe alphabet, padding optional (but must be correct when present), ASCII whitespace ignored.
// Any other character, misplaced '=' or an impossible length throws autoglm::error.
std::vector<uint8_t> base64_decode(std::string_view text);
// Standard alphabet with padding.
std::string base64_encode(const uint8_t* data, size_t size);
// Bytes base64_decode(text) would return, counted without decoding or allocating (text need not be valid).
size_t base64_decoded_size(std::string_view text);
// "data:image/<type>;base64,<payload>" or a bare base64 string -> the encoded file's bytes. A payload that would
// decode to more than max_bytes is refused before anything is decoded or allocated.
std::vector<uint8_t> decode_image_reference(std::string_view base64_or_data_uri, size_t max_bytes = SIZE_MAX);

// 64-bit FNV-1a over (width, height, pixels): identifies identical images (e.g. for caching vision embeddings).
uint64_t hash_image(const image_rgb8& img);

}  // namespace autoglm
