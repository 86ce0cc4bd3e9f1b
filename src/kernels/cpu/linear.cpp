// kernels/cpu/linear.cpp: the LINEAR kernel (see linear.h): the streaming decode GEMV (AVX2, NEON, portable)
// for 1-2 rows of x, the packed GEMM (gemm.h) for more.
#include "kernels/cpu/linear.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/aligned_buffer.h"
#include "core/error.h"
#include "kernels/cpu/convert.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/gemm_amx.h"
#include "kernels/cpu/gemm_bf16.h"
#include "kernels/cpu/gemm_kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace autoglm::cpu {

namespace {

constexpr int64_t tile_rows = 8;  // W rows per decode tile (tile_fused says why 8)
// Rows of x from which the GEMM's packing (each W element converted once per 64-256 rows) beats streaming W
// once per row; below it decode streams W at the memory bandwidth.
constexpr int64_t gemm_min_rows = 3;

// Portable decode tile: W rows converted to fp32, then the canonical 8-lane dot (gemm.h) with every x row.
void tile_generic(const float* x, int64_t xs, int64_t m, int64_t k, const weight_rows& w, int64_t n0, int64_t nr,
                  const float* bias, float* y, int64_t ys, float* wbuf) {
  for (int64_t r = 0; r < nr; ++r) convert_to_f32(w.type, w.row(n0 + r), wbuf + r * k, k);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t r = 0; r < nr; ++r)
      y[i * ys + n0 + r] = dot8_canonical(x + i * xs, wbuf + r * k, k) + (bias ? bias[n0 + r] : 0.0f);
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

// Decode tile: tile_rows (8) W rows straight from storage, each x row in turn. Streams W exactly once per x row.
// Each output is the canonical 8-lane chain of gemm.h whatever the tile size; 8 rows rather than 4 keep twice the
// lines in flight per core: one Zen 4 core streamed a 4096 x 4096 BF16 matrix at 15.4 GB/s with 4 rows and 24.8
// with 8 (2 cores: 29.0 -> 30.6 in the VM's low-bandwidth state, both near its read figure); 12 rows measured
// lower than 8, and 16 spill (AVX2 has 16 vector registers).
template <dtype T>
__attribute__((target("avx2,fma,f16c"))) void tile_fused(const float* x, int64_t xs, int64_t m, int64_t k,
                                                         const weight_rows& w, int64_t n0, int64_t nr,
                                                         const float* bias, float* y, int64_t ys) {
  constexpr int R = int(tile_rows);
  const void* rows[R];
  for (int64_t r = 0; r < R; ++r) rows[r] = w.row(n0 + std::min(r, nr - 1));
  const int64_t k8 = k & ~int64_t(7);
  // The next tile's rows (the R after these) fetched into L2 front to back while the first x row reads this one:
  // the R rows here are read side by side from their heads, which the hardware streams cover poorly (as in quant
  // decode, quant_microkernel.h). Step j reads 8 elements of each row and fetches as many bytes of the next tile,
  // as if its rows were contiguous (2 lines for F16/BF16, 4 for F32). Prefetches never fault.
  constexpr int64_t esize = T == dtype::F32 ? 4 : 2;
  constexpr int lines_per_step = int(R * 8 * esize / 64);
  const char* next = static_cast<const char*>(w.row(n0)) + R * w.row_bytes;
  for (int64_t i = 0; i < m; ++i) {
    const float* xi = x + i * xs;
    __m256 a[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) a[r] = _mm256_setzero_ps();
    for (int64_t j = 0; j < k8; j += 8) {
      if (i == 0)
#pragma GCC unroll 4
        for (int l = 0; l < lines_per_step; ++l) _mm_prefetch(next + R * esize * j + 64 * l, _MM_HINT_T1);
      const __m256 xv = _mm256_loadu_ps(xi + j);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) a[r] = _mm256_fmadd_ps(xv, load8<T>(rows[r], j), a[r]);
    }
    float s[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) s[r] = hsum(a[r]);
    for (int64_t j = k8; j < k; ++j)
      for (int r = 0; r < R; ++r) s[r] = std::fma(xi[j], load1<T>(rows[r], j), s[r]);
    for (int64_t r = 0; r < nr; ++r) y[i * ys + n0 + r] = s[r] + (bias ? bias[n0 + r] : 0.0f);
  }
}
#endif

// Decode (m < gemm_min_rows): W tiles of tile_rows rows shared out over the pool, each streamed once per x row.
void gemv(thread_pool* pool, const float* x, int64_t xs, int64_t m, const weight_rows& w, int64_t n, int64_t k,
          const float* bias, float* y, int64_t ys) {
  const int64_t n_tiles = (n + tile_rows - 1) / tile_rows;
  // Enough work per chunk to amortize the dispatch: ~64k multiply-adds.
  const int64_t grain = std::max<int64_t>(1, 65536 / std::max<int64_t>(1, k * m * tile_rows));
  parallel_for(pool, n_tiles, grain, [&](int64_t t0, int64_t t1) {
    thread_local aligned_buffer wbuf;
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t n0 = t * tile_rows;
      const int64_t nr = std::min(tile_rows, n - n0);
#if defined(__x86_64__)
      if (cpu_has_avx2()) {
        if (w.type == dtype::BF16) tile_fused<dtype::BF16>(x, xs, m, k, w, n0, nr, bias, y, ys);
        else if (w.type == dtype::F16) tile_fused<dtype::F16>(x, xs, m, k, w, n0, nr, bias, y, ys);
        else tile_fused<dtype::F32>(x, xs, m, k, w, n0, nr, bias, y, ys);
        continue;
      }
#endif
#if defined(__aarch64__)
      if (gemm_isa_available(gemm_isa::NEON)) {
        for (int64_t sub = 0; sub < nr; sub += 4)  // the NEON tile takes 4 rows
          gemm_detail::gemv_tile_neon(x, xs, m, k, w, n0 + sub, std::min<int64_t>(4, nr - sub), bias, y, ys);
        continue;
      }
#endif
      wbuf.resize(size_t(tile_rows * k) * sizeof(float));
      tile_generic(x, xs, m, k, w, n0, nr, bias, y, ys, wbuf.f32());
    }
  });
}

// y [m, n] (row stride ys) = x [m, k] (row stride xs) . W^T + bias. Every output is computed the same way
// whichever path, tile split or thread count runs it (gemm.h).
void linear_impl(thread_pool* pool, const float* x, int64_t xs, int64_t m, const weight_rows& w, int64_t n, int64_t k,
                 const float* bias, float* y, int64_t ys) {
  AG_CHECK(w.type == dtype::F32 || w.type == dtype::BF16 || w.type == dtype::F16, "linear: unsupported weight dtype");
  if (m <= 0 || n <= 0) return;
  if (m < gemm_min_rows) gemv(pool, x, xs, m, w, n, k, bias, y, ys);
  else if (use_amx_gemm(w.type, m)) gemm_bf16_amx(pool, x, xs, m, w, n, k, bias, y, ys);  // x rounded: gemm_amx.h
  else if (use_bf16_gemm(w.type, m)) gemm_bf16(pool, x, xs, m, w, n, k, bias, y, ys);  // x rounded: gemm_bf16.h
  else gemm_f32(pool, gemm_best_isa(), x, xs, m, w, n, k, bias, y, ys);
}

int64_t f32_row_stride(const tensor& t, const char* what) {
  AG_CHECK(t.type() == dtype::F32 && t.stride(-1) == 4, std::string("linear: ") + what + " must be F32 with unit column stride");
  return t.row_stride() / 4;
}

}  // namespace

void linear_kernel(const kernel_context& kc, const tensor& x, const linear_weight& w, tensor& y) {
  const tensor& W = w.weight;
  const weight_rows rows{W.type(), static_cast<const uint8_t*>(W.data()), W.row_stride()};
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
  const weight_rows rows{w.type, static_cast<const uint8_t*>(w.data), int64_t(dtype_row_bytes(w.type, w.cols))};
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
