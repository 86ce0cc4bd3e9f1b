// kernels/cpu/quant_decode_x86.h (internal): the one-x-row decode kernels of the AVX-512 VNNI path (Q8_0, Q4_0,
// Q5_0, Q4_K), included after a `#pragma GCC target` with AVX-512 VNNI by quant_isa_avx512.cpp and, with GFNI
// added, by quant_isa_avx512_gfni.cpp, which instantiates Q4_0 / Q5_0 with `gfni` on (the table of the
// avx512-gfni path: Ice Lake, Zen 4 and later have GFNI; Cascade Lake has VNNI without it). Everything is in an
// anonymous namespace, so each file compiles its own copy for its own target.
//
// GFNI's use: the high nibbles of 32 bytes in one affine byte transform (vgf2p8affineqb with the matrix that moves
// bits 4-7 to 0-3) instead of a 16-bit shift and a mask: one vector instruction fewer per 16 Q4 weights, in a loop
// bound by issued instructions (below).
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "core/quant_blocks.h"
#include "kernels/cpu/quant_gemm.h"
#include "kernels/cpu/quant_isa_x86.h"
#include "kernels/cpu/quant_microkernel.h"

namespace autoglm::cpu::qgemm {

namespace {

// The high nibble of each byte of q, as a byte (0-15).
template <bool gfni>
inline __m256i high_nibbles(__m256i q) {
  // gfni = true is instantiated only by quant_isa_avx512_gfni.cpp (GFNI in its target; GCC 12 defines no __GFNI__
  // under a pragma target, so the discarded branch is what keeps other files from needing it).
  if constexpr (gfni) return _mm256_gf2p8affine_epi64_epi8(q, _mm256_set1_epi64x(0x1020408000000000LL), 0);
  return _mm256_and_si256(_mm256_srli_epi16(q, 4), _mm256_set1_epi8(0x0f));
}

// ---- decode of one x row (Q8_0, Q4_0, Q4_K) -------------------------------------------------------------------
// The same integers and the same float steps as decode_kernel (quant_microkernel.h): per group, one exact integer
// per W row, then acc = fma(float(I), d_w * d_x, acc) on 8 lanes = 8 W rows (k-quants: the same for the mins into
// off). Only the integer work differs: Q4_0 packs rows p and p + 4 into one vector (16 nibble bytes each), the 8
// rows' partial sums are added across in-lane (reduce_pairs: 9 operations, no hadd), scales come from an unpack
// tree of 16-byte loads (v_x86::half8_heads; a vpgatherdd measured slower on Zen 4), two groups share a prefetch
// step; Q4_K below.
// On one Zen 4 core this loop issues ~5 instructions per cycle with the weights in L2 (a Q4_0 group of 8 rows in ~18
// cycles), so every vector instruction saved is bandwidth: the decode of 2 cores streams Q4_0 at ~40 GB/s.

// P[p] = [partial sums of W row p (4 lanes) | of row p + 4]; returns lane j = the full sum of row j. Nine
// in-lane operations, no cross-lane shuffle.
inline __m256i reduce_pairs(const __m256i* P) {
  const __m256i U = _mm256_add_epi32(_mm256_unpacklo_epi32(P[0], P[1]), _mm256_unpackhi_epi32(P[0], P[1]));
  const __m256i W = _mm256_add_epi32(_mm256_unpacklo_epi32(P[2], P[3]), _mm256_unpackhi_epi32(P[2], P[3]));
  return _mm256_add_epi32(_mm256_unpacklo_epi64(U, W), _mm256_unpackhi_epi64(U, W));
}
// Q[j] = 8 partial sums of row j; returns P of reduce_pairs (row p's lanes folded to 4, beside row p + 4's).
inline void fold_rows(const __m256i* Q, __m256i* P) {
  for (int p = 0; p < 4; ++p)
    P[p] = _mm256_add_epi32(_mm256_blend_epi32(Q[p], Q[p + 4], 0xF0), _mm256_permute2x128_si256(Q[p], Q[p + 4], 0x21));
}

// A tile's 8 W rows: full tiles address rows 0-3 from `a` and 4-7 from `b` with the stride in registers (8 row
// pointers would not fit beside the vectors: GCC kept them in vector registers and moved one out per load); a
// tile with fewer rows repeats its last one through a pointer table.
template <bool full>
struct tile_rows;
template <>
struct tile_rows<true> {
  const uint8_t *a, *b;
  int64_t s, s3;
  explicit tile_rows(const tile& t) : a(t.w), b(t.w + 4 * t.w_stride), s(t.w_stride), s3(3 * t.w_stride) {}
  const uint8_t* operator()(int j, int64_t o) const {
    const uint8_t* base = (j < 4 ? a : b) + o;
    switch (j & 3) {
      case 0: return base;
      case 1: return base + s;
      case 2: return base + 2 * s;
      default: return base + s3;
    }
  }
};
template <>
struct tile_rows<false> {
  const uint8_t* w[8];
  explicit tile_rows(const tile& t) {
    for (int j = 0; j < 8; ++j) w[j] = t.w + std::min(j, t.nr - 1) * t.w_stride;
  }
  const uint8_t* operator()(int j, int64_t o) const { return w[j] + o; }
};

inline __m128i load16(const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }

template <wtype T, bool full, bool gfni>
void decode1_q32_rows(const tile& t) {
  using V = v_x86<true>;
  static_assert(T == wtype::Q8_0 || T == wtype::Q4_0 || T == wtype::Q5_0);
  constexpr int64_t gb = group_bytes<T>;
  const tile_rows<full> w(t);
  const int8_t* xq = t.x.qs(t.i0);
  const float* xd = t.x.d(t.i0);
  const int32_t* xs = t.x.sum(t.i0);
  __m256 acc = _mm256_setzero_ps();
  auto group = [&](int64_t g) {
    const int64_t o = g * gb;
    __m256i P[4];
    if constexpr (T == wtype::Q4_0 || T == wtype::Q5_0) {
      // Rows p and p + 4 in one vector: [row p's 16 bytes | row p + 4's]; low nibbles (elements 0-15) against
      // [x 0-15 | x 0-15], high nibbles (16-31) against [x 16-31 | x 16-31] (each half a broadcast load). Q5_0:
      // bit e of the block's qh adds 16 to element e (a byte mask as it stands, one masked add).
      constexpr int qs_at = T == wtype::Q4_0 ? 2 : 6;
      const __m256i xlo = _mm256_broadcastsi128_si256(load16(reinterpret_cast<const uint8_t*>(xq + 32 * g)));
      const __m256i xhi = _mm256_broadcastsi128_si256(load16(reinterpret_cast<const uint8_t*>(xq + 32 * g + 16)));
      const __m256i m4 = _mm256_set1_epi8(0x0f);
      for (int p = 0; p < 4; ++p) {
        const __m256i q =
            _mm256_inserti128_si256(_mm256_castsi128_si256(load16(w(p, o + qs_at))), load16(w(p + 4, o + qs_at)), 1);
        __m256i lo = _mm256_and_si256(q, m4), hi = high_nibbles<gfni>(q);
        if constexpr (T == wtype::Q5_0) {
          uint32_t ha, hb;
          std::memcpy(&ha, w(p, o + 2), 4);
          std::memcpy(&hb, w(p + 4, o + 2), 4);
          const __m256i b5 = _mm256_set1_epi8(0x10);
          lo = _mm256_mask_add_epi8(lo, __mmask32((ha & 0xffffu) | (hb << 16)), lo, b5);
          hi = _mm256_mask_add_epi8(hi, __mmask32((ha >> 16) | (hb & 0xffff0000u)), hi, b5);
        }
        P[p] = _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), lo, xlo), hi, xhi);
      }
    } else {
      // Each row's 32 weights + 128 (unsigned) against x; the sum is corrected by 128 x sum(x).
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + 32 * g));
      const __m256i flip = _mm256_set1_epi8(char(0x80));
      __m256i Q[8];
      for (int j = 0; j < 8; ++j)
        Q[j] = _mm256_dpbusd_epi32(
            _mm256_setzero_si256(),
            _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w(j, o + 2))), flip), xv);
      fold_rows(Q, P);
    }
    // The zero point's term -z x sum(x), z = 8, 16 or 128: a shift of the broadcast sum.
    constexpr int z_shift = T == wtype::Q4_0 ? 3 : T == wtype::Q5_0 ? 4 : 7;
    const __m256i I = _mm256_sub_epi32(reduce_pairs(P), _mm256_slli_epi32(_mm256_set1_epi32(xs[g]), z_shift));
    const __m256 dw = V::half8_heads([&](int j) { return load16(w(j, o)); });
    acc = V::fmadd(I, group_scale<V, T>(dw, xd[g]), acc);
  };
  const int64_t ng = t.x.n_groups;
  next_tile_prefetch<V> pf(t, (ng + 1) / 2);
  int64_t g = 0;
  for (; g + 1 < ng; g += 2) {
    pf.step();
    group(g);
    group(g + 1);
  }
  if (g < ng) group(g);
  store_row<V, T>(t, 0, acc, _mm256_setzero_ps());
}

template <wtype T, bool gfni>
void decode1_q32(const tile& t) {
  if (t.nr == k_tile_rows) decode1_q32_rows<T, true, gfni>(t);
  else decode1_q32_rows<T, false, gfni>(t);
}

// The f16 pairs (d, dmin) at the head of 8 k-quant blocks as two vectors of 8 floats: one unpack tree of 16-byte
// loads (32-bit words: d and dmin of a row side by side), then one byte shuffle per 4 rows parts d's from dmin's.
inline void k_block_scales(const uint8_t* const* blk, __m256& d, __m256& dmin) {
  auto ld = [&](int j) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk[j])); };
  const __m128i split = _mm_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15);
  // [d0 m0 d1 m1 d2 m2 d3 m3] -> [d0 d1 d2 d3 m0 m1 m2 m3], the same for rows 4-7.
  const __m128i r03 = _mm_shuffle_epi8(
      _mm_unpacklo_epi64(_mm_unpacklo_epi32(ld(0), ld(1)), _mm_unpacklo_epi32(ld(2), ld(3))), split);
  const __m128i r47 = _mm_shuffle_epi8(
      _mm_unpacklo_epi64(_mm_unpacklo_epi32(ld(4), ld(5)), _mm_unpacklo_epi32(ld(6), ld(7))), split);
  d = _mm256_cvtph_ps(_mm_unpacklo_epi64(r03, r47));
  dmin = _mm256_cvtph_ps(_mm_unpackhi_epi64(r03, r47));
}

// The 8 rows' 6-bit scales and mins (quant::k_scales_mins of the 12 bytes at byte 4 of each block) in vectors:
// R[p] = [row p: 8 scales, 8 mins | row p + 4: 8 scales, 8 mins], the SWAR steps of k_scales_mins_words on the
// 32-bit words (w0 w1 w2) of each 128-bit lane.
inline void k_scale_min_rows(const uint8_t* const* blk, __m256i* R) {
  const __m256i low6 = _mm256_set1_epi8(0x3f), low4 = _mm256_set1_epi8(0x0f), bits45 = _mm256_set1_epi8(0x30);
  const __m256i w2_shift = _mm256_setr_epi32(0, 4, 0, 0, 0, 4, 0, 0);
  for (int p = 0; p < 4; ++p) {
    const __m256i v = _mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk[p] + 4))),
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk[p + 4] + 4)), 1);
    const __m256i lo = _mm256_and_si256(v, low6);  // words 0, 1: scales 0-3, mins 0-3
    // words 0, 1: (w2 & low4) | ((w0 >> 6) & 3) << 4 and ((w2 >> 4) & low4) | ((w1 >> 6) & 3) << 4
    const __m256i hi = _mm256_or_si256(
        _mm256_and_si256(_mm256_srlv_epi32(_mm256_shuffle_epi32(v, 0xaa), w2_shift), low4),
        _mm256_and_si256(_mm256_srli_epi32(v, 2), bits45));
    R[p] = _mm256_unpacklo_epi32(lo, hi);
  }
}

// Q4_K, one x row: per W row and super-block, 4 x 32 bytes of nibbles -> 8 sub-blocks, each (maddubs against x's
// 32 bytes) scaled by its 6-bit scale in the pair add (dpwssd), the scale words picked from the row's 8 scales by
// one byte shuffle; two accumulators per row (even / odd sub-blocks). The mins' dot with x's 32-sums is done for
// the 8 rows at once (one madd on 512 bits) instead of row by row; d and dmin by k_block_scales.
// inline: the GFNI file includes this header and does not use it.
inline void decode1_q4k(const tile& t) {
  using V = v_x86<true>;
  constexpr int64_t gb = group_bytes<wtype::Q4_K>;
  const uint8_t* w[8];
  for (int j = 0; j < 8; ++j) w[j] = t.w + std::min(j, t.nr - 1) * t.w_stride;
  const int8_t* xq = t.x.qs(t.i0);
  const float* xd = t.x.d(t.i0);
  __m256 acc = _mm256_setzero_ps(), off = _mm256_setzero_ps();
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  // Byte shuffles picking scale v as a 16-bit word in every lane (0x80: zero byte).
  __m256i pick[8];
  for (int v = 0; v < 8; ++v) pick[v] = _mm256_set1_epi16(short(0x8000 | v));
  const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0);
  const int64_t ng = t.x.n_groups;
  next_tile_prefetch<V> pf(t, ng);
  for (int64_t g = 0; g < ng; ++g) {
    pf.step();
    const int64_t o = g * gb;
    __m256i X[8];
    for (int v = 0; v < 8; ++v) X[v] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + 256 * g + 32 * v));
    const uint8_t* blks[8];
    for (int j = 0; j < 8; ++j) blks[j] = w[j] + o;
    __m256i R[4];
    k_scale_min_rows(blks, R);
    __m256i Q[8];
    for (int j = 0; j < 8; ++j) {
      const uint8_t* blk = blks[j];
      // Row j's 8 scales in every 64-bit lane.
      const __m256i sb = j < 4 ? _mm256_permute4x64_epi64(R[j], 0x00) : _mm256_permute4x64_epi64(R[j - 4], 0xaa);
      __m256i a0 = _mm256_setzero_si256(), a1 = _mm256_setzero_si256();
      for (int c = 0; c < 4; ++c) {
        const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 16 + 32 * c));
        const __m256i lo = _mm256_and_si256(q, m4), hi = high_nibbles<false>(q);
        a0 = _mm256_dpwssd_epi32(a0, _mm256_maddubs_epi16(lo, X[2 * c]), _mm256_shuffle_epi8(sb, pick[2 * c]));
        a1 = _mm256_dpwssd_epi32(a1, _mm256_maddubs_epi16(hi, X[2 * c + 1]),
                                 _mm256_shuffle_epi8(sb, pick[2 * c + 1]));
      }
      Q[j] = _mm256_add_epi32(a0, a1);
    }
    __m256i P[4];
    fold_rows(Q, P);
    const __m256i I = reduce_pairs(P);
    // Mins: lane r of each 128-bit quarter = row r's 8 mins (rows 0-3, then 4-7) times the 8 sums of 32.
    const __m256i m01 = _mm256_unpackhi_epi64(R[0], R[1]), m23 = _mm256_unpackhi_epi64(R[2], R[3]);
    const __m256i M03 = _mm256_permute2x128_si256(m01, m23, 0x20), M47 = _mm256_permute2x128_si256(m01, m23, 0x31);
    const __m512i B = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t.x.bsum(t.i0, g) + 16)));
    const __m512i Pa = _mm512_madd_epi16(_mm512_cvtepu8_epi16(M03), B);
    const __m512i Pb = _mm512_madd_epi16(_mm512_cvtepu8_epi16(M47), B);
    const __m512i C = _mm512_add_epi32(_mm512_unpacklo_epi32(Pa, Pb), _mm512_unpackhi_epi32(Pa, Pb));
    const __m512i D = _mm512_add_epi32(C, _mm512_shuffle_epi32(C, _MM_PERM_BADC));  // quarter r: row r, row r + 4
    const __m256i O = _mm512_castsi512_si256(_mm512_permutexvar_epi32(idx, D));
    __m256 d, dmin;
    k_block_scales(blks, d, dmin);
    acc = V::fmadd(I, V::fmul_b(d, xd[g]), acc);
    off = V::fmadd(O, V::fmul_b(dmin, xd[g]), off);
  }
  store_row<V, wtype::Q4_K>(t, 0, acc, off);
}

}  // namespace

}  // namespace autoglm::cpu::qgemm
