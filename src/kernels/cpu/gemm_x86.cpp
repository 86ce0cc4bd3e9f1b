// kernels/cpu/gemm_x86.cpp: the x86 micro-kernels of the GEMM (see gemm.h for the arithmetic they share):
// AVX2+FMA with a 3 x 4 tile of 8-lane ymm accumulators, and AVX-512 with a 4 x 12 tile where each zmm holds
// the 8 lanes of two W rows (W panels interleave rows in 8-float runs, x is broadcast to both halves), so the
// per-lane order is the AVX2 one and the two paths agree bit for bit.
#if defined(__x86_64__)

#include <immintrin.h>

#include "kernels/cpu/convert.h"
#include "kernels/cpu/gemm_kernels.h"

namespace autoglm::cpu::gemm_detail {

namespace {

// Per k-step 3 x loads + 4 W loads against 12 FMAs; 12 accumulators + 3 x + 1 W = 16 ymm registers.
template <int MR>
__attribute__((target("avx2,fma"))) void micro_avx2(const float* x, int64_t xs, const float* wp, int64_t steps,
                                                     float* tile, bool load) {
  constexpr int NR = 4;
  __m256 acc[MR][NR];
#pragma GCC unroll 4
  for (int a = 0; a < MR; ++a)
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r) acc[a][r] = load ? _mm256_load_ps(tile + (a * NR + r) * 8) : _mm256_setzero_ps();
  const float* xr[MR];
#pragma GCC unroll 4
  for (int a = 0; a < MR; ++a) xr[a] = x + a * xs;
  for (int64_t s = 0; s < steps; ++s) {
    const float* w = wp + s * (NR * 8);
    __m256 xv[MR];
#pragma GCC unroll 4
    for (int a = 0; a < MR; ++a) xv[a] = _mm256_loadu_ps(xr[a] + 8 * s);
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r) {
      const __m256 wv = _mm256_load_ps(w + 8 * r);
#pragma GCC unroll 4
      for (int a = 0; a < MR; ++a) acc[a][r] = _mm256_fmadd_ps(xv[a], wv, acc[a][r]);
    }
  }
#pragma GCC unroll 4
  for (int a = 0; a < MR; ++a)
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r) _mm256_store_ps(tile + (a * NR + r) * 8, acc[a][r]);
}

// 24 zmm accumulators (4 x rows x 6 W-row pairs) + 4 broadcast x + 1 W = 29 of 32 registers; per k-step 10 loads
// against 24 FMAs of 16 lanes.
template <int MR>
__attribute__((target("avx512f"))) void micro_avx512(const float* x, int64_t xs, const float* wp, int64_t steps,
                                                      float* tile, bool load) {
  constexpr int NP = 6;  // W row pairs; NR = 12
  __m512 acc[MR][NP];
#pragma GCC unroll 4
  for (int a = 0; a < MR; ++a)
#pragma GCC unroll 6
    for (int p = 0; p < NP; ++p) acc[a][p] = load ? _mm512_load_ps(tile + (a * NP + p) * 16) : _mm512_setzero_ps();
  const float* xr[MR];
#pragma GCC unroll 4
  for (int a = 0; a < MR; ++a) xr[a] = x + a * xs;
  for (int64_t s = 0; s < steps; ++s) {
    const float* w = wp + s * (NP * 16);
    __m512 xv[MR];
    // The same 8 floats of x in both halves (a 256-bit broadcast; f64x4 is the AVX-512F spelling; all-ones
    // zero-masked as in the packer).
#pragma GCC unroll 4
    for (int a = 0; a < MR; ++a)
      xv[a] = _mm512_castpd_ps(
          _mm512_maskz_broadcast_f64x4(0xFF, _mm256_loadu_pd(reinterpret_cast<const double*>(xr[a] + 8 * s))));
#pragma GCC unroll 6
    for (int p = 0; p < NP; ++p) {
      const __m512 wv = _mm512_load_ps(w + 16 * p);
#pragma GCC unroll 4
      for (int a = 0; a < MR; ++a) acc[a][p] = _mm512_fmadd_ps(xv[a], wv, acc[a][p]);
    }
  }
#pragma GCC unroll 4
  for (int a = 0; a < MR; ++a)
#pragma GCC unroll 6
    for (int p = 0; p < NP; ++p) _mm512_store_ps(tile + (a * NP + p) * 16, acc[a][p]);
}

// 8 weights from element j of a row as fp32 (exact).
template <dtype T>
__attribute__((target("avx2,fma,f16c"))) inline __m256 load8(const uint8_t* p, int64_t j) {
  if constexpr (T == dtype::F32) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(p) + j);
  } else {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(reinterpret_cast<const uint16_t*>(p) + j));
    if constexpr (T == dtype::BF16) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    else return _mm256_cvtph_ps(h);
  }
}

template <dtype T, int NR>
__attribute__((target("avx2,fma,f16c"))) void pack_avx2_t(const uint8_t* const* rows, int n_rows, int64_t steps,
                                                          float* panel) {
  for (int r = 0; r < NR; ++r)
    for (int64_t s = 0; s < steps; ++s)
      _mm256_store_ps(panel + (s * NR + r) * 8, r < n_rows ? load8<T>(rows[r], 8 * s) : _mm256_setzero_ps());
}

// Two rows per 64-byte store: the zmm layout of the micro-kernel (row 2p in the low half, 2p + 1 in the high).
// The all-ones zero-masked intrinsics compile to the plain instructions; GCC 12 warns about the unmasked ones'
// undefined pass-through operand.
template <dtype T, int NR>
__attribute__((target("avx512f"))) void pack_avx512_t(const uint8_t* const* rows, int n_rows, int64_t steps,
                                                      float* panel) {
  for (int r = 0; r < NR; r += 2) {
    const uint8_t* r0 = r < n_rows ? rows[r] : nullptr;
    const uint8_t* r1 = r + 1 < n_rows ? rows[r + 1] : nullptr;
    for (int64_t s = 0; s < steps; ++s) {
      __m512 v;
      if constexpr (T == dtype::F32) {
        const __m256 lo = r0 ? _mm256_loadu_ps(reinterpret_cast<const float*>(r0) + 8 * s) : _mm256_setzero_ps();
        const __m256 hi = r1 ? _mm256_loadu_ps(reinterpret_cast<const float*>(r1) + 8 * s) : _mm256_setzero_ps();
        v = _mm512_castpd_ps(_mm512_maskz_insertf64x4(0xFF, _mm512_castpd256_pd512(_mm256_castps_pd(lo)),
                                                      _mm256_castps_pd(hi), 1));
      } else {
        auto half = [s](const uint8_t* q) {
          return q ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(reinterpret_cast<const uint16_t*>(q) + 8 * s))
                   : _mm_setzero_si128();
        };
        const __m256i h = _mm256_inserti128_si256(_mm256_castsi128_si256(half(r0)), half(r1), 1);
        if constexpr (T == dtype::BF16)
          v = _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xFFFF, _mm512_maskz_cvtepu16_epi32(0xFFFF, h), 16));
        else
          v = _mm512_maskz_cvtph_ps(0xFFFF, h);
      }
      _mm512_store_ps(panel + (s * NR + r) * 8, v);
    }
  }
}

// The lane sums of 8 accumulators at once: halves added pairwise after a 128-bit transpose, then (0 + 2, 1 + 3)
// by shuffles, then the pairs by hadd; every sum has the operands of the scalar order (gemm.h), so the same bits.
__attribute__((target("avx2,fma"))) void lane_sums_avx2(const float* acc, int n, float* out) {
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const float* v = acc + 8 * i;
    __m256 t[4];  // t[q] = [halves sum of accumulator 2q | of 2q + 1]
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) {
      const __m256 a = _mm256_loadu_ps(v + 16 * q), b = _mm256_loadu_ps(v + 16 * q + 8);
      t[q] = _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31));
    }
    // u01 = [u0 | u1] pairs of accumulators 0, 2 (low lane) and 1, 3 (high lane); likewise u23 for 4..7.
    const __m256 u01 = _mm256_add_ps(_mm256_shuffle_ps(t[0], t[1], 0x44), _mm256_shuffle_ps(t[0], t[1], 0xEE));
    const __m256 u23 = _mm256_add_ps(_mm256_shuffle_ps(t[2], t[3], 0x44), _mm256_shuffle_ps(t[2], t[3], 0xEE));
    const __m256 s = _mm256_hadd_ps(u01, u23);  // [s0 s2 s4 s6 | s1 s3 s5 s7]
    _mm256_storeu_ps(out + i, _mm256_permutevar8x32_ps(s, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
  }
  if (i + 4 <= n) {  // the same for 4: [s0 s2 s0 s2 | s1 s3 s1 s3]
    const float* v = acc + 8 * i;
    __m256 t[2];
#pragma GCC unroll 2
    for (int q = 0; q < 2; ++q) {
      const __m256 a = _mm256_loadu_ps(v + 16 * q), b = _mm256_loadu_ps(v + 16 * q + 8);
      t[q] = _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31));
    }
    const __m256 u01 = _mm256_add_ps(_mm256_shuffle_ps(t[0], t[1], 0x44), _mm256_shuffle_ps(t[0], t[1], 0xEE));
    const __m256 s = _mm256_hadd_ps(u01, u01);
    _mm_storeu_ps(out + i, _mm256_castps256_ps128(_mm256_permutevar8x32_ps(s, _mm256_setr_epi32(0, 4, 1, 5, 0, 4, 1, 5))));
    i += 4;
  }
  if (i < n) lane_sums_portable(acc + 8 * i, n - i, out + i);
}

template <int NR>
void pack_avx2(dtype type, const uint8_t* const* rows, int n_rows, int64_t steps, float* panel) {
  if (type == dtype::BF16) pack_avx2_t<dtype::BF16, NR>(rows, n_rows, steps, panel);
  else if (type == dtype::F16) pack_avx2_t<dtype::F16, NR>(rows, n_rows, steps, panel);
  else pack_avx2_t<dtype::F32, NR>(rows, n_rows, steps, panel);
}

template <int NR>
void pack_avx512(dtype type, const uint8_t* const* rows, int n_rows, int64_t steps, float* panel) {
  if (type == dtype::BF16) pack_avx512_t<dtype::BF16, NR>(rows, n_rows, steps, panel);
  else if (type == dtype::F16) pack_avx512_t<dtype::F16, NR>(rows, n_rows, steps, panel);
  else pack_avx512_t<dtype::F32, NR>(rows, n_rows, steps, panel);
}

}  // namespace

micro_kernels avx2_kernels() {
  micro_kernels k;
  k.mr = 3;
  k.nr = 4;
  k.fn[0] = micro_avx2<1>;
  k.fn[1] = micro_avx2<2>;
  k.fn[2] = micro_avx2<3>;
  k.pack = pack_avx2<4>;
  k.lane_sums = lane_sums_avx2;
  return k;
}

micro_kernels avx512_kernels() {
  micro_kernels k;
  k.mr = 4;
  k.nr = 12;
  k.fn[0] = micro_avx512<1>;
  k.fn[1] = micro_avx512<2>;
  k.fn[2] = micro_avx512<3>;
  k.fn[3] = micro_avx512<4>;
  k.pack = pack_avx512<12>;
  k.lane_sums = lane_sums_avx2;
  k.l2_panels = true;
  return k;
}

bool cpu_has_avx512() {
  static const bool has = __builtin_cpu_supports("avx512f");
  return has && cpu_has_avx2();
}

}  // namespace autoglm::cpu::gemm_detail

#endif
