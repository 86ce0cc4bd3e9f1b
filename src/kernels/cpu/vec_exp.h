// kernels/cpu/vec_exp.h: exp on 8 floats at once with AVX2 + FMA (internal to kernels/cpu), for the softmaxes
// whose scalar std::exp calls took a sixth of the vision encoder's time on an AVX2 CPU (2.2 billion scores per
// 1080x2400 screenshot and block), and SiLU.
//
// exp(x) = 2^n * e^r with n = round(x log2 e) and r = x - n ln 2 (ln 2 split in two so r is exact to a few ulp), e^r
// by the degree-7 Taylor-like minimax polynomial of the Cephes library's expf on |r| <= ln 2 / 2, 2^n built in the
// exponent bits (two halves, so n = 128 still fits). Within 2 ulp of std::exp for x in [-87.33, 88.72], +inf above;
// below -87.33 the result is 0 (std::exp gives a subnormal there: nothing a softmax sum or weight can see); NaN stays
// NaN. The softmaxes pass x <= 0 (x - max); SiLU passes -g of any sign.
#pragma once

#if defined(__x86_64__)
#include <immintrin.h>

namespace autoglm::cpu {

// The constants both widths use (exp_avx512 must keep exp_avx2's bits): the clamps (ln of the smallest normal and of
// the largest float), log2 e, ln 2 in two parts, and the polynomial's coefficients from the highest degree down.
namespace exp_constants {
constexpr float lowest = -87.33654f, highest = 88.72283f, log2e = 1.44269504088896341f;
constexpr float ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
constexpr float poly[6] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                           4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};
}  // namespace exp_constants

__attribute__((target("avx2,fma"))) inline __m256 exp_avx2(__m256 x) {
  namespace c = exp_constants;
  const __m256 lowest = _mm256_set1_ps(c::lowest), highest = _mm256_set1_ps(c::highest);
  const __m256 below = _mm256_cmp_ps(x, lowest, _CMP_LT_OQ), above = _mm256_cmp_ps(x, highest, _CMP_GT_OQ);
  x = _mm256_max_ps(lowest, x);  // NaN (the second operand) passes through both clamps
  x = _mm256_min_ps(highest, x);
  const __m256 n =
      _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(c::log2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(c::ln2_hi), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(c::ln2_lo), r);
  __m256 p = _mm256_set1_ps(c::poly[0]);
  for (int i = 1; i < 6; ++i) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c::poly[i]));
  const __m256 r2 = _mm256_mul_ps(r, r);
  p = _mm256_fmadd_ps(p, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  // 2^n as 2^(n/2) * 2^(n - n/2): n in [-126, 128] after the clamps, each half a normal float.
  const __m256i ni = _mm256_cvtps_epi32(n), n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256 e1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
  const __m256 e2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
  const __m256 y = _mm256_blendv_ps(_mm256_mul_ps(_mm256_mul_ps(p, e1), e2), _mm256_set1_ps(__builtin_inff()), above);
  return _mm256_andnot_ps(below, y);
}

// r[j] *= scale for j < n, in place; returns the largest (a NaN may or may not win, where std::max would skip it:
// either way the row's exponentials and sum come out NaN).
__attribute__((target("avx2,fma"))) inline float scale_max_avx2(float* r, long n, float scale) {
  const __m256 s = _mm256_set1_ps(scale);
  __m256 mx8 = _mm256_set1_ps(-__builtin_inff());
  long j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(r + j), s);
    _mm256_storeu_ps(r + j, v);
    mx8 = _mm256_max_ps(mx8, v);
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, mx8);
  float mx = lanes[0];
  for (int t = 1; t < 8; ++t) mx = lanes[t] > mx ? lanes[t] : mx;
  for (; j < n; ++j) {
    r[j] *= scale;
    mx = r[j] > mx ? r[j] : mx;
  }
  return mx;
}

// exp_shifted_sum_avx2 from element j on, with its two double accumulators as they stand.
__attribute__((target("avx2,fma"))) inline double exp_shifted_sum_from(float* r, long n, float mx, long j, __m256d lo,
                                                                       __m256d hi) {
  const __m256 m = _mm256_set1_ps(mx);
  for (; j + 8 <= n; j += 8) {
    const __m256 e = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(r + j), m));
    _mm256_storeu_ps(r + j, e);
    lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
    hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
  }
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, _mm256_add_pd(lo, hi));
  double sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
  if (j < n) {
    alignas(32) float tail[8] = {};
    for (long t = 0; t < n - j; ++t) tail[t] = r[j + t] - mx;
    _mm256_store_ps(tail, exp_avx2(_mm256_load_ps(tail)));
    for (long t = 0; t < n - j; ++t) sum += double(r[j + t] = tail[t]);
  }
  return sum;
}

// r[j] = exp(r[j] - mx) for j < n, in place; returns their sum, accumulated in double (4 + 4 lanes, then the tail
// in order): the same sum for a 32k-token row as for a short one.
__attribute__((target("avx2,fma"))) inline double exp_shifted_sum_avx2(float* r, long n, float mx) {
  return exp_shifted_sum_from(r, n, mx, 0, _mm256_setzero_pd(), _mm256_setzero_pd());
}

// GCC 12's AVX-512 broadcasts, casts and 128-bit-block shuffles build on _mm512_undefined_*(), which
// -Wmaybe-uninitialized and -Wuninitialized flag.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
// exp_avx2 on 16 lanes: the same operations lane by lane (clamps with the same NaN rule, round to nearest, the same
// FMA chain, the two exponent halves; masks for its blends), so every lane has exp_avx2's bits.
__attribute__((target("avx512f"))) inline __m512 exp_avx512(__m512 x) {
  namespace c = exp_constants;
  const __m512 lowest = _mm512_set1_ps(c::lowest), highest = _mm512_set1_ps(c::highest);
  const __mmask16 below = _mm512_cmp_ps_mask(x, lowest, _CMP_LT_OQ), above = _mm512_cmp_ps_mask(x, highest, _CMP_GT_OQ);
  x = _mm512_max_ps(lowest, x);
  x = _mm512_min_ps(highest, x);
  const __m512 n =
      _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(c::log2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(c::ln2_hi), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(c::ln2_lo), r);
  __m512 p = _mm512_set1_ps(c::poly[0]);
  for (int i = 1; i < 6; ++i) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c::poly[i]));
  const __m512 r2 = _mm512_mul_ps(r, r);
  p = _mm512_fmadd_ps(p, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  const __m512i ni = _mm512_cvtps_epi32(n), n1 = _mm512_srai_epi32(ni, 1), n2 = _mm512_sub_epi32(ni, n1);
  const __m512i bias = _mm512_set1_epi32(127);
  const __m512 e1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n1, bias), 23));
  const __m512 e2 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n2, bias), 23));
  const __m512 y = _mm512_mask_mov_ps(_mm512_mul_ps(_mm512_mul_ps(p, e1), e2), above, _mm512_set1_ps(__builtin_inff()));
  return _mm512_maskz_mov_ps(__mmask16(~below), y);
}

// exp_shifted_sum_avx2 with 16 lanes per step: each step's two halves go into the same two double accumulators in the
// same order (one 8-double vector holding both), so the bytes and the sum are exp_shifted_sum_avx2's.
__attribute__((target("avx512f,avx2,fma"))) inline double exp_shifted_sum_avx512(float* r, long n, float mx) {
  const __m512 m = _mm512_set1_ps(mx);
  __m512d acc = _mm512_setzero_pd();  // lanes 0-3: exp_shifted_sum_avx2's lo, 4-7: its hi
  long j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m512 e = exp_avx512(_mm512_sub_ps(_mm512_loadu_ps(r + j), m));
    _mm512_storeu_ps(r + j, e);
    acc = _mm512_add_pd(acc, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
    // The high 8 floats of e: 128-bit blocks 2, 3 moved down.
    acc = _mm512_add_pd(acc, _mm512_cvtps_pd(_mm512_castps512_ps256(_mm512_shuffle_f32x4(e, e, 0xee))));
  }
  return exp_shifted_sum_from(r, n, mx, j, _mm512_castpd512_pd256(acc),
                              _mm512_castpd512_pd256(_mm512_shuffle_f64x2(acc, acc, 0xee)));
}

#pragma GCC diagnostic pop

// o[j] = silu(g[j]) * u[j] = g / (1 + exp(-g)) * u for j < n (o may be g or u). Every element, the tail's too, goes
// through exp_avx2, so a value does not depend on where a thread's span starts (prefill equals decode).
__attribute__((target("avx2,fma"))) inline __m256 silu_mul8_avx2(__m256 g, __m256 u) {
  const __m256 e = exp_avx2(_mm256_sub_ps(_mm256_setzero_ps(), g));
  return _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), u);
}
__attribute__((target("avx2,fma"))) inline void silu_mul_avx2(const float* g, const float* u, float* o, long n) {
  long j = 0;
  for (; j + 8 <= n; j += 8) _mm256_storeu_ps(o + j, silu_mul8_avx2(_mm256_loadu_ps(g + j), _mm256_loadu_ps(u + j)));
  if (j < n) {
    alignas(32) float gt[8] = {}, ut[8] = {};
    for (long t = 0; t < n - j; ++t) gt[t] = g[j + t], ut[t] = u[j + t];
    _mm256_store_ps(gt, silu_mul8_avx2(_mm256_load_ps(gt), _mm256_load_ps(ut)));
    for (long t = 0; t < n - j; ++t) o[j + t] = gt[t];
  }
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
// silu_mul8_avx2 on 16 lanes (the same operations: the same bits).
__attribute__((target("avx512f"))) inline __m512 silu_mul16_avx512(__m512 g, __m512 u) {
  const __m512 e = exp_avx512(_mm512_sub_ps(_mm512_setzero_ps(), g));
  return _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), e)), u);
}

// silu_mul_avx2 16 lanes at a time, the rest through silu_mul_avx2: every element's bits as there.
__attribute__((target("avx512f,avx2,fma"))) inline void silu_mul_avx512(const float* g, const float* u, float* o,
                                                                      long n) {
  long j = 0;
  for (; j + 16 <= n; j += 16)
    _mm512_storeu_ps(o + j, silu_mul16_avx512(_mm512_loadu_ps(g + j), _mm512_loadu_ps(u + j)));
  silu_mul_avx2(g + j, u + j, o + j, n - j);
}
#pragma GCC diagnostic pop

}  // namespace autoglm::cpu
#endif
