// kernels/cpu/gemm_avx512bf16.cpp: the AVX-512 BF16 pieces of the bf16 GEMM (gemm_bf16.h): x rounded to bf16
// pairs in micro-panels (vcvtne2ps2bf16), W rows transposed into panels of bf16 pairs, the 6 x 64 register tile of
// vdpbf16ps, the tile's store into y, and the instruction's peak probe. Compiled for AVX-512 F/BW/VL/BF16 by the
// pragma below (after every include, so no inline function of a header is built for it); called only when
// bf16_gemm_available().
#if defined(__x86_64__)

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>

#include "kernels/cpu/gemm_bf16.h"
#include "kernels/cpu/kernel_util.h"
#include "kernels/cpu/transpose_avx512.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512bf16")
// GCC 12's AVX-512 headers build broadcasts and casts on _mm512_undefined_*(), which -Wmaybe-uninitialized flags.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace autoglm::cpu::bf16_detail {

namespace {

constexpr int MR = k_bf16_mr;
constexpr int NR = k_bf16_nr;
constexpr int NV = NR / 16;  // zmm per W panel step

std::atomic<float> g_sink{0};

inline __m512bh as_bh(__m512i v) { return (__m512bh)v; }

// Mask of the first n 16-bit elements of 32 (n clamped to the vector; 32-bit elements: kernel_util.h first_lanes16).
inline __mmask32 first16(int64_t n) {
  return n >= 32 ? ~__mmask32(0) : n <= 0 ? __mmask32(0) : __mmask32((uint32_t(1) << n) - 1);
}

}  // namespace

void pack_x_avx512bf16(const float* x, int64_t xs, int64_t rows, int64_t k, int64_t p0, int64_t p1, uint32_t* xp) {
  const int64_t kp = (k + 1) / 2;
  alignas(64) uint32_t pairs[16];
  for (int64_t p = p0; p < p1; ++p) {
    uint32_t* panel = xp + p * kp * MR;
    for (int a = 0; a < MR; ++a) {
      const int64_t i = p * MR + a;
      if (i >= rows) {
        for (int64_t s = 0; s < kp; ++s) panel[s * MR + a] = 0;
        continue;
      }
      const float* xr = x + i * xs;
      // 32 floats -> 16 pairs at a time; elements past k read as 0 (masked, never touched).
      for (int64_t j = 0; j < k; j += 32) {
        const __m512 lo = _mm512_maskz_loadu_ps(first_lanes16(k - j), xr + j);
        const __m512 hi = _mm512_maskz_loadu_ps(first_lanes16(k - j - 16), xr + j + 16);
        _mm512_store_si512(pairs, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
        const int64_t s0 = j / 2, n_pairs = std::min<int64_t>(16, kp - s0);
        for (int64_t q = 0; q < n_pairs; ++q) panel[(s0 + q) * MR + a] = pairs[q];
      }
    }
  }
}

void pack_w_avx512bf16(const uint16_t* const* rows, int n_rows, int64_t steps, int64_t k_left, uint32_t* wp) {
  for (int g = 0; g < NR / 16; ++g) {
    const int g_rows = std::clamp(n_rows - 16 * g, 0, 16);
    for (int64_t s0 = 0; s0 < steps; s0 += 16) {
      const int64_t n_steps = std::min<int64_t>(16, steps - s0);
      __m512i v[16];
      if (g_rows == 0) {
        for (int r = 0; r < 16; ++r) v[r] = _mm512_setzero_si512();
      } else {
        // 16 pairs (32 elements) of each row; elements past k_left are not read (masked) and stay 0.
        const __mmask32 mask = first16(k_left - 2 * s0);
        for (int r = 0; r < 16; ++r)
          v[r] = r < g_rows ? _mm512_maskz_loadu_epi16(mask, rows[16 * g + r] + 2 * s0) : _mm512_setzero_si512();
        transpose16x16(v);
      }
      for (int64_t q = 0; q < n_steps; ++q) _mm512_store_si512(wp + (s0 + q) * NR + 16 * g, v[q]);
    }
  }
}

namespace {

// Per pair step: 4 W loads and 6 x pairs broadcast from memory against 24 vdpbf16ps; 24 accumulators + 4 W + 1
// broadcast = 29 of 32 registers. x_at(s, a): x row a's pair s.
template <class XAt>
inline void tile_steps(XAt x_at, const uint32_t* wp, int64_t steps, float* tile, bool load) {
  __m512 acc[MR][NV];
#pragma GCC unroll 6
  for (int a = 0; a < MR; ++a)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[a][v] = load ? _mm512_load_ps(tile + a * NR + 16 * v) : _mm512_setzero_ps();
  for (int64_t s = 0; s < steps; ++s) {
    const uint32_t* ws = wp + s * NR;
    __m512i w[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) w[v] = _mm512_load_si512(ws + 16 * v);
#pragma GCC unroll 6
    for (int a = 0; a < MR; ++a) {
      const __m512i xb = _mm512_set1_epi32(int(x_at(s, a)));
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[a][v] = _mm512_dpbf16_ps(acc[a][v], as_bh(xb), as_bh(w[v]));
    }
  }
#pragma GCC unroll 6
  for (int a = 0; a < MR; ++a)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) _mm512_store_ps(tile + a * NR + 16 * v, acc[a][v]);
}

}  // namespace

void tile_avx512bf16(const uint32_t* xp, const uint32_t* wp, int64_t steps, float* tile, bool load) {
  tile_steps([xp](int64_t s, int a) { return xp[s * MR + a]; }, wp, steps, tile, load);
}

void tile_rows_avx512bf16(const uint32_t* const* x_rows, const uint32_t* wp, int64_t steps, float* tile, bool load) {
  const uint32_t* r[MR];
  for (int a = 0; a < MR; ++a) r[a] = x_rows[a];
  tile_steps([&r](int64_t s, int a) { return r[a][s]; }, wp, steps, tile, load);
}

void store_tile_avx512bf16(const float* tile, int n_rows, int n_cols, const float* bias, float* y, int64_t ys) {
  for (int v = 0; v < NV && 16 * v < n_cols; ++v) {
    const __mmask16 mask = first_lanes16(n_cols - 16 * v);
    const __m512 b = bias ? _mm512_maskz_loadu_ps(mask, bias + 16 * v) : _mm512_setzero_ps();
    for (int a = 0; a < n_rows; ++a)
      _mm512_mask_storeu_ps(y + a * ys + 16 * v, mask, _mm512_add_ps(_mm512_load_ps(tile + a * NR + 16 * v), b));
  }
}

double dot_peak_probe_avx512bf16(int64_t iters) {
  __m512 acc[12];
  for (int c = 0; c < 12; ++c) acc[c] = _mm512_set1_ps(float(c));
  __m512i a = _mm512_set1_epi32(0x3f803f80);  // (1.0, 1.0) in bf16
  const __m512i b = _mm512_set1_epi32(0x3c003c00);  // (2^-7, 2^-7)
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (int c = 0; c < 12; ++c) acc[c] = _mm512_dpbf16_ps(acc[c], as_bh(a), as_bh(b));
    __asm__ volatile("" : "+v"(a));  // an operand the compiler cannot see through keeps the loop
  }
  for (int c = 1; c < 12; ++c) acc[0] = _mm512_add_ps(acc[0], acc[c]);
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, acc[0]);
  g_sink.store(lanes[0] + lanes[15], std::memory_order_relaxed);
  return 12.0 * 64 * double(iters) / 1e9;
}

}  // namespace autoglm::cpu::bf16_detail

#pragma GCC diagnostic pop
#pragma GCC pop_options

#endif
