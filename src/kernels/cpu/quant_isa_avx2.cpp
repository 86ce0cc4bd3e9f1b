// kernels/cpu/quant_isa_avx2.cpp: the quantized LINEAR micro-kernels for x86-64 with AVX2 + FMA + F16C (Haswell and
// later, Zen); the vector operations are those of quant_isa_x86.h (v_x86<false>), compiled here for this ISA.
//
// Q8_0/I8 prefill and decode are the shared kernels of quant_microkernel.h; every other type has its own kernels
// here. Prefill of the types with unsigned weight integers (Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K) runs
// packed_avx2 below over the same packed tile (pack_tile's layout): AVX2 has no vpdpbusd, so the shared kernel's dot is
// vpmaddubsw (products to int16 pairs), vpmaddwd by ones (pairs to int32) and vpaddd for every 4-byte step, two
// multiplies per step. Here consecutive steps' vpmaddubsw results are added as int16 (vpaddw) while they cannot
// overflow, and only then widened by one vpmaddwd (by ones, or by the k-quants' run scale, which also replaces their
// vpmulld). With |x| <= 127 (quant_linear.h) a vpmaddubsw lane holds two products, at most 2 x 15 x 127 = 3810 for
// 4-bit weights, 7874 for 5-bit, 16002 for 6-bit, so 8, 4 and 2 steps fit in int16 (30480, 31496, 32004 <= 32767). The
// group's integer is the same exact integer and the float steps are the shared ones in the same order: the bytes equal
// every other path's.
//
// Decode of Q4_0 / Q4_1 / Q5_0 / Q5_1 (decode_q4_avx2, decode_q5_avx2 below) also stays in int16: a group's
// vpmaddubsw results of the 8 W rows are summed by a vphaddw tree instead of one vpmaddwd per row and a vphaddd tree
// (the 4-bit kernel holds two rows per vector, 3 vphaddw per group). Decode of the k-quants
// (decode_q45k_avx2, decode_q6k_avx2) lays out the sub-block scales so that one in-lane vpshufb gives a vector's
// scales, and dots the 8 rows' mins (or Q6_K's scales) with x's sums in vectors, not per row. Every kernel of this
// table reads the 8 rows' f16 scales through scalar loads packed into 64-bit words (not 8 vpinsrw) and one row's
// nibbles through one broadcast 16-byte load (not a load and a vinserti128; the paired Q4_0 / Q4_1 decode loads two
// rows' into the halves of one vector).
#if defined(__x86_64__)

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>

#include "core/dtype.h"
#include "core/quant_blocks.h"
#include "kernels/cpu/quant_gemm.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

#include "kernels/cpu/quant_isa_x86.h"
#include "kernels/cpu/quant_microkernel.h"

namespace autoglm::cpu::qgemm {

namespace {

// v_x86<false> with cheaper loads of the same bytes: every kernel of this file's table takes these.
struct v_avx2 : v_x86<false> {
  // The 16 bytes at p in both halves; the high half shifted right by 4 (64-bit lanes), then both masked: low nibbles
  // (elements 0-15) in the low half, high nibbles (16-31) in the high half, as v_x86::nibbles16.
  static bytes nibbles16(const void* p) {
    const __m256i q = _mm256_broadcastsi128_si256(_mm_loadu_si128(static_cast<const __m128i*>(p)));
    return _mm256_and_si256(_mm256_srlv_epi64(q, _mm256_setr_epi64x(0, 0, 4, 4)), _mm256_set1_epi8(0x0f));
  }
  // The f16 at byte offset `at` of 8 blocks, as v_x86::half8_at.
  static floats half8_at(const uint8_t* const* b, int at) {
    uint64_t w[2] = {0, 0};
    for (int j = 0; j < 8; ++j) {
      uint16_t h;
      std::memcpy(&h, b[j] + at, 2);
      w[j / 4] |= uint64_t(h) << (16 * (j % 4));
    }
    return _mm256_cvtph_ps(_mm_set_epi64x(int64_t(w[1]), int64_t(w[0])));
  }
};

using V = v_avx2;

// 4-byte steps whose int16 pair sums may be added before widening (see the file comment).
template <wtype T>
constexpr int chain = T == wtype::Q4_0 || T == wtype::Q4_1 || T == wtype::Q4_K   ? 8
                      : T == wtype::Q5_0 || T == wtype::Q5_1 || T == wtype::Q5_K ? 4
                                                                                 : 2;

// Lane r = (a[r], b[r]) as two int16 (the low halves of a's and b's int32 lanes): one vpmaddwd operand.
inline __m256i pair16(__m256i a, __m256i b) { return _mm256_blend_epi16(a, _mm256_slli_epi32(b, 16), 0xAA); }
// The two int16 at p in every lane.
inline __m256i bcast_pair16(const int16_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// Steps [e0, e0 + N) of packed vectors (lane r: 4 weight bytes of row r) against x's 4-byte groups at x[i] + 4 e:
// per x row, the int16 pair sums of the steps (N <= chain<T>). Unrolled; the empty asm keeps each sum in its register
// and in step order (without it GCC hoists every step's broadcasts and products ahead of the adds and spills them).
template <int MR, int N>
inline void chain16(const uint8_t* packed, const int8_t* const* x, int e0, __m256i* h) {
#pragma GCC unroll 8
  for (int k = 0; k < N; ++k) {
    const __m256i pk = V::load(packed + 32 * (e0 + k));
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m256i m = _mm256_maddubs_epi16(pk, V::x4_bcast(x[i] + 4 * (e0 + k)));
      h[i] = k == 0 ? m : _mm256_add_epi16(h[i], m);
      __asm__("" : "+x"(h[i]));
    }
  }
}

// MR x rows against groups [g0, g1) of a packed tile: packed_kernel's contract and arithmetic (quant_microkernel.h),
// state and epilogue included; only the integer dot of a group is formed differently.
template <wtype T, int MR>
void packed_avx2(const tile& t, const uint8_t* packed, int64_t g0, int64_t g1, float* state) {
  __m256 acc[MR], off[MR];
  load_partial<V>(g0, state, acc, off);
  const int64_t ng = t.x.n_groups;
  const __m256i ones = _mm256_set1_epi16(1);
  packed += g0 * packed_group_bytes<T>;
  for (int64_t g = g0; g < g1; ++g, packed += packed_group_bytes<T>) {
    constexpr int nv = is_k<T> ? 8 : 1;
    const uint16_t* tail = reinterpret_cast<const uint16_t*>(packed + nv * 8 * 32 + (is_k<T> ? 24 * 32 : 0));
    const __m256 dw = V::half8(tail);
    const int8_t* xg[MR];
    for (int i = 0; i < MR; ++i) xg[i] = t.x.qs(t.i0 + i) + (is_k<T> ? 256 : 32) * g;
    __m256i I[MR], h[MR];
    for (int i = 0; i < MR; ++i) I[i] = _mm256_setzero_si256();
    if constexpr (!is_k<T>) {
      // 8 steps of a 32-element group: chains of chain<T> steps, each widened by ones.
      for (int c = 0; c < 8; c += chain<T>) {
        chain16<MR, chain<T>>(packed, xg, c, h);
        for (int i = 0; i < MR; ++i) {
          const __m256i w = _mm256_madd_epi16(h[i], ones);
          I[i] = _mm256_add_epi32(I[i], w);
        }
      }
    } else {
      // Runs sharing one scale per row: Q6_K 16 runs of 4 steps, else 8 of 8 (the packed int32 scales [16][8] are
      // per 16 elements). Each chain is widened by the run's scale pair: scale x (the chain's 4-step sums).
      const int32_t* sc = reinterpret_cast<const int32_t*>(packed + 64 * 32);
      constexpr int n_runs = T == wtype::Q6_K ? 16 : 8, per_run = 64 / n_runs;
      for (int r = 0; r < n_runs; ++r) {
        const __m256i s32 = V::iload(sc + 8 * (T == wtype::Q6_K ? r : 2 * r));
        const __m256i sp = pair16(s32, s32);
        for (int c = 0; c < per_run; c += chain<T>) {
          chain16<MR, chain<T>>(packed, xg, r * per_run + c, h);
          for (int i = 0; i < MR; ++i) {
            const __m256i w = _mm256_madd_epi16(h[i], sp);
            I[i] = _mm256_add_epi32(I[i], w);
          }
        }
      }
    }
    // The k-quants' min terms as int16 pair products: Q4_K/Q5_K sum over runs s of min[s] x (sum of x over run s),
    // mins <= 63 and sums |.| <= 32 x 127; Q6_K 32 x sum over halves h of scale[h] x (sum of x over half h), |scale|
    // <= 128 and sums |.| <= 16 x 127 (the factor 32 after the pairs: a shift, exact). The same integers as the
    // shared kernel's vpmulld sums.
    [[maybe_unused]] __m256i mp[is_k<T> ? (T == wtype::Q6_K ? 8 : 4) : 1];
    if constexpr (is_k<T>) {
      const int32_t* sc = reinterpret_cast<const int32_t*>(packed + 64 * 32);
      const int32_t* src = T == wtype::Q6_K ? sc : sc + 16 * 8;
      for (int p = 0; p < int(std::size(mp)); ++p) mp[p] = pair16(V::iload(src + 16 * p), V::iload(src + 16 * p + 8));
    }
    for (int i = 0; i < MR; ++i) {
      const float dx = t.x.d(t.i0 + i)[g];
      if constexpr (zero_point<T> != 0) {
        // zero_point x (x's group sum) in the vector domain: a broadcast load, a shift and a subtract.
        static_assert(zero_point<T> == 8 || zero_point<T> == 16);
        const __m256i zs = _mm256_slli_epi32(V::ibcast(t.x.sum(t.i0 + i)[g]), zero_point<T> == 8 ? 3 : 4);
        I[i] = _mm256_sub_epi32(I[i], zs);
      }
      const __m256 s = group_scale<V, T>(dw, dx);
      acc[i] = V::fmadd(I[i], s, acc[i]);
      if constexpr (has_min<T>)
        off[i] = V::fmadd(V::ibcast(-t.x.sum(t.i0 + i)[g]), V::fmul_b(V::half8(tail + 8), dx), off[i]);
      if constexpr (is_k<T>) {
        const int16_t* bs = t.x.bsum(t.i0 + i, g) + (T == wtype::Q6_K ? 0 : 16);
        __m256i O = _mm256_madd_epi16(mp[0], bcast_pair16(bs));
        for (int p = 1; p < int(std::size(mp)); ++p)
          O = _mm256_add_epi32(O, _mm256_madd_epi16(mp[p], bcast_pair16(bs + 2 * p)));
        if constexpr (T == wtype::Q6_K) O = _mm256_slli_epi32(O, 5);
        const __m256 ts = T == wtype::Q6_K ? s : V::fmul_b(V::half8(tail + 8), dx);
        off[i] = V::fmadd(O, ts, off[i]);
      }
    }
  }
  finish_partial<V, T>(t, g1 == ng, state, acc, off);
}

// What every decode kernel of this file starts from: the tile's 8 W rows (rows past nr repeat the last; they are
// computed and not written), the MR x rows' zeroed accumulators, the group count and the next tile's prefetch.
template <int MR>
struct decode_state {
  const uint8_t* w[8];
  __m256 acc[MR], off[MR];
  int64_t ng;
  next_tile_prefetch<V> pf;
  explicit decode_state(const tile& t) : ng(t.x.n_groups), pf(t, t.x.n_groups) {
    for (int j = 0; j < 8; ++j) w[j] = t.w + std::min(j, t.nr - 1) * t.w_stride;
    for (int i = 0; i < MR; ++i) acc[i] = off[i] = V::fzero();
  }
};

// Decode of Q5_0 / Q5_1 (1 .. 3 x rows): decode_kernel's contract, prefetch and float steps (quant_microkernel.h);
// a group's integers per W row come from a vphaddw tree over the 8 rows' vpmaddubsw results. 5-bit weights (up to
// 31) leave room for two levels (8 x 31 x 127 = 31496): level 1 adds the pairs of rows (0, 1), (2, 3), ..., level 2
// the pairs of those, leaving two lanes per row per 128-bit half; they are widened by vpmaddwd by ones and the halves
// of rows 0-3 and 4-7 added. (The 4-bit types take decode_q4_avx2 below.)
template <wtype T, int MR>
void decode_q5_avx2(const tile& t) {
  static_assert(T == wtype::Q5_0 || T == wtype::Q5_1);
  constexpr int64_t gb = group_bytes<T>;
  decode_state<MR> st(t);
  auto& [w, acc, off, ng, pf] = st;
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t g = 0; g < ng; ++g) {
    pf.step();
    const uint8_t* blk[8];
    for (int j = 0; j < 8; ++j) blk[j] = w[j] + g * gb;
    __m256i xv[MR], lv[MR][4];
    for (int i = 0; i < MR; ++i) xv[i] = V::load(t.x.qs(t.i0 + i) + 32 * g);
    for (int j = 0; j < 8; j += 2) {
      const __m256i w0 = weight_vector<V, T>(blk[j], 0), w1 = weight_vector<V, T>(blk[j + 1], 0);
      for (int i = 0; i < MR; ++i)
        lv[i][j / 2] = _mm256_hadd_epi16(_mm256_maddubs_epi16(w0, xv[i]), _mm256_maddubs_epi16(w1, xv[i]));
    }
    const __m256 dw = V::half8_in_blocks(blk, 0);
    for (int i = 0; i < MR; ++i) {
      const __m256i a = _mm256_madd_epi16(_mm256_hadd_epi16(lv[i][0], lv[i][1]), ones);  // rows 0-3 per half
      const __m256i b = _mm256_madd_epi16(_mm256_hadd_epi16(lv[i][2], lv[i][3]), ones);  // rows 4-7 per half
      __m256i I = _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20), _mm256_permute2x128_si256(a, b, 0x31));
      const float dx = t.x.d(t.i0 + i)[g];
      if constexpr (zero_point<T> != 0) I = V::iadd(I, V::ibcast(-zero_point<T> * t.x.sum(t.i0 + i)[g]));
      const __m256 s = group_scale<V, T>(dw, dx);
      acc[i] = V::fmadd(I, s, acc[i]);
      if constexpr (has_min<T>)
        off[i] = V::fmadd(V::ibcast(-t.x.sum(t.i0 + i)[g]), V::fmul_b(V::half8_in_blocks(blk, 2), dx), off[i]);
    }
  }
  for (int i = 0; i < MR; ++i) store_row<V, T>(t, i, acc[i], off[i]);
}

// Decode of Q4_0 / Q4_1 with two W rows per vector: [q_a | q_b] (the two rows' 16 nibble bytes), masked and shifted
// into lo = elements 0-15 of both rows and hi = elements 16-31, against x's halves broadcast to both 128-bit lanes:
// vpmaddubsw, vpmaddubsw, vpaddw give row a's 8 int16 partial sums in the low half and row b's in the high half
// (each 4 products, at most 4 x 15 x 127 = 7620). Rows (0, 1), (2, 3), (4, 5), (6, 7) in four vectors, two vphaddw
// levels leave 2 partials per row (at most 30480), a vpmaddwd by ones their int32 sum: lanes hold rows 0 2 4 6 1 3 5 7
// (half = row parity). The scales are gathered in that order and the accumulators put back in row order once per
// tile, so every lane's float steps are decode_kernel's for its row: the bytes equal every other path's, with 3
// horizontal adds per group instead of 7 and no int16 -> int32 widening of the halves.
template <wtype T, int MR>
void decode_q4_avx2(const tile& t) {
  static_assert(T == wtype::Q4_0 || T == wtype::Q4_1);
  constexpr int64_t gb = group_bytes<T>;
  constexpr int qs_at = T == wtype::Q4_0 ? 2 : 4;
  decode_state<MR> st(t);
  auto& [w, acc, off, ng, pf] = st;
  const __m256i low4 = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
  // Row of each lane: w_lane[l] = w[perm[l]], perm = 0 2 4 6 1 3 5 7.
  const uint8_t* w_lane[8] = {w[0], w[2], w[4], w[6], w[1], w[3], w[5], w[7]};
  for (int64_t g = 0; g < ng; ++g) {
    pf.step();
    __m256i xlo[MR], xhi[MR], p[MR][4];
    for (int i = 0; i < MR; ++i) {
      const int8_t* x = t.x.qs(t.i0 + i) + 32 * g;
      xlo[i] = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x)));
      xhi[i] = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + 16)));
    }
    for (int r = 0; r < 4; ++r) {
      const __m256i v = _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(w[2 * r + 1] + g * gb + qs_at),
                                            reinterpret_cast<const __m128i*>(w[2 * r] + g * gb + qs_at));
      const __m256i lo = _mm256_and_si256(v, low4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
      for (int i = 0; i < MR; ++i)
        p[i][r] = _mm256_add_epi16(_mm256_maddubs_epi16(lo, xlo[i]), _mm256_maddubs_epi16(hi, xhi[i]));
    }
    const uint8_t* blk[8];
    for (int l = 0; l < 8; ++l) blk[l] = w_lane[l] + g * gb;
    const __m256 dw = V::half8_in_blocks(blk, 0);
    for (int i = 0; i < MR; ++i) {
      const __m256i h = _mm256_hadd_epi16(_mm256_hadd_epi16(p[i][0], p[i][1]), _mm256_hadd_epi16(p[i][2], p[i][3]));
      __m256i I = _mm256_madd_epi16(h, ones);
      const float dx = t.x.d(t.i0 + i)[g];
      if constexpr (zero_point<T> != 0) I = V::iadd(I, V::ibcast(-zero_point<T> * t.x.sum(t.i0 + i)[g]));
      const __m256 s = group_scale<V, T>(dw, dx);
      acc[i] = V::fmadd(I, s, acc[i]);
      if constexpr (has_min<T>)
        off[i] = V::fmadd(V::ibcast(-t.x.sum(t.i0 + i)[g]), V::fmul_b(V::half8_in_blocks(blk, 2), dx), off[i]);
    }
  }
  const __m256i to_rows = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);  // row r sits in lane to_rows[r]
  for (int i = 0; i < MR; ++i)
    store_row<V, T>(t, i, _mm256_permutevar8x32_ps(acc[i], to_rows), _mm256_permutevar8x32_ps(off[i], to_rows));
}

// Decode of Q4_K and Q5_K (1 .. 3 x rows): decode_kernel's contract, prefetch and float steps (quant_microkernel.h),
// with the sub-block scales applied per pair of sub-blocks instead of per sub-block. Sub-blocks 2c and 2c + 1 are the
// low and high nibbles of the same 32 quant bytes q; a broadcast 16-byte load of q[0..15] shifted by (0, 4) per half
// and masked holds elements 0-15 of sub-block 2c in its low half and elements 0-15 of sub-block 2c + 1 in its high half
// (and q[16..31] the elements 16-31), so x is laid out once per group in the same order (x_pair below) and one
// vpmaddubsw per half-pair, one vpaddw, and one vpmaddwd by (scale 2c | scale 2c + 1) (a vpshufb of the row's scales)
// give the pair's scaled sums: 4 products per int16 lane, at most 4 x 31 x 127 = 15748 (Q5_K's fifth bits are
// taken from qh[0..15] / qh[16..31] the same way, bit 2c per low half, 2c + 1 per high half). The 8 rows' mins are
// dotted with x's 32-element sums together (vpmaddwd on the rows' mins as int16, a vphaddd tree). Every integer is the
// shared kernel's integer, every float step its step: the bytes equal every other path's.
struct x_pair {
  __m256i lo[4], hi[4];  // pair c: (x[64c .. +15], x[64c + 32 .. +47]) and (x[64c + 16 .. +31], x[64c + 48 .. +63])
  void load(const int8_t* x) {
    for (int c = 0; c < 4; ++c) {
      const int8_t* p = x + 64 * c;
      lo[c] = _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(p + 32), reinterpret_cast<const __m128i*>(p));
      hi[c] = _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(p + 48), reinterpret_cast<const __m128i*>(p + 16));
    }
  }
};

template <wtype T, int MR>
void decode_q45k_avx2(const tile& t) {
  static_assert(T == wtype::Q4_K || T == wtype::Q5_K);
  constexpr int64_t gb = group_bytes<T>;
  constexpr int qs_at = T == wtype::Q4_K ? 16 : 48;
  decode_state<MR> st(t);
  auto& [w, acc, off, ng, pf] = st;
  const __m256i low4 = _mm256_set1_epi8(0x0f), nib_shift = _mm256_setr_epi64x(0, 0, 4, 4);
  [[maybe_unused]] const __m256i bit0 = _mm256_set1_epi8(1);
  // Pair c's scale vector from the row's 8 scales as int16 in both halves: lanes 0-7 scale 2c, lanes 8-15 2c + 1.
  __m256i pick[4];
  for (int c = 0; c < 4; ++c) {
    const char a = char(4 * c), b = char(4 * c + 2);
    pick[c] =
        _mm256_setr_epi8(a, char(a + 1), a, char(a + 1), a, char(a + 1), a, char(a + 1), a, char(a + 1), a, char(a + 1),
                         a, char(a + 1), a, char(a + 1), b, char(b + 1), b, char(b + 1), b, char(b + 1), b, char(b + 1),
                         b, char(b + 1), b, char(b + 1), b, char(b + 1), b, char(b + 1));
  }
  for (int64_t g = 0; g < ng; ++g) {
    pf.step();
    const uint8_t* blk[8];
    for (int j = 0; j < 8; ++j) blk[j] = w[j] + g * gb;
    x_pair xp[MR];
    for (int i = 0; i < MR; ++i) xp[i].load(t.x.qs(t.i0 + i) + 256 * g);
    __m256i part[MR][8];
    uint64_t mins[8];
    for (int j = 0; j < 8; ++j) {
      const quant::k_scale_min_words sm = quant::k_scales_mins_words(blk[j] + 4);
      mins[j] = sm.mn;
      const __m256i sv = _mm256_cvtepu8_epi16(_mm_set1_epi64x(int64_t(sm.sc)));  // the 8 scales in both halves
      for (int i = 0; i < MR; ++i) part[i][j] = _mm256_setzero_si256();
      for (int c = 0; c < 4; ++c) {
        const uint8_t* q = blk[j] + qs_at + 32 * c;
        const __m256i q0 = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q)));
        const __m256i q1 = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + 16)));
        __m256i w0 = _mm256_and_si256(_mm256_srlv_epi64(q0, nib_shift), low4);
        __m256i w1 = _mm256_and_si256(_mm256_srlv_epi64(q1, nib_shift), low4);
        if constexpr (T == wtype::Q5_K) {
          // Fifth bits: bit v of qh[e] for element e of sub-block v; the low half takes bit 2c, the high 2c + 1.
          const __m256i bit_shift = _mm256_setr_epi64x(2 * c, 2 * c, 2 * c + 1, 2 * c + 1);
          const __m256i h0 =
              _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk[j] + 16)));
          const __m256i h1 =
              _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk[j] + 32)));
          w0 = _mm256_or_si256(w0, _mm256_slli_epi16(_mm256_and_si256(_mm256_srlv_epi64(h0, bit_shift), bit0), 4));
          w1 = _mm256_or_si256(w1, _mm256_slli_epi16(_mm256_and_si256(_mm256_srlv_epi64(h1, bit_shift), bit0), 4));
        }
        const __m256i scale = _mm256_shuffle_epi8(sv, pick[c]);
        for (int i = 0; i < MR; ++i) {
          const __m256i h =
              _mm256_add_epi16(_mm256_maddubs_epi16(w0, xp[i].lo[c]), _mm256_maddubs_epi16(w1, xp[i].hi[c]));
          part[i][j] = _mm256_add_epi32(part[i][j], _mm256_madd_epi16(h, scale));
        }
      }
    }
    // Rows (2k, 2k + 1)'s mins as int16 in the two halves of mn16[k].
    __m256i mn16[4];
    for (int k = 0; k < 4; ++k)
      mn16[k] = _mm256_cvtepu8_epi16(_mm_set_epi64x(int64_t(mins[2 * k + 1]), int64_t(mins[2 * k])));
    const __m256 dw = V::half8_in_blocks(blk, 0), dmw = V::half8_in_blocks(blk, 2);
    for (int i = 0; i < MR; ++i) {
      const float dx = t.x.d(t.i0 + i)[g];
      const __m256i I = V::reduce8(part[i]);
      acc[i] = V::fmadd(I, V::fmul_b(dw, dx), acc[i]);
      // sum over sub-blocks s of min[s] x (sum of x over s): vpmaddwd gives rows (2k, 2k + 1)'s pair sums in the
      // halves of p[k]; two vphaddd levels leave (r0, r2, r4, r6 | r1, r3, r5, r7), put in row order.
      const __m256i bs =
          _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t.x.bsum(t.i0 + i, g) + 16)));
      __m256i p[4];
      for (int k = 0; k < 4; ++k) p[k] = _mm256_madd_epi16(mn16[k], bs);
      const __m256i O =
          _mm256_permutevar8x32_epi32(_mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]), _mm256_hadd_epi32(p[2], p[3])),
                                      _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
      off[i] = V::fmadd(O, V::fmul_b(dmw, dx), off[i]);
    }
  }
  for (int i = 0; i < MR; ++i) store_row<V, T>(t, i, acc[i], off[i]);
}

// Decode of Q6_K (1 .. 3 x rows): decode_kernel's contract, prefetch and float steps. A 32-element vector v holds
// sub-blocks 2v (low half) and 2v + 1 (high half), each with its own int8 scale; the row's 16 scales are laid out
// once per group as int16, even sub-blocks in the low half and odd in the high (`evens_odds`), so that v's scale
// vector is one in-lane vpshufb (word v of each half) instead of a cross-lane permute and a shuffle. The same layout
// dotted with x's 16-element sums in the same order (one vpmaddwd per row, a vphaddd tree over the 8 rows) gives
// the rows' sum of scale x (sum of x) that the shared kernel forms per row with scalar-reduced dots.
template <int MR>
void decode_q6k_avx2(const tile& t) {
  constexpr int64_t gb = group_bytes<wtype::Q6_K>;
  decode_state<MR> st(t);
  auto& [w, acc, off, ng, pf] = st;
  const __m256i low4 = _mm256_set1_epi8(0x0f), bits45 = _mm256_set1_epi8(0x30);
  const __m128i evens_odds = _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
  __m256i pick[8];  // word v of each half, in every word of that half
  for (int v = 0; v < 8; ++v) {
    const char a = char(2 * v), b = char(2 * v + 1);
    pick[v] = _mm256_setr_epi8(a, b, a, b, a, b, a, b, a, b, a, b, a, b, a, b, a, b, a, b, a, b, a, b, a, b, a, b, a, b,
                               a, b);
  }
  for (int64_t g = 0; g < ng; ++g) {
    pf.step();
    const uint8_t* blk[8];
    for (int j = 0; j < 8; ++j) blk[j] = w[j] + g * gb;
    const int8_t* xg[MR];
    for (int i = 0; i < MR; ++i) xg[i] = t.x.qs(t.i0 + i) + 256 * g;
    __m256i part[MR][8], sc16[8];
    for (int j = 0; j < 8; ++j) {
      const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk[j] + 192));
      sc16[j] = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(raw, evens_odds));
      for (int i = 0; i < MR; ++i) part[i][j] = _mm256_setzero_si256();
      for (int h = 0; h < 2; ++h) {
        const __m256i ql0 = V::load(blk[j] + 64 * h), ql1 = V::load(blk[j] + 64 * h + 32);
        const __m256i qh = V::load(blk[j] + 128 + 32 * h);
        // Quarter q: nibbles of ql (low of ql0, low of ql1, high of ql0, high of ql1) | bits 2q, 2q + 1 of qh as
        // bits 4-5 (16-bit shifts: the 0x30 mask keeps only bits that come from the same byte).
        const __m256i wv[4] = {
            _mm256_or_si256(_mm256_and_si256(ql0, low4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), bits45)),
            _mm256_or_si256(_mm256_and_si256(ql1, low4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), bits45)),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4), _mm256_and_si256(qh, bits45)),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                            _mm256_and_si256(_mm256_srli_epi16(qh, 2), bits45))};
        for (int q = 0; q < 4; ++q) {
          const int v = 4 * h + q;
          const __m256i scale = _mm256_shuffle_epi8(sc16[j], pick[v]);
          for (int i = 0; i < MR; ++i)
            part[i][j] = _mm256_add_epi32(
                part[i][j], _mm256_madd_epi16(_mm256_maddubs_epi16(wv[q], V::load(xg[i] + 32 * v)), scale));
        }
      }
    }
    const __m256 dw = V::half8_at(blk, 208);
    for (int i = 0; i < MR; ++i) {
      const float dx = t.x.d(t.i0 + i)[g];
      const __m256 s = V::fmul_b(dw, dx);
      acc[i] = V::fmadd(V::reduce8(part[i]), s, acc[i]);
      // x's 16 sums of 16 elements in the scales' order (even sub-blocks, then odd), per half.
      const __m128i b_lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(t.x.bsum(t.i0 + i, g)));
      const __m128i b_hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(t.x.bsum(t.i0 + i, g) + 8));
      // words (0, 2, .., 14) and (1, 3, .., 15) of the 16 sums: within each 8-word load, evens to the low 8 bytes.
      const __m128i ev = _mm_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15);
      const __m128i l = _mm_shuffle_epi8(b_lo, ev), h = _mm_shuffle_epi8(b_hi, ev);
      const __m256i bs_eo = _mm256_set_m128i(_mm_unpackhi_epi64(l, h), _mm_unpacklo_epi64(l, h));
      __m256i m[8];
      for (int j = 0; j < 8; ++j) m[j] = _mm256_madd_epi16(sc16[j], bs_eo);
      const __m256i O = _mm256_slli_epi32(V::reduce8(m), 5);
      off[i] = V::fmadd(O, s, off[i]);
    }
  }
  for (int i = 0; i < MR; ++i) store_row<V, wtype::Q6_K>(t, i, acc[i], off[i]);
}

// This file's decode kernel of type T for MR x rows.
template <wtype T, int MR>
void decode_entry(const tile& t) {
  if constexpr (T == wtype::Q4_0 || T == wtype::Q4_1)
    decode_q4_avx2<T, MR>(t);
  else if constexpr (is_u32<T>)
    decode_q5_avx2<T, MR>(t);
  else if constexpr (T == wtype::Q6_K)
    decode_q6k_avx2<MR>(t);
  else
    decode_q45k_avx2<T, MR>(t);
}

template <wtype T>
void fill_avx2_decode(isa_table& tab) {
  static_assert(k_decode_rows == 3);
  tab.dk[size_t(T)][0] = &decode_entry<T, 1>;
  tab.dk[size_t(T)][1] = &decode_entry<T, 2>;
  tab.dk[size_t(T)][2] = &decode_entry<T, 3>;
}

template <wtype T, int... MRs>
void fill_avx2_prefill(isa_table& tab, std::integer_sequence<int, MRs...>) {
  ((tab.pk[size_t(T)][MRs] = &packed_avx2<T, MRs + 1>), ...);
}

// Compiled for this ISA, so called only once the CPU is known to have it (the accessor below is not).
isa_table build_table() {
  isa_table tab = make_table<V>("avx2", 4);
  // 6 x rows per register tile where the harness measured it faster than 4 (4096 x 4096 x 512, 1 thread, interleaved:
  // Q4_0 110 -> 107 ms, Q4_K 114 -> 104, Q5_K 122 -> 112, Q6_K 138 -> 126-131); Q4_1 (a second accumulator per row)
  // was slower at 6 (121 -> 134 ms) and Q5_0 no faster. Q8_0 / I8 are the shared kernel's (quant_microkernel.h).
  for (wtype t : {wtype::Q4_0, wtype::Q4_K, wtype::Q5_K, wtype::Q6_K}) tab.prefill_mr[size_t(t)] = 6;
  constexpr auto mrs = std::make_integer_sequence<int, k_max_mr>{};
  fill_avx2_prefill<wtype::Q4_0>(tab, mrs);
  fill_avx2_prefill<wtype::Q4_1>(tab, mrs);
  fill_avx2_prefill<wtype::Q5_0>(tab, mrs);
  fill_avx2_prefill<wtype::Q5_1>(tab, mrs);
  fill_avx2_prefill<wtype::Q4_K>(tab, mrs);
  fill_avx2_prefill<wtype::Q5_K>(tab, mrs);
  fill_avx2_prefill<wtype::Q6_K>(tab, mrs);
  fill_avx2_decode<wtype::Q4_0>(tab);
  fill_avx2_decode<wtype::Q4_1>(tab);
  fill_avx2_decode<wtype::Q5_0>(tab);
  fill_avx2_decode<wtype::Q5_1>(tab);
  fill_avx2_decode<wtype::Q4_K>(tab);
  fill_avx2_decode<wtype::Q5_K>(tab);
  fill_avx2_decode<wtype::Q6_K>(tab);
  return tab;
}

}  // namespace

}  // namespace autoglm::cpu::qgemm

#pragma GCC pop_options

namespace autoglm::cpu::qgemm {

const isa_table* table_avx2() {
  static const isa_table t = build_table();
  return &t;
}

}  // namespace autoglm::cpu::qgemm

#else

#include "kernels/cpu/quant_gemm.h"

namespace autoglm::cpu::qgemm {
const isa_table* table_avx2() { return nullptr; }
}  // namespace autoglm::cpu::qgemm

#endif
