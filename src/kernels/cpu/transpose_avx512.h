// kernels/cpu/transpose_avx512.h (internal, x86-64): a 16 x 16 transpose of 32-bit elements in 16 zmm registers,
// shared by the bf16 GEMM's W packing (gemm_avx512bf16.cpp) and the attention scores' key runs (attention.cpp); and
// 4 x 4 blocks within 128-bit lanes (the r16 weight layout: quant_repack.h, quant_r16_avx512.cpp, gemm_amx.cpp).
#pragma once

#if defined(__x86_64__)
#include <immintrin.h>

namespace autoglm::cpu {

// GCC 12's AVX-512 shuffles build on _mm512_undefined_*(), which -Wmaybe-uninitialized flags.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// In place, within each 128-bit lane: 4 x 4 blocks of 32-bit elements transposed, out[i].dword[4L + c] =
// in[c].dword[4L + i] (its own inverse). The r16 weight layout's rows <-> vectors (quant_repack.h): vector v's dword
// j = row j's bytes 4v .. 4v + 3, and lane L of vector i = row 4L + i's 16 bytes.
__attribute__((target("avx512f"))) inline void transpose4x4_lanes(__m512i* v) {
  const __m512i t0 = _mm512_unpacklo_epi32(v[0], v[1]), t1 = _mm512_unpackhi_epi32(v[0], v[1]);
  const __m512i t2 = _mm512_unpacklo_epi32(v[2], v[3]), t3 = _mm512_unpackhi_epi32(v[2], v[3]);
  v[0] = _mm512_unpacklo_epi64(t0, t2);
  v[1] = _mm512_unpackhi_epi64(t0, t2);
  v[2] = _mm512_unpacklo_epi64(t1, t3);
  v[3] = _mm512_unpackhi_epi64(t1, t3);
}
// In place: v[j] (16 dwords of row j) becomes column j, i.e. out[j].dword[i] = in[i].dword[j]. Within each 128-bit
// lane, 32- then 64-bit unpacks transpose 4 x 4 blocks (u[4b + c] lane L = column 4L + c of rows 4b..4b + 3);
// two rounds of 128-bit lane shuffles then gather lane L of u[c], u[4 + c], u[8 + c], u[12 + c] into column 4L + c.
__attribute__((target("avx512f"))) inline void transpose16x16(__m512i* v) {
  __m512i t[16], u[16];
  for (int a = 0; a < 8; ++a) {
    t[2 * a] = _mm512_unpacklo_epi32(v[2 * a], v[2 * a + 1]);
    t[2 * a + 1] = _mm512_unpackhi_epi32(v[2 * a], v[2 * a + 1]);
  }
  for (int b = 0; b < 4; ++b) {
    u[4 * b + 0] = _mm512_unpacklo_epi64(t[4 * b], t[4 * b + 2]);
    u[4 * b + 1] = _mm512_unpackhi_epi64(t[4 * b], t[4 * b + 2]);
    u[4 * b + 2] = _mm512_unpacklo_epi64(t[4 * b + 1], t[4 * b + 3]);
    u[4 * b + 3] = _mm512_unpackhi_epi64(t[4 * b + 1], t[4 * b + 3]);
  }
  for (int c = 0; c < 4; ++c) {
    const __m512i v0 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x88), v1 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xDD);
    const __m512i v2 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x88);
    const __m512i v3 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xDD);
    v[c] = _mm512_shuffle_i32x4(v0, v2, 0x88);
    v[4 + c] = _mm512_shuffle_i32x4(v1, v3, 0x88);
    v[8 + c] = _mm512_shuffle_i32x4(v0, v2, 0xDD);
    v[12 + c] = _mm512_shuffle_i32x4(v1, v3, 0xDD);
  }
}
#pragma GCC diagnostic pop

}  // namespace autoglm::cpu
#endif
