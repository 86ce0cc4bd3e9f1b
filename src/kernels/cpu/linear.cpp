// kernels/cpu/linear.cpp: the LINEAR kernel (see linear.h): AVX2 decode/prefill tiles and the portable tile.
#include "kernels/cpu/linear.h"

#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "core/aligned_buffer.h"
#include "core/error.h"
#include "kernels/cpu/convert.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace autoglm::cpu {

namespace {

constexpr int64_t tile_rows = 4;  // W rows per tile
constexpr int64_t x_rows = 3;     // x rows per register tile (prefill path)

// W [n, k] as the tiles see it: rows in the storage dtype, addressed through the row stride in bytes.
struct wrows {
  dtype type;
  const uint8_t* data;
  int64_t row_bytes;
  const void* row_ptr(int64_t r) const { return data + r * row_bytes; }
};

// Generic (portable) tile: converts W rows to fp32 and dots them with every x row.
void tile_generic(const float* x, int64_t xs, int64_t m, int64_t k, const wrows& w, int64_t n0, int64_t nr, const float* bias,
                  float* y, int64_t ys, float* wbuf) {
  for (int64_t r = 0; r < nr; ++r) convert_to_f32(w.type, w.row_ptr(n0 + r), wbuf + r * k, k);
  for (int64_t i = 0; i < m; ++i) {
    const float* xi = x + i * xs;
    for (int64_t r = 0; r < nr; ++r) {
      const float* wr = wbuf + r * k;
      float acc = 0.0f;
      for (int64_t j = 0; j < k; ++j) acc += xi[j] * wr[j];
      y[i * ys + n0 + r] = acc + (bias ? bias[n0 + r] : 0.0f);
    }
  }
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) inline float hsum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
  return _mm_cvtss_f32(lo);
}

template <dtype T>
__attribute__((target("avx2,fma,f16c"))) inline __m256 load8(const void* p, int64_t j) {
  if constexpr (T == dtype::F32) {
    return _mm256_loadu_ps(static_cast<const float*>(p) + j);
  } else if constexpr (T == dtype::BF16) {
    __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(p) + j)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
  } else {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(p) + j)));
  }
}

template <dtype T>
inline float load1(const void* p, int64_t j) {
  if constexpr (T == dtype::F32) return static_cast<const float*>(p)[j];
  else if constexpr (T == dtype::BF16) return bf16_to_f32(static_cast<const uint16_t*>(p)[j]);
  else return f16_to_f32(static_cast<const uint16_t*>(p)[j]);
}

// Decode path: 4 W rows straight from storage, each x row in turn. Streams W exactly once per x row.
template <dtype T>
__attribute__((target("avx2,fma,f16c"))) void tile_fused(const float* x, int64_t xs, int64_t m, int64_t k, const wrows& w,
                                                         int64_t n0, int64_t nr, const float* bias, float* y, int64_t ys) {
  const void* rows[4];
  for (int64_t r = 0; r < 4; ++r) rows[r] = w.row_ptr(n0 + std::min(r, nr - 1));
  const int64_t k8 = k & ~int64_t(7);
  for (int64_t i = 0; i < m; ++i) {
    const float* xi = x + i * xs;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    for (int64_t j = 0; j < k8; j += 8) {
      __m256 xv = _mm256_loadu_ps(xi + j);
      a0 = _mm256_fmadd_ps(xv, load8<T>(rows[0], j), a0);
      a1 = _mm256_fmadd_ps(xv, load8<T>(rows[1], j), a1);
      a2 = _mm256_fmadd_ps(xv, load8<T>(rows[2], j), a2);
      a3 = _mm256_fmadd_ps(xv, load8<T>(rows[3], j), a3);
    }
    float s[4] = {hsum(a0), hsum(a1), hsum(a2), hsum(a3)};
    for (int64_t j = k8; j < k; ++j)
      for (int r = 0; r < 4; ++r) s[r] += xi[j] * load1<T>(rows[r], j);
    for (int64_t r = 0; r < nr; ++r) y[i * ys + n0 + r] = s[r] + (bias ? bias[n0 + r] : 0.0f);
  }
}

// Prefill path: W tile converted once to fp32 (wbuf [4, k]); 3 x rows x 4 W rows = 12 accumulators.
__attribute__((target("avx2,fma,f16c"))) void tile_blocked(const float* x, int64_t xs, int64_t m, int64_t k, const wrows& w,
                                                           int64_t n0, int64_t nr, const float* bias, float* y,
                                                           int64_t ys, float* wbuf) {
  for (int64_t r = 0; r < 4; ++r) convert_to_f32(w.type, w.row_ptr(n0 + std::min(r, nr - 1)), wbuf + r * k, k);
  const float* w0 = wbuf;
  const float* w1 = wbuf + k;
  const float* w2 = wbuf + 2 * k;
  const float* w3 = wbuf + 3 * k;
  const int64_t k8 = k & ~int64_t(7);
  int64_t i = 0;
  for (; i + x_rows <= m; i += x_rows) {
    const float* xa = x + i * xs;
    const float* xb = xa + xs;
    const float* xc = xb + xs;
    __m256 acc[3][4];
    for (auto& row : acc)
      for (auto& a : row) a = _mm256_setzero_ps();
    for (int64_t j = 0; j < k8; j += 8) {
      __m256 wv0 = _mm256_loadu_ps(w0 + j), wv1 = _mm256_loadu_ps(w1 + j), wv2 = _mm256_loadu_ps(w2 + j),
             wv3 = _mm256_loadu_ps(w3 + j);
      __m256 xv = _mm256_loadu_ps(xa + j);
      acc[0][0] = _mm256_fmadd_ps(xv, wv0, acc[0][0]);
      acc[0][1] = _mm256_fmadd_ps(xv, wv1, acc[0][1]);
      acc[0][2] = _mm256_fmadd_ps(xv, wv2, acc[0][2]);
      acc[0][3] = _mm256_fmadd_ps(xv, wv3, acc[0][3]);
      xv = _mm256_loadu_ps(xb + j);
      acc[1][0] = _mm256_fmadd_ps(xv, wv0, acc[1][0]);
      acc[1][1] = _mm256_fmadd_ps(xv, wv1, acc[1][1]);
      acc[1][2] = _mm256_fmadd_ps(xv, wv2, acc[1][2]);
      acc[1][3] = _mm256_fmadd_ps(xv, wv3, acc[1][3]);
      xv = _mm256_loadu_ps(xc + j);
      acc[2][0] = _mm256_fmadd_ps(xv, wv0, acc[2][0]);
      acc[2][1] = _mm256_fmadd_ps(xv, wv1, acc[2][1]);
      acc[2][2] = _mm256_fmadd_ps(xv, wv2, acc[2][2]);
      acc[2][3] = _mm256_fmadd_ps(xv, wv3, acc[2][3]);
    }
    const float* xr[3] = {xa, xb, xc};
    const float* ws[4] = {w0, w1, w2, w3};
    for (int a = 0; a < 3; ++a) {
      for (int64_t r = 0; r < nr; ++r) {
        float s = hsum(acc[a][r]);
        for (int64_t j = k8; j < k; ++j) s += xr[a][j] * ws[r][j];
        y[(i + a) * ys + n0 + r] = s + (bias ? bias[n0 + r] : 0.0f);
      }
    }
  }
  for (; i < m; ++i) {  // leftover x rows
    const float* xi = x + i * xs;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    for (int64_t j = 0; j < k8; j += 8) {
      __m256 xv = _mm256_loadu_ps(xi + j);
      a0 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(w0 + j), a0);
      a1 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(w1 + j), a1);
      a2 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(w2 + j), a2);
      a3 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(w3 + j), a3);
    }
    float s[4] = {hsum(a0), hsum(a1), hsum(a2), hsum(a3)};
    const float* ws[4] = {w0, w1, w2, w3};
    for (int64_t r = 0; r < nr; ++r) {
      for (int64_t j = k8; j < k; ++j) s[r] += xi[j] * ws[r][j];
      y[i * ys + n0 + r] = s[r] + (bias ? bias[n0 + r] : 0.0f);
    }
  }
}
#endif

// Rows of x per pass over W in prefill: a panel that stays in L2 (with the fp32 W tile beside it, in 3/4 of
// the cache) while every W tile passes by, instead of x streaming from L3 once per W tile; but at least 24 rows,
// so W (re-read once per panel) costs at most 1/24 byte of BF16 per flop. On a 1 MiB-L2 core this measured
// ~10% faster for the vision tower's [1024, 1536] x [4608, 1536] and even for [128, 4096] x [4096, 4096].
int64_t panel_rows(int64_t k) {
  static const int64_t l2 = [] {
    const long v = sysconf(_SC_LEVEL2_CACHE_SIZE);
    return v > 0 ? int64_t(v) : int64_t(1) << 20;
  }();
  const int64_t row_bytes = k * int64_t(sizeof(float));
  const int64_t rows = (l2 * 3 / 4 - tile_rows * row_bytes) / row_bytes / x_rows * x_rows;
  return std::max<int64_t>(24, rows);
}

// y [m, n] (row stride ys) = x [m, k] (row stride xs) . W^T + bias: panels of x rows, each split over W tiles on
// the pool. Every output is computed the same way whatever the panel or tile split.
void linear_impl(thread_pool* pool, const float* x, int64_t xs, int64_t m, const wrows& w, int64_t n, int64_t k,
                 const float* bias, float* y, int64_t ys) {
  AG_CHECK(w.type == dtype::F32 || w.type == dtype::BF16 || w.type == dtype::F16, "linear: unsupported weight dtype");
  if (m <= 0 || n <= 0) return;
  const int64_t panel = panel_rows(k);
  if (m > panel) {
    for (int64_t r0 = 0; r0 < m; r0 += panel)
      linear_impl(pool, x + r0 * xs, xs, std::min(panel, m - r0), w, n, k, bias, y + r0 * ys, ys);
    return;
  }
  const int64_t n_tiles = (n + tile_rows - 1) / tile_rows;
  const bool fused = m < x_rows;
  // Enough work per chunk to amortize the dispatch: ~64k multiply-adds.
  const int64_t grain = std::max<int64_t>(1, 65536 / std::max<int64_t>(1, k * m * tile_rows));
  parallel_for(pool, n_tiles, grain, [&](int64_t t0, int64_t t1) {
    thread_local aligned_buffer wbuf;
    if (!fused) wbuf.resize(size_t(tile_rows * k) * sizeof(float));
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t n0 = t * tile_rows;
      const int64_t nr = std::min(tile_rows, n - n0);
#if defined(__x86_64__)
      if (cpu_has_avx2()) {
        if (fused) {
          if (w.type == dtype::BF16) tile_fused<dtype::BF16>(x, xs, m, k, w, n0, nr, bias, y, ys);
          else if (w.type == dtype::F16) tile_fused<dtype::F16>(x, xs, m, k, w, n0, nr, bias, y, ys);
          else tile_fused<dtype::F32>(x, xs, m, k, w, n0, nr, bias, y, ys);
        } else {
          tile_blocked(x, xs, m, k, w, n0, nr, bias, y, ys, wbuf.f32());
        }
        continue;
      }
#endif
      wbuf.resize(size_t(tile_rows * k) * sizeof(float));
      tile_generic(x, xs, m, k, w, n0, nr, bias, y, ys, wbuf.f32());
    }
  });
}

int64_t f32_row_stride(const tensor& t, const char* what) {
  AG_CHECK(t.type() == dtype::F32 && t.stride(-1) == 4, std::string("linear: ") + what + " must be F32 with unit column stride");
  return t.row_stride() / 4;
}

}  // namespace

void linear_kernel(const kernel_context& kc, const tensor& x, const linear_weight& w, tensor& y) {
  const tensor& W = w.weight;
  const wrows rows{W.type(), static_cast<const uint8_t*>(W.data()), W.row_stride()};
  const float* bias = nullptr;
  if (!w.bias.empty()) {
    AG_CHECK(w.bias.type() == dtype::F32 && w.bias.is_contiguous(), "linear: bias must be contiguous F32");
    bias = w.bias.ptr<float>();
  }
  linear_impl(kc.pool, x.ptr<float>(), f32_row_stride(x, "x"), x.rows(), rows, W.dim(0), W.dim(1), bias,
              y.ptr<float>(), f32_row_stride(y, "y"));
}

void linear(const float* x, int64_t m, const weight_view& w, const float* bias, float* y, int64_t y_stride,
            thread_pool* pool) {
  AG_CHECK(w.type == dtype::F32 || w.type == dtype::BF16 || w.type == dtype::F16, "linear: unsupported weight dtype");
  const wrows rows{w.type, static_cast<const uint8_t*>(w.data), int64_t(dtype_row_bytes(w.type, w.cols))};
  linear_impl(pool ? pool : &default_thread_pool(), x, w.cols, m, rows, w.rows, w.cols, bias, y,
              y_stride ? y_stride : w.rows);
}

void linear_ref(const float* x, int64_t m, const weight_view& w, const float* bias, float* y) {
  std::vector<float> row(size_t(w.cols));
  for (int64_t r = 0; r < w.rows; ++r) {
    convert_to_f32_ref(w.type, w.row_ptr(r), row.data(), w.cols);
    for (int64_t i = 0; i < m; ++i) {
      double acc = 0.0;
      for (int64_t j = 0; j < w.cols; ++j) acc += double(x[i * w.cols + j]) * double(row[size_t(j)]);
      y[i * w.rows + r] = float(acc + (bias ? double(bias[r]) : 0.0));
    }
  }
}

}  // namespace autoglm::cpu
