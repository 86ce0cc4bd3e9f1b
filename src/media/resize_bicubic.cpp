// media/resize_bicubic.cpp: bicubic resampling that reproduces PIL's Image.resize(BICUBIC) on 8-bit RGB exactly,
// and the variant torchvision runs on uint8 tensors (resize(antialias=True, BICUBIC), transformers 5.x default).
// Same algorithm as Pillow's ImagingResample (written here from its description, not copied):
//  - per output coordinate, a window of input samples around center = (i + 0.5) * scale; when downscaling the
//    cubic (a = -0.5) is stretched by scale, so the window is ceil(2 * scale) on each side;
//  - weights computed in double, normalized to sum 1, then turned into signed 22-bit fixed point;
//  - horizontal pass first (only on the rows the vertical pass needs), rounded and clamped to uint8, then the
//    vertical pass on that uint8 intermediate. Passes whose size does not change are skipped.
// torchvision (ATen's uint8 antialiased kernel) follows the same scheme but evaluates the cubic's outer piece in
// another order and stores the weights as int16 with a per-axis precision: the largest number of bits (< 22)
// at which the axis's biggest weight still fits, typically 14-15 bits instead of Pillow's 22.
#include <algorithm>
#include <cmath>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "autoglm/bulk_allocator.h"
#include "core/error.h"
#include "media/glm4v_preprocess.h"
#include "media/parallel_rows.h"

namespace autoglm {

namespace {

constexpr int k_precision_bits = 32 - 8 - 2;

enum class flavor { pillow, torch };

double cubic(double x, flavor f) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return f == flavor::pillow ? (((x - 5) * x + 8) * x - 4) * a : ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return 0.0;
}

// Fixed-point taps for resampling in_size samples to out_size: out i reads input [first[i], first[i] + count[i])
// (autoglm/types.h: resample_axis, the form a device takes them in too).
using taps = resample_axis;

taps make_taps(int in_size, int out_size, flavor f) {
  const double scale = static_cast<double>(in_size) / out_size;
  const double filter_scale = scale < 1.0 ? 1.0 : scale;
  const double support = 2.0 * filter_scale;
  taps t;
  t.in_size = in_size;
  t.out_size = out_size;
  t.precision = k_precision_bits;
  t.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  t.first.resize(out_size);
  t.count.resize(out_size);
  t.weight.assign(static_cast<size_t>(out_size) * t.ksize, 0);
  std::vector<double> w(static_cast<size_t>(out_size) * t.ksize, 0.0);
  double w_max = 0.0;
  const double inv_scale = 1.0 / filter_scale;
  for (int i = 0; i < out_size; ++i) {
    const double center = (i + 0.5) * scale;
    int lo = static_cast<int>(center - support + 0.5);  // truncation toward zero, as a C cast
    if (lo < 0) lo = 0;
    int hi = static_cast<int>(center + support + 0.5);
    if (hi > in_size) hi = in_size;
    const int n = std::min(hi - lo, t.ksize);  // ATen clamps rare off-by-one windows; Pillow never reaches it
    double* wi = &w[static_cast<size_t>(i) * t.ksize];
    double sum = 0.0;
    for (int k = 0; k < n; ++k) {
      const double v = cubic((static_cast<double>(k + lo) - center + 0.5) * inv_scale, f);
      wi[k] = v;
      sum += v;
    }
    if (sum != 0.0)
      for (int k = 0; k < n; ++k) {
        wi[k] /= sum;
        w_max = std::max(w_max, wi[k]);
      }
    t.first[i] = lo;
    t.count[i] = n;
  }
  if (f == flavor::torch) {
    // int16 weights: the largest precision whose doubled scale would still keep w_max below 2^15.
    int p = 0;
    for (; p < 22; ++p)
      if (static_cast<int>(0.5 + w_max * (1 << (p + 1))) >= (1 << 15)) break;
    t.precision = p;
  }
  const double one = static_cast<double>(1 << t.precision);
  for (size_t j = 0; j < w.size(); ++j) {
    // Round half away from zero into fixed point.
    const double v = f == flavor::torch ? w[j] * one : w[j];
    t.weight[j] = f == flavor::torch ? static_cast<int32_t>(v < 0 ? -0.5 + v : 0.5 + v)
                                     : static_cast<int32_t>(v < 0 ? -0.5 + v * one : 0.5 + v * one);
  }
  return t;
}

// Sums of products fit int32, as in Pillow (whose accumulators are int): the weights of one output sum to
// 2^precision and their absolute values to under 1.3 x that (the cubic's negative lobes), so |sum| <= 255 x 1.3 x
// 2^22 + 2^21 < 2^31 for Pillow's 22 bits, and far less for torchvision's int16 weights. int32 lets the compiler
// vectorize the vertical pass (8 lanes with AVX2) where int64 products stayed scalar.
inline uint8_t clip8(int32_t v, int precision) {
  if (v >= (int32_t{1} << precision << 8)) return 255;
  if (v <= 0) return 0;
  return static_cast<uint8_t>(v >> precision);
}

// One output pixel of the horizontal pass, all three channels, in scalar code.
inline void horizontal_pixel(const uint8_t* src, uint8_t* dst, int x, const taps& t) {
  const int32_t* w = &t.weight[static_cast<size_t>(x) * t.ksize];
  const uint8_t* s = src + static_cast<size_t>(t.first[x]) * 3;
  int32_t a0 = int32_t{1} << (t.precision - 1), a1 = a0, a2 = a0;
  for (int k = 0; k < t.count[x]; ++k, s += 3) {
    a0 += s[0] * w[k];
    a1 += s[1] * w[k];
    a2 += s[2] * w[k];
  }
  dst[x * 3 + 0] = clip8(a0, t.precision), dst[x * 3 + 1] = clip8(a1, t.precision);
  dst[x * 3 + 2] = clip8(a2, t.precision);
}

void horizontal_row(const uint8_t* src, uint8_t* dst, int in_w, int out_w, const taps& t) {
  for (int x = 0; x < out_w; ++x) horizontal_pixel(src, dst, x, t);
}

#if defined(__x86_64__) && defined(__GNUC__)
// The same row with SSE4.1: a pixel's three channels (and one byte of the next pixel, weighted but dropped) as four
// int32 lanes, one multiply-add per tap instead of three. Same integers, same rounding and clamping (an arithmetic
// shift then unsigned saturation is clip8), so the same bytes. Pixels whose window ends on the row's last input
// pixel stay scalar: their 4-byte load would pass the row's end.
__attribute__((target("sse4.1"))) void horizontal_row_sse41(const uint8_t* src, uint8_t* dst, int in_w, int out_w,
                                                            const taps& t) {
  const __m128i half = _mm_set1_epi32(int32_t{1} << (t.precision - 1));
  const __m128i shift = _mm_cvtsi32_si128(t.precision);
  for (int x = 0; x < out_w; ++x) {
    if (t.first[x] + t.count[x] >= in_w) {
      horizontal_pixel(src, dst, x, t);
      continue;
    }
    const int32_t* w = &t.weight[static_cast<size_t>(x) * t.ksize];
    const uint8_t* s = src + static_cast<size_t>(t.first[x]) * 3;
    __m128i acc = half;
    for (int k = 0; k < t.count[x]; ++k, s += 3) {
      int32_t four;
      std::memcpy(&four, s, 4);
      acc = _mm_add_epi32(acc, _mm_mullo_epi32(_mm_cvtepu8_epi32(_mm_cvtsi32_si128(four)), _mm_set1_epi32(w[k])));
    }
    const __m128i v = _mm_sra_epi32(acc, shift);
    const int32_t bytes = _mm_cvtsi128_si32(_mm_packus_epi16(_mm_packus_epi32(v, v), _mm_setzero_si128()));
    std::memcpy(dst + size_t(x) * 3, &bytes, 3);
  }
}
#endif

#if defined(__x86_64__) && defined(__GNUC__)
// Output pixels x and x + 1 in one AVX2 vector: lanes 0-3 are pixel x's window bytes (three channels and one
// dropped), lanes 4-7 pixel x + 1's, against their weights as pair_w lays them out ([out_w / 2][ksize][8]: each
// pixel's weight of tap k repeated over its four lanes, 0 past its count). Both pixels run max(count) taps: the extra
// taps weigh 0, so the sums are the SSE4.1 row's integers; one multiply-add per tap for six channels instead of three.
// A pair whose longest window (plus the dropped byte) would pass the row's end stays scalar.
__attribute__((target("avx2"))) void horizontal_row_avx2(const uint8_t* src, uint8_t* dst, int in_w, int out_w,
                                                         const taps& t, const int32_t* pair_w) {
  const __m256i half = _mm256_set1_epi32(int32_t{1} << (t.precision - 1));
  const __m128i shift = _mm_cvtsi32_si128(t.precision);
  int x = 0;
  for (; x + 1 < out_w; x += 2) {
    const int n = std::max(t.count[x], t.count[x + 1]);
    if (t.first[x] + n >= in_w || t.first[x + 1] + n >= in_w) {
      horizontal_pixel(src, dst, x, t);
      horizontal_pixel(src, dst, x + 1, t);
      continue;
    }
    const uint8_t* s0 = src + static_cast<size_t>(t.first[x]) * 3;
    const uint8_t* s1 = src + static_cast<size_t>(t.first[x + 1]) * 3;
    const int32_t* w = pair_w + static_cast<size_t>(x / 2) * t.ksize * 8;
    __m256i acc = half;
    for (int k = 0; k < n; ++k, s0 += 3, s1 += 3, w += 8) {
      int32_t a, b;
      std::memcpy(&a, s0, 4);
      std::memcpy(&b, s1, 4);
      const __m256i px = _mm256_cvtepu8_epi32(_mm_insert_epi32(_mm_cvtsi32_si128(a), b, 1));
      acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(px, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w))));
    }
    // clip8 per lane: arithmetic shift, then unsigned saturation (per 128-bit half: pixel x, then pixel x + 1).
    const __m256i v = _mm256_sra_epi32(acc, shift);
    const __m256i b8 = _mm256_packus_epi16(_mm256_packus_epi32(v, v), _mm256_setzero_si256());
    const int32_t p0 = _mm256_cvtsi256_si32(b8), p1 = _mm256_extract_epi32(b8, 4);
    std::memcpy(dst + size_t(x) * 3, &p0, 3);
    std::memcpy(dst + size_t(x) * 3 + 3, &p1, 3);
  }
  for (; x < out_w; ++x) horizontal_pixel(src, dst, x, t);
}
#endif

// out[y][x] = sum_k in[y + row_offset][first[x] + k] * w[x][k], for y in [0, out_h). simd: the SSE4.1 / AVX2 rows
// where the CPU has them (the same bytes as the scalar row; tests compare them).
void pass_horizontal(const uint8_t* in, int in_w, int row_offset, uint8_t* out, int out_w, int out_h, const taps& t,
                     bool simd) {
  const auto rows = [&](auto&& row_fn) {
    media_detail::parallel_rows(out_h, int64_t(out_w) * 3 * 4, [&](int64_t y0, int64_t y1) {
      for (int y = int(y0); y < int(y1); ++y)
        row_fn(in + (static_cast<size_t>(y) + row_offset) * in_w * 3, out + static_cast<size_t>(y) * out_w * 3);
    });
  };
#if defined(__x86_64__) && defined(__GNUC__)
  static const bool avx2 = __builtin_cpu_supports("avx2"), sse41 = __builtin_cpu_supports("sse4.1");
  if (simd && avx2) {
    std::vector<int32_t> pair_w(static_cast<size_t>(out_w / 2) * t.ksize * 8);
    for (int x = 0; x + 1 < out_w; x += 2)
      for (int k = 0; k < t.ksize; ++k)
        for (int l = 0; l < 8; ++l)
          pair_w[(static_cast<size_t>(x / 2) * t.ksize + k) * 8 + l] =
              t.weight[static_cast<size_t>(x + l / 4) * t.ksize + k];
    rows([&](const uint8_t* s, uint8_t* d) { horizontal_row_avx2(s, d, in_w, out_w, t, pair_w.data()); });
    return;
  }
  if (simd && sse41) {
    rows([&](const uint8_t* s, uint8_t* d) { horizontal_row_sse41(s, d, in_w, out_w, t); });
    return;
  }
#endif
  rows([&](const uint8_t* s, uint8_t* d) { horizontal_row(s, d, in_w, out_w, t); });
}

// acc[i] += src[i] * w over a row: the vertical pass's inner loop. On x86 also compiled for AVX2 and picked at load
// time (the default build targets baseline x86-64, whose SSE2 has no 32-bit vector multiply).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("avx2", "default")))
#endif
void accumulate_row(int32_t* acc, const uint8_t* src, int32_t w, size_t n) {
  for (size_t i = 0; i < n; ++i) acc[i] += src[i] * w;
}

// dst[i] = clip8(acc[i]) written branch-free so that it vectorizes: for v >= 2^(precision + 8) the shift is >= 256,
// for v <= 0 it is <= 0, and in between it is the byte itself, so clamping the shift to [0, 255] is clip8.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("avx2", "default")))
#endif
void store_clipped_row(const int32_t* acc, uint8_t* dst, size_t n, int precision) {
  for (size_t i = 0; i < n; ++i) dst[i] = static_cast<uint8_t>(std::clamp(acc[i] >> precision, 0, 255));
}

// out[y][x] = sum_k in[first[y] - row_base + k][x] * w[y][k].
void pass_vertical(const uint8_t* in, int w, int row_base, uint8_t* out, int out_h, const taps& t) {
  const size_t stride = static_cast<size_t>(w) * 3;
  media_detail::parallel_rows(out_h, int64_t(stride) * 4, [&](int64_t y0, int64_t y1) {
    std::vector<int32_t> acc(stride);
    for (int y = int(y0); y < int(y1); ++y) {
      const int32_t* wt = &t.weight[static_cast<size_t>(y) * t.ksize];
      std::fill(acc.begin(), acc.end(), int32_t{1} << (t.precision - 1));
      for (int k = 0; k < t.count[y]; ++k) {
        const uint8_t* src = in + static_cast<size_t>(t.first[y] - row_base + k) * stride;
        accumulate_row(acc.data(), src, wt[k], stride);
      }
      store_clipped_row(acc.data(), out + static_cast<size_t>(y) * stride, stride, t.precision);
    }
  });
}

image_rgb8 resize_separable(const image_rgb8& src, int32_t width, int32_t height, flavor f, bool simd = true) {
  AG_CHECK(src.width > 0 && src.height > 0 && src.rgb.size() == static_cast<size_t>(src.width) * src.height * 3,
           "resize_bicubic: malformed source image");
  if (width <= 0 || height <= 0)
    throw error("resize: invalid target size " + std::to_string(width) + "x" + std::to_string(height));
  const bool need_h = width != src.width, need_v = height != src.height;
  if (!need_h && !need_v) return src;
  image_rgb8 out;
  out.width = width, out.height = height;
  out.rgb.resize(static_cast<size_t>(width) * height * 3);
  if (!need_v) {
    pass_horizontal(src.rgb.data(), src.width, 0, out.rgb.data(), width, height, make_taps(src.width, width, f), simd);
    return out;
  }
  const taps tv = make_taps(src.height, height, f);
  if (!need_h) {
    pass_vertical(src.rgb.data(), width, 0, out.rgb.data(), height, tv);
    return out;
  }
  // Horizontal pass only over the input rows the vertical taps touch.
  const int row_first = tv.first.front();
  const int row_last = tv.first.back() + tv.count.back();
  const int n_rows = row_last - row_first;
  // Sized without zeroing (every byte is written by the pass): bulk_allocator.h says what that saves.
  std::vector<uint8_t, bulk_allocator<uint8_t>> tmp(static_cast<size_t>(width) * n_rows * 3);
  pass_horizontal(src.rgb.data(), src.width, row_first, tmp.data(), width, n_rows, make_taps(src.width, width, f),
                  simd);
  pass_vertical(tmp.data(), width, row_first, out.rgb.data(), height, tv);
  return out;
}

}  // namespace

image_rgb8 resize_bicubic(const image_rgb8& src, int32_t width, int32_t height) {
  return resize_separable(src, width, height, flavor::pillow);
}

resample_axis bicubic_resample_axis(int32_t in_size, int32_t out_size, bool torchvision) {
  if (in_size <= 0 || out_size <= 0)
    throw error("resize: invalid sizes " + std::to_string(in_size) + " -> " + std::to_string(out_size));
  resample_axis a;
  a.in_size = in_size;
  a.out_size = out_size;
  if (in_size == out_size) return a;  // no pass
  return make_taps(in_size, out_size, torchvision ? flavor::torch : flavor::pillow);
}

image_rgb8 resize_bicubic_torchvision(const image_rgb8& src, int32_t width, int32_t height) {
  return resize_separable(src, width, height, flavor::torch);
}

namespace media_detail {

image_rgb8 resize_bicubic_scalar(const image_rgb8& src, int32_t width, int32_t height, bool torchvision) {
  return resize_separable(src, width, height, torchvision ? flavor::torch : flavor::pillow, false);
}

}  // namespace media_detail

}  // namespace autoglm
