// kernels/cpu/gemm_neon.cpp: the aarch64 NEON kernels of the linear layer: the GEMM micro-kernel (2 x 4 tile;
// each 8-lane accumulator of gemm.h is a pair of q registers, so the per-lane order and the results are the
// x86 ones bit for bit), the W panel packer, and the streaming decode tile.
#if defined(__aarch64__)

#include <arm_neon.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/cpu/gemm_kernels.h"

namespace autoglm::cpu::gemm_detail {

namespace {

// 16 accumulator registers (2 x rows x 4 W rows x 2 halves) + 4 for x + 8 for W = 28 of 32 (GCC loads a step's
// W at once; a 2 x 6 tile spilled); per k-step 12 loads against 16 FMAs.
template <int MR>
void micro_neon(const float* x, int64_t xs, const float* wp, int64_t steps, float* tile, bool load) {
  constexpr int NR = 4;
  float32x4_t acc[MR][NR][2];
#pragma GCC unroll 2
  for (int a = 0; a < MR; ++a)
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r)
#pragma GCC unroll 2
      for (int h = 0; h < 2; ++h) acc[a][r][h] = load ? vld1q_f32(tile + (a * NR + r) * 8 + 4 * h) : vdupq_n_f32(0.0f);
  for (int64_t s = 0; s < steps; ++s) {
    const float* w = wp + s * (NR * 8);
    float32x4_t xv[MR][2];
#pragma GCC unroll 2
    for (int a = 0; a < MR; ++a) {
      xv[a][0] = vld1q_f32(x + a * xs + 8 * s);
      xv[a][1] = vld1q_f32(x + a * xs + 8 * s + 4);
    }
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r) {
      const float32x4_t w0 = vld1q_f32(w + 8 * r), w1 = vld1q_f32(w + 8 * r + 4);
#pragma GCC unroll 2
      for (int a = 0; a < MR; ++a) {
        acc[a][r][0] = vfmaq_f32(acc[a][r][0], xv[a][0], w0);
        acc[a][r][1] = vfmaq_f32(acc[a][r][1], xv[a][1], w1);
      }
    }
  }
#pragma GCC unroll 2
  for (int a = 0; a < MR; ++a)
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r)
#pragma GCC unroll 2
      for (int h = 0; h < 2; ++h) vst1q_f32(tile + (a * NR + r) * 8 + 4 * h, acc[a][r][h]);
}

// 8 weights from element j of a row, as fp32.
template <dtype T>
inline void load8(const void* p, int64_t j, float32x4_t& lo, float32x4_t& hi) {
  if constexpr (T == dtype::F32) {
    lo = vld1q_f32(static_cast<const float*>(p) + j);
    hi = vld1q_f32(static_cast<const float*>(p) + j + 4);
  } else {
    const uint16x8_t v = vld1q_u16(static_cast<const uint16_t*>(p) + j);
    if constexpr (T == dtype::BF16) {
      lo = vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(v), 16));
      hi = vreinterpretq_f32_u32(vshll_n_u16(vget_high_u16(v), 16));
    } else {
      lo = vcvt_f32_f16(vreinterpret_f16_u16(vget_low_u16(v)));
      hi = vcvt_f32_f16(vreinterpret_f16_u16(vget_high_u16(v)));
    }
  }
}

inline float load1(dtype type, const void* p, int64_t j) {
  if (type == dtype::F32) return static_cast<const float*>(p)[j];
  const uint16_t h = static_cast<const uint16_t*>(p)[j];
  if (type == dtype::BF16) return bf16_to_f32(h);
  return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0);
}

template <dtype T, int NR>
void pack_t(const uint8_t* const* rows, int n_rows, int64_t steps, float* panel) {
  for (int r = 0; r < NR; ++r)
    for (int64_t s = 0; s < steps; ++s) {
      float32x4_t lo = vdupq_n_f32(0.0f), hi = lo;
      if (r < n_rows) load8<T>(rows[r], 8 * s, lo, hi);
      vst1q_f32(panel + (s * NR + r) * 8, lo);
      vst1q_f32(panel + (s * NR + r) * 8 + 4, hi);
    }
}

template <int NR>
void pack_neon(dtype type, const uint8_t* const* rows, int n_rows, int64_t steps, float* panel) {
  if (type == dtype::BF16) pack_t<dtype::BF16, NR>(rows, n_rows, steps, panel);
  else if (type == dtype::F16) pack_t<dtype::F16, NR>(rows, n_rows, steps, panel);
  else pack_t<dtype::F32, NR>(rows, n_rows, steps, panel);
}

// The lane sum of gemm.h: (lanes 0-3 + lanes 4-7), then (0 + 2, 1 + 3), then the two.
inline float lane_sum(float32x4_t lo, float32x4_t hi) {
  const float32x4_t t = vaddq_f32(lo, hi);
  const float32x2_t u = vadd_f32(vget_low_f32(t), vget_high_f32(t));
  return vget_lane_f32(u, 0) + vget_lane_f32(u, 1);
}

}  // namespace

micro_kernels neon_kernels() {
  micro_kernels k;
  k.mr = 2;
  k.nr = 4;
  k.fn[0] = micro_neon<1>;
  k.fn[1] = micro_neon<2>;
  k.pack = pack_neon<4>;
  k.lane_sums = lane_sums_portable;
  return k;
}

namespace {

template <dtype T>
void gemv_tile(const float* x, int64_t xs, int64_t m, int64_t k, const weight_rows& w, int64_t n0, int64_t nr,
               const float* bias, float* y, int64_t ys) {
  const void* rows[4];
  for (int64_t r = 0; r < 4; ++r) rows[r] = w.row(n0 + std::min(r, nr - 1));
  const int64_t k8 = k / 8 * 8;
  for (int64_t i = 0; i < m; ++i) {
    const float* xi = x + i * xs;
    float32x4_t acc[4][2];
#pragma GCC unroll 4
    for (auto& a : acc) a[0] = a[1] = vdupq_n_f32(0.0f);
    for (int64_t j = 0; j < k8; j += 8) {
      const float32x4_t x0 = vld1q_f32(xi + j), x1 = vld1q_f32(xi + j + 4);
#pragma GCC unroll 4
      for (int r = 0; r < 4; ++r) {
        float32x4_t lo, hi;
        load8<T>(rows[r], j, lo, hi);
        acc[r][0] = vfmaq_f32(acc[r][0], x0, lo);
        acc[r][1] = vfmaq_f32(acc[r][1], x1, hi);
      }
    }
    for (int64_t r = 0; r < nr; ++r) {
      float s = lane_sum(acc[r][0], acc[r][1]);
      for (int64_t j = k8; j < k; ++j) s = std::fma(xi[j], load1(w.type, rows[r], j), s);
      y[i * ys + n0 + r] = s + (bias ? bias[n0 + r] : 0.0f);
    }
  }
}

}  // namespace

void gemv_tile_neon(const float* x, int64_t xs, int64_t m, int64_t k, const weight_rows& w, int64_t n0, int64_t nr,
                    const float* bias, float* y, int64_t ys) {
  if (w.type == dtype::BF16) gemv_tile<dtype::BF16>(x, xs, m, k, w, n0, nr, bias, y, ys);
  else if (w.type == dtype::F16) gemv_tile<dtype::F16>(x, xs, m, k, w, n0, nr, bias, y, ys);
  else gemv_tile<dtype::F32>(x, xs, m, k, w, n0, nr, bias, y, ys);
}

}  // namespace autoglm::cpu::gemm_detail

#endif
