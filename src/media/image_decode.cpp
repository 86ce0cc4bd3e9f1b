// media/image_decode.cpp: PNG (libpng; 8-bit RGB / RGBA screenshots through png_fast.h first), JPEG
// (libjpeg-turbo) and WebP (libwebp) to 8-bit RGB.
// Pixels match PIL's Image.open(...).convert("RGB") (plus vLLM's RGBA-over-white compositing, see alpha_mode):
// 16-bit samples keep their high byte, palettes expand, grey replicates, EXIF orientation is ignored.
// libpng/libjpeg report fatal errors by longjmp; each setjmp lives in a function whose frame owns no C++ objects
// with destructors, and the library structs are released by RAII guards in the caller, so errors neither leak
// nor skip destructors. probe_image reads only the header (PNG chunks before IDAT, JPEG markers before the first
// scan, the WebP frame header), so limits and token budgets can be checked before any pixel buffer exists.
#include <algorithm>
#include <climits>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <string>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>
#include <webp/decode.h>

#include "core/error.h"
#include "core/file_io.h"
#include "media/image.h"
#include "media/png_fast.h"

namespace autoglm {

namespace {

void check_dims(const char* fmt, int64_t w, int64_t h, const image_limits& lim) {
  if (w <= 0 || h <= 0)
    throw error(std::string(fmt) + ": invalid dimensions " + std::to_string(w) + "x" + std::to_string(h));
  if (w > lim.max_side || h > lim.max_side || w * h > lim.max_pixels)
    throw error(std::string(fmt) + ": image is " + std::to_string(w) + "x" + std::to_string(h) +
                ", over the limits (max side " + std::to_string(lim.max_side) + ", max pixels " +
                std::to_string(lim.max_pixels) + ")");
}

// PIL's paste(mask=alpha) over white: DIV255(src * a + 255 * (255 - a)), exact rounding.
inline uint8_t over_white(uint32_t src, uint32_t a) {
  uint32_t t = src * a + 255u * (255u - a) + 128u;
  return static_cast<uint8_t>(((t >> 8) + t) >> 8);
}

// Converts n pixels of 1..4 interleaved 8-bit channels (G, GA, RGB, RGBA) to RGB.
void to_rgb(const uint8_t* in, int channels, bool composite, size_t n, uint8_t* out) {
  for (size_t i = 0; i < n; ++i, in += channels, out += 3) {
    switch (channels) {
      case 1:
      case 2:
        out[0] = out[1] = out[2] = in[0];
        break;
      case 3:
        out[0] = in[0], out[1] = in[1], out[2] = in[2];
        break;
      default:
        if (composite) {
          out[0] = over_white(in[0], in[3]), out[1] = over_white(in[1], in[3]), out[2] = over_white(in[2], in[3]);
        } else {
          out[0] = in[0], out[1] = in[1], out[2] = in[2];
        }
    }
  }
}

// ------------------------------------------------------------------------------------------------------------- PNG

struct png_ctx {
  const uint8_t* data;
  size_t size;
  size_t pos;
  const image_limits* limits;
  std::vector<uint8_t>* rows;  // decoded rows, channels per pixel as libpng delivers them
  int width, height, channels, color_type;
  char message[256];
  char warning[128];  // last libpng warning: explains a following generic error such as "Invalid IHDR data"
  bool over_limits;
};

void png_read_cb(png_structp png, png_bytep out, png_size_t n) {
  auto* ctx = static_cast<png_ctx*>(png_get_io_ptr(png));
  if (n > ctx->size - ctx->pos) png_error(png, "truncated file (read beyond the end of the data)");
  std::memcpy(out, ctx->data + ctx->pos, n);
  ctx->pos += n;
}

void png_error_cb(png_structp png, png_const_charp msg) {
  auto* ctx = static_cast<png_ctx*>(png_get_error_ptr(png));
  if (ctx->warning[0])
    std::snprintf(ctx->message, sizeof ctx->message, "%s (%s)", msg, ctx->warning);
  else
    std::snprintf(ctx->message, sizeof ctx->message, "%s", msg);
  png_longjmp(png, 1);
}

void png_warning_cb(png_structp png, png_const_charp msg) {
  auto* ctx = static_cast<png_ctx*>(png_get_error_ptr(png));
  std::snprintf(ctx->warning, sizeof ctx->warning, "%s", msg);
}

// Returns false after a libpng error (message in ctx). No C++ objects with destructors in this frame.
bool png_decode_core(png_structp png, png_infop info, png_ctx* ctx) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_read_fn(png, ctx, png_read_cb);
  // libpng's own width/height cap stays at its default (1,000,000); our limits are checked right after the
  // header, before any row buffer exists, so the error can name the dimensions.
  png_set_chunk_malloc_max(png, 16u << 20);  // bounds ancillary chunks (iCCP, zTXt, ...)
  png_read_info(png, info);
  png_uint_32 w = 0, h = 0;
  int depth = 0, color = 0, interlace = 0;
  png_get_IHDR(png, info, &w, &h, &depth, &color, &interlace, nullptr, nullptr);
  const int64_t w64 = w, h64 = h;
  if (w64 > ctx->limits->max_side || h64 > ctx->limits->max_side || w64 * h64 > ctx->limits->max_pixels) {
    ctx->width = static_cast<int>(w), ctx->height = static_cast<int>(h);
    ctx->over_limits = true;
    return false;
  }
  // No tRNS_to_alpha: PIL's convert("RGB") ignores tRNS, and vLLM only composites true RGBA images.
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (depth == 16) png_set_strip_16(png);  // keeps the high byte, like PIL's ";16B" raw modes
  const int n_passes = png_set_interlace_handling(png);
  png_read_update_info(png, info);
  const int channels = png_get_channels(png, info);
  const size_t rowbytes = png_get_rowbytes(png, info);
  if (channels < 1 || channels > 4 || rowbytes != static_cast<size_t>(w) * channels) {
    std::snprintf(ctx->message, sizeof ctx->message, "unexpected row layout (%d channels)", channels);
    return false;
  }
  ctx->rows->resize(rowbytes * h);
  for (int pass = 0; pass < n_passes; ++pass)
    for (png_uint_32 y = 0; y < h; ++y) png_read_row(png, ctx->rows->data() + rowbytes * y, nullptr);
  png_read_end(png, nullptr);
  ctx->width = static_cast<int>(w), ctx->height = static_cast<int>(h), ctx->channels = channels;
  ctx->color_type = color;
  return true;
}

// Reads the chunks up to the first IDAT (libpng's png_read_info): the size without inflating any pixel data.
bool png_probe_core(png_structp png, png_infop info, png_ctx* ctx) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_read_fn(png, ctx, png_read_cb);
  png_set_chunk_malloc_max(png, 16u << 20);
  png_read_info(png, info);
  png_uint_32 w = 0, h = 0;
  int depth = 0, color = 0;
  png_get_IHDR(png, info, &w, &h, &depth, &color, nullptr, nullptr, nullptr);
  ctx->width = static_cast<int>(std::min<png_uint_32>(w, INT32_MAX));
  ctx->height = static_cast<int>(std::min<png_uint_32>(h, INT32_MAX));
  return true;
}

image_info probe_png(const uint8_t* data, size_t size) {
  png_ctx ctx{};
  ctx.data = data, ctx.size = size;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, png_error_cb, png_warning_cb);
  if (!png) throw error("png: out of memory");
  png_infop info = png_create_info_struct(png);
  struct guard {
    png_structp* p;
    png_infop* i;
    ~guard() { png_destroy_read_struct(p, i, nullptr); }
  } g{&png, &info};
  if (!info) throw error("png: out of memory");
  if (!png_probe_core(png, info, &ctx)) throw error(std::string("png: ") + ctx.message);
  return {image_format::png, ctx.width, ctx.height};
}

image_rgb8 decode_png(const uint8_t* data, size_t size, const image_limits& lim) {
  {
    // The screenshot case (8-bit RGB / RGBA, not interlaced) without libpng: libdeflate inflates 2-3x faster.
    int w = 0, h = 0, ch = 0;
    std::vector<uint8_t> samples;
    if (media_detail::png_fast_samples(data, size, lim, w, h, ch, samples)) {
      image_rgb8 img;
      img.width = w, img.height = h;
      if (ch == 3) {
        img.rgb = std::move(samples);
        return img;
      }
      img.rgb.resize(static_cast<size_t>(w) * h * 3);
      to_rgb(samples.data(), 4, lim.alpha == alpha_mode::composite_rgba_white, static_cast<size_t>(w) * h,
             img.rgb.data());
      return img;
    }
  }
  std::vector<uint8_t> rows;
  png_ctx ctx{};
  ctx.data = data, ctx.size = size, ctx.limits = &lim, ctx.rows = &rows;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, png_error_cb, png_warning_cb);
  if (!png) throw error("png: out of memory");
  png_infop info = png_create_info_struct(png);
  struct guard {
    png_structp* p;
    png_infop* i;
    ~guard() { png_destroy_read_struct(p, i, nullptr); }
  } g{&png, &info};
  if (!info) throw error("png: out of memory");
  const bool ok = png_decode_core(png, info, &ctx);
  if (ctx.over_limits) check_dims("png", ctx.width, ctx.height, lim);
  if (!ok) throw error(std::string("png: ") + ctx.message);
  image_rgb8 img;
  img.width = ctx.width, img.height = ctx.height;
  if (ctx.channels == 3) {  // already RGB: hand the buffer over instead of holding two copies of the image
    img.rgb = std::move(rows);
    return img;
  }
  img.rgb.resize(static_cast<size_t>(img.width) * img.height * 3);
  const bool composite = lim.alpha == alpha_mode::composite_rgba_white && ctx.color_type == PNG_COLOR_TYPE_RGBA;
  to_rgb(rows.data(), ctx.channels, composite, static_cast<size_t>(img.width) * img.height, img.rgb.data());
  return img;
}

// ------------------------------------------------------------------------------------------------------------ JPEG

struct jpeg_err_ctx {
  jpeg_error_mgr mgr;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX + 32];
};

void jpeg_error_exit_cb(j_common_ptr cinfo) {
  auto* e = reinterpret_cast<jpeg_err_ctx*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, e->message);
  std::longjmp(e->jump, 1);
}

// PIL refuses truncated JPEGs ("image file is truncated"); libjpeg only warns and pads with grey. Make it fatal.
void jpeg_emit_message_cb(j_common_ptr cinfo, int level) {
  if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
    auto* e = reinterpret_cast<jpeg_err_ctx*>(cinfo->err);
    std::snprintf(e->message, sizeof e->message, "truncated file (premature end of JPEG data)");
    std::longjmp(e->jump, 1);
  }
}

struct jpeg_ctx {
  const image_limits* limits;
  std::vector<uint8_t>* pixels;  // out_color_components interleaved
  int width, height, components;
  bool cmyk, over_limits;
};

bool jpeg_decode_core(jpeg_decompress_struct* cinfo, jpeg_err_ctx* err, const uint8_t* data, size_t size,
                      jpeg_ctx* ctx) {
  if (setjmp(err->jump)) return false;
  jpeg_create_decompress(cinfo);
  jpeg_mem_src(cinfo, const_cast<unsigned char*>(data), static_cast<unsigned long>(size));
  jpeg_read_header(cinfo, TRUE);
  const int64_t w = cinfo->image_width, h = cinfo->image_height;
  if (w > ctx->limits->max_side || h > ctx->limits->max_side || w * h > ctx->limits->max_pixels || w <= 0 ||
      h <= 0) {
    ctx->width = static_cast<int>(w), ctx->height = static_cast<int>(h), ctx->over_limits = true;
    return false;
  }
  ctx->cmyk = cinfo->jpeg_color_space == JCS_CMYK || cinfo->jpeg_color_space == JCS_YCCK;
  cinfo->out_color_space = ctx->cmyk ? JCS_CMYK : JCS_RGB;  // grey -> RGB replicates, like PIL's L -> RGB
  jpeg_start_decompress(cinfo);
  const int comps = cinfo->output_components;
  const size_t stride = static_cast<size_t>(cinfo->output_width) * comps;
  ctx->pixels->resize(stride * cinfo->output_height);
  while (cinfo->output_scanline < cinfo->output_height) {
    JSAMPROW row = ctx->pixels->data() + stride * cinfo->output_scanline;
    jpeg_read_scanlines(cinfo, &row, 1);
  }
  jpeg_finish_decompress(cinfo);
  ctx->width = static_cast<int>(cinfo->output_width), ctx->height = static_cast<int>(cinfo->output_height);
  ctx->components = comps;
  return true;
}

// jpeg_read_header parses the markers up to the first scan (SOF gives the size); no entropy decoding happens.
bool jpeg_probe_core(jpeg_decompress_struct* cinfo, jpeg_err_ctx* err, const uint8_t* data, size_t size,
                     jpeg_ctx* ctx) {
  if (setjmp(err->jump)) return false;
  jpeg_create_decompress(cinfo);
  jpeg_mem_src(cinfo, const_cast<unsigned char*>(data), static_cast<unsigned long>(size));
  jpeg_read_header(cinfo, TRUE);
  ctx->width = static_cast<int>(std::min<JDIMENSION>(cinfo->image_width, INT32_MAX));
  ctx->height = static_cast<int>(std::min<JDIMENSION>(cinfo->image_height, INT32_MAX));
  return true;
}

image_info probe_jpeg(const uint8_t* data, size_t size) {
  jpeg_ctx ctx{};
  jpeg_decompress_struct cinfo{};
  jpeg_err_ctx err{};
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = jpeg_error_exit_cb;
  err.mgr.emit_message = jpeg_emit_message_cb;
  struct guard {
    jpeg_decompress_struct* c;
    ~guard() { jpeg_destroy_decompress(c); }
  } g{&cinfo};
  if (!jpeg_probe_core(&cinfo, &err, data, size, &ctx)) throw error(std::string("jpeg: ") + err.message);
  return {image_format::jpeg, ctx.width, ctx.height};
}

image_rgb8 decode_jpeg(const uint8_t* data, size_t size, const image_limits& lim) {
  std::vector<uint8_t> pixels;
  jpeg_ctx ctx{};
  ctx.limits = &lim, ctx.pixels = &pixels;
  jpeg_decompress_struct cinfo{};
  jpeg_err_ctx err{};
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = jpeg_error_exit_cb;
  err.mgr.emit_message = jpeg_emit_message_cb;
  struct guard {
    jpeg_decompress_struct* c;
    ~guard() { jpeg_destroy_decompress(c); }
  } g{&cinfo};
  const bool ok = jpeg_decode_core(&cinfo, &err, data, size, &ctx);
  if (ctx.over_limits) check_dims("jpeg", ctx.width, ctx.height, lim);
  if (!ok) throw error(std::string("jpeg: ") + err.message);
  image_rgb8 img;
  img.width = ctx.width, img.height = ctx.height;
  const size_t n = static_cast<size_t>(img.width) * img.height;
  img.rgb.resize(n * 3);
  if (ctx.cmyk) {
    // PIL reads Adobe CMYK as inverted ("CMYK;I"), then cmyk2rgb: out = clip(nk - nk * c / 255), nk = 255 - k.
    // With the inversion, PIL's c = 255 - c_jpeg and nk = k_jpeg.
    const uint8_t* in = pixels.data();
    for (size_t i = 0; i < n; ++i, in += 4) {
      const int nk = in[3];
      for (int c = 0; c < 3; ++c) {
        const int cc = 255 - in[c];
        int t = cc * nk + 128;
        const int v = nk - (((t >> 8) + t) >> 8);
        img.rgb[i * 3 + c] = static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
      }
    }
  } else if (ctx.components == 3) {
    img.rgb = std::move(pixels);
  } else {
    to_rgb(pixels.data(), ctx.components, false, n, img.rgb.data());
  }
  return img;
}

// ------------------------------------------------------------------------------------------------------------ WebP

const char* webp_status_name(VP8StatusCode st) {
  switch (st) {
    case VP8_STATUS_OUT_OF_MEMORY: return "out of memory";
    case VP8_STATUS_INVALID_PARAM: return "invalid parameter";
    case VP8_STATUS_BITSTREAM_ERROR: return "bitstream error";
    case VP8_STATUS_UNSUPPORTED_FEATURE: return "unsupported feature";
    default: return "error";
  }
}

// WebPGetFeatures reads the RIFF header and the VP8X / VP8 / VP8L frame header only. It also refuses a VP8X
// canvas whose size differs from the frame's (a header that lies about the size is caught here).
WebPBitstreamFeatures webp_features(const uint8_t* data, size_t size) {
  WebPBitstreamFeatures f;
  const VP8StatusCode st = WebPGetFeatures(data, size, &f);
  if (st == VP8_STATUS_NOT_ENOUGH_DATA) throw error("webp: truncated file");
  if (st != VP8_STATUS_OK)
    throw error(std::string("webp: invalid header (") + webp_status_name(st) +
                "; e.g. a VP8X canvas size that is not the frame's)");
  if (f.has_animation) throw error("webp: animated WebP is not supported");
  return f;
}

image_info probe_webp(const uint8_t* data, size_t size) {
  const WebPBitstreamFeatures f = webp_features(data, size);
  return {image_format::webp, f.width, f.height};
}

image_rgb8 decode_webp(const uint8_t* data, size_t size, const image_limits& lim) {
  const WebPBitstreamFeatures f = webp_features(data, size);
  check_dims("webp", f.width, f.height, lim);
  image_rgb8 img;
  img.width = f.width, img.height = f.height;
  const size_t n = static_cast<size_t>(f.width) * f.height;
  if (!f.has_alpha) {
    img.rgb.resize(n * 3);
    if (!WebPDecodeRGBInto(data, size, img.rgb.data(), img.rgb.size(), f.width * 3))
      throw error("webp: corrupt or truncated image data");
    return img;
  }
  std::vector<uint8_t> rgba(n * 4);
  if (!WebPDecodeRGBAInto(data, size, rgba.data(), rgba.size(), f.width * 4))
    throw error("webp: corrupt or truncated image data");
  img.rgb.resize(n * 3);
  to_rgb(rgba.data(), 4, lim.alpha == alpha_mode::composite_rgba_white, n, img.rgb.data());
  return img;
}

}  // namespace

image_format sniff_image_format(const uint8_t* d, size_t n) {
  auto has = [&](size_t off, const char* magic, size_t len) { return n >= off + len && !std::memcmp(d + off, magic, len); };
  if (has(0, "\x89PNG\r\n\x1a\n", 8)) return image_format::png;
  if (has(0, "\xff\xd8\xff", 3)) return image_format::jpeg;
  if (has(0, "RIFF", 4) && has(8, "WEBP", 4)) return image_format::webp;
  if (has(0, "GIF87a", 6) || has(0, "GIF89a", 6)) return image_format::gif;
  if (has(0, "BM", 2)) return image_format::bmp;
  if (has(0, "II*\0", 4) || has(0, "MM\0*", 4)) return image_format::tiff;
  if (has(4, "ftyp", 4)) return image_format::heif;
  if (has(0, "\0\0\1\0", 4)) return image_format::ico;
  return image_format::unknown;
}

const char* image_format_name(image_format f) {
  switch (f) {
    case image_format::png: return "PNG";
    case image_format::jpeg: return "JPEG";
    case image_format::webp: return "WebP";
    case image_format::gif: return "GIF";
    case image_format::bmp: return "BMP";
    case image_format::tiff: return "TIFF";
    case image_format::heif: return "HEIF/AVIF";
    case image_format::ico: return "ICO";
    default: return "unknown";
  }
}

namespace {

// The checks every entry point shares: non-empty, under the byte limit, a supported format.
image_format checked_format(const uint8_t* data, size_t size, const image_limits& limits) {
  if (size == 0 || data == nullptr) throw error("image: empty data");
  if (size > limits.max_file_bytes)
    throw error("image: file is " + std::to_string(size) + " bytes, over the limit of " +
                std::to_string(limits.max_file_bytes));
  const image_format f = sniff_image_format(data, size);
  switch (f) {
    case image_format::png:
    case image_format::jpeg:
    case image_format::webp: return f;
    case image_format::unknown: throw error("image: unrecognized format (supported: PNG, JPEG, WebP)");
    default:
      throw error(std::string("image: ") + image_format_name(f) + " is not supported (supported: PNG, JPEG, WebP)");
  }
}

}  // namespace

image_info probe_image(const uint8_t* data, size_t size, const image_limits& limits) {
  image_info info;
  switch (checked_format(data, size, limits)) {
    case image_format::png: info = probe_png(data, size); break;
    case image_format::jpeg: info = probe_jpeg(data, size); break;
    default: info = probe_webp(data, size); break;
  }
  check_dims(image_format_name(info.format), info.width, info.height, limits);
  return info;
}

image_rgb8 decode_image(const uint8_t* data, size_t size, const image_limits& limits) {
  switch (checked_format(data, size, limits)) {
    case image_format::png: return decode_png(data, size, limits);
    case image_format::jpeg: return decode_jpeg(data, size, limits);
    default: return decode_webp(data, size, limits);
  }
}

image_rgb8 decode_image(const uint8_t* data, size_t size, const image_info& probed, const image_limits& limits) {
  image_rgb8 img = decode_image(data, size, limits);
  if (img.width != probed.width || img.height != probed.height)
    throw error(std::string("image: the ") + image_format_name(probed.format) + " header declares " +
                std::to_string(probed.width) + "x" + std::to_string(probed.height) +
                " but the image data decodes to " + std::to_string(img.width) + "x" + std::to_string(img.height));
  return img;
}

image_rgb8 decode_image_file(const std::string& path, const image_limits& limits) {
  // read_regular_file refuses FIFOs and devices and stops at the byte limit (its error names the path).
  const std::string bytes = read_regular_file(path, limits.max_file_bytes);
  try {
    return decode_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), limits);
  } catch (const error& e) {
    throw error("'" + path + "': " + e.what());
  }
}

}  // namespace autoglm
