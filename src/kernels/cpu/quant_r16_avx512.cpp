// kernels/cpu/quant_r16_avx512.cpp: the decode of Q4_0/Q4_1/Q5_0/Q5_1/Q8_0/Q4_K/Q5_K/Q6_K weights in the r16 layout
// (quant_repack.h) with AVX-512 VNNI, one to three x rows.
//
// Per tile (16 W rows, the 16 lanes of a vector) and 32-element group: Q4_0 4 vectors of quants, their low nibbles
// against a broadcast of x's 4 bytes 4v .. 4v + 3 and their high nibbles (in place, 16-fold) against bytes 16 + 4v ..
// (vpdpbusd: the nibble unsigned, x signed), Q8_0 8 vectors of w + 128 against x's bytes 4v ..; the zero point's
// term (8 or 128 times the group's sum of x) subtracted once: lane j holds row j's exact integer with no sum across
// lanes. Then the float steps of quant_linear.h's rule on 16 lanes: acc = fma(float(I), d_w * d_x, acc) in group
// order, y = acc + bias. So the bits are those of every other path.
// The two dot chains of a group (low / high nibbles, even / odd vectors) are separate; groups are independent, so
// out-of-order execution overlaps them. Each thread cuts its tiles into 4 runs and walks them side by side, group by
// group, with a software prefetch into L2 4 KiB ahead in each: 4 streams of weights per core. On the 2-core Xeon
// measured a plain read of one stream per core stops at ~25 GB/s, of 2 at ~28, of 4 at 29-31; this decode went from
// 26.2 (one stream, 8 KiB ahead) to 28-31 GB/s (Q4_0 / Q8_0, m = 1, weights streamed from memory; Q5_0 26-28, 20 in
// the file's layout). Each line's prefetch is issued beside the load of the line 4 KiB behind it, not a group's lines
// at once: a Q4_K group is 36 lines, and issued together they held Q4_K at 21.6-22.3 GB/s against 25.1-26.2 spread
// (Q4_0 / Q5_0 +1-2%, Q8_0 within noise; 9B-l8 decode, Q4_K 17.3 -> 19.5 tokens/s, Q4_0 21.6 -> 22.2).
#if defined(__x86_64__)

#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/cpu/kernel_util.h"
#include "kernels/cpu/quant_repack.h"
#include "kernels/cpu/transpose_avx512.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace autoglm::cpu {

namespace {

constexpr int64_t k_prefetch_ahead = 4096;  // bytes of quants ahead of the group being read, in each run

inline __m512i bcast4(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// A vpshufb control whose 4 bytes per 32-bit lane are those of `c` (byte b picks byte b of the same lane; 0x80 gives
// a zero): vpshufb indexes its 128-bit lane, so each dword's control gets its offset there (0x80 + offset stays a
// zero).
inline __m512i lane_shuffle(uint32_t c) {
  const __m512i in_lane = _mm512_set_epi32(0x0c0c0c0c, 0x08080808, 0x04040404, 0, 0x0c0c0c0c, 0x08080808, 0x04040404,
                                           0, 0x0c0c0c0c, 0x08080808, 0x04040404, 0, 0x0c0c0c0c, 0x08080808,
                                           0x04040404, 0);
  return _mm512_add_epi8(_mm512_set1_epi32(int32_t(c)), in_lane);
}

// Tile t's outputs of MR x rows: y = acc + bias, or (acc - off) + bias with the k-quants' mins (store_row's steps).
template <int MR>
void store_tile(const r16_job& j, int64_t t, const __m512* acc, const __m512* off) {
  const int64_t n0 = t * k_r16_rows;
  const __mmask16 keep = first_lanes16(j.layout->n - n0);
  const __m512 b = j.bias ? _mm512_maskz_loadu_ps(keep, j.bias + n0) : _mm512_setzero_ps();
  for (int i = 0; i < MR; ++i)
    _mm512_mask_storeu_ps(j.y + i * j.y_stride + n0, keep,
                          _mm512_add_ps(off ? _mm512_sub_ps(acc[i], off[i]) : acc[i], b));
}

// The 32-element types of the layout.
enum class r16_kind { Q4_0, Q5_0, Q8_0, Q4_1, Q5_1 };

// Tiles [t0, t1): the range cut into NS equal runs walked side by side (`lockstep`: NS tiles `stride` apart, group by
// group), the remainder one tile at a time (`single`, stride 0).
using lockstep_fn = void (*)(const r16_job& j, int64_t t, int64_t stride);
template <int NS, lockstep_fn lockstep, lockstep_fn single>
void walk_runs(const r16_job& j, int64_t t0, int64_t t1) {
  const int64_t run = (t1 - t0) / NS;
  for (int64_t i = 0; i < run; ++i) lockstep(j, t0 + i, run);
  for (int64_t t = t0 + NS * run; t < t1; ++t) single(j, t, 0);
}

// NS tiles t, t + stride, ..., t + (NS - 1) stride of the job, group by group in lockstep: NS streams of weights in
// flight per thread (one stream per core stops at ~25 GB/s on the 2-core Xeon measured, 2 reach ~28, 4 ~29-31; the
// L2 streamer keeps more lines in flight over several streams). Each tile's own steps are those of a single tile.
// Q5_0: vector 0 of a group holds the high bits laid out so that a shift of each 32-bit lane puts the fifth bit of
// the 4 elements of qs vector v at bit 4 of their bytes (quant_repack.cpp's q5_high_to_tile). Q4_1 / Q5_1 (x ~ d q +
// m): vector 0 holds the 16 rows' d and m, then Q4_0's (Q5_0's) vectors; no zero point, and the min's term is
// off = fma(-(x's group sum), m * d_x, off), y = (acc - off) + bias, as the file's layout gives it.
template <r16_kind K, int MR, int NS>
void decode_lockstep(const r16_job& j, int64_t t, int64_t stride) {
  const r16_layout& L = *j.layout;
  const int64_t ng = L.n_groups, gbytes = L.nv * 64;
  const int8_t* xq[MR];
  const float* xd[MR];
  const int32_t* xs[MR];
  for (int i = 0; i < MR; ++i) {
    xq[i] = j.x.qs(i);
    xd[i] = j.x.d(i);
    xs[i] = j.x.sum(i);
  }
  constexpr bool with_min = K == r16_kind::Q4_1 || K == r16_kind::Q5_1;
  constexpr bool five = K == r16_kind::Q5_0 || K == r16_kind::Q5_1;    // a vector of high bits
  constexpr bool in_place = K == r16_kind::Q4_0 || K == r16_kind::Q4_1;  // high nibbles dotted 16-fold
  constexpr int z_shift = K == r16_kind::Q4_0 ? 3 : K == r16_kind::Q5_0 ? 4 : 7;  // the zero point 8, 16 or 128
  constexpr int h_at = with_min ? 64 : 0;                   // the high bits' vector (Q5_0 / Q5_1)
  constexpr int q_at = (with_min ? 64 : 0) + (five ? 64 : 0);  // the first nibble vector
  const __m512i m4 = _mm512_set1_epi8(0x0f), bit4 = _mm512_set1_epi8(0x10);
  const uint16_t* sc[NS];
  const uint8_t* qs[NS];
  __m512 acc[NS][MR], off[NS][MR];
  for (int s = 0; s < NS; ++s) {
    sc[s] = L.scales(j.packed, t + s * stride);
    qs[s] = L.quants(j.packed, t + s * stride);
    for (int i = 0; i < MR; ++i) acc[s][i] = off[s][i] = _mm512_setzero_ps();
  }
  for (int64_t g = 0; g < ng; ++g) {
    for (int s = 0; s < NS; ++s) {
      const uint8_t* gq = qs[s] + g * gbytes;
      const char* ahead = reinterpret_cast<const char*>(gq + k_prefetch_ahead);
      for (int o = 0; o < q_at; o += 64) _mm_prefetch(ahead + o, _MM_HINT_T1);
      __m512i A[MR], B[MR];
      for (int i = 0; i < MR; ++i) A[i] = B[i] = _mm512_setzero_si512();
      if constexpr (K != r16_kind::Q8_0) {
        __m512i H = _mm512_setzero_si512();
        if constexpr (five) H = _mm512_loadu_si512(gq + h_at);
        for (int v = 0; v < 4; ++v) {
          _mm_prefetch(ahead + q_at + 64 * v, _MM_HINT_T1);
          const __m512i q = _mm512_loadu_si512(gq + q_at + 64 * v);
          // Q4_0 / Q4_1's high nibbles dotted in place (q & 0xf0, 16 times the nibble: no shift on the port of the
          // dots; B is shifted back once below, exact as each term is a multiple of 16 and |B| <= 16 * 240 * 128),
          // Q5_0 / Q5_1's shifted down to meet their fifth bit.
          __m512i lo = _mm512_and_si512(q, m4);
          __m512i hi = in_place ? _mm512_andnot_si512(m4, q) : _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
          if constexpr (five) {
            // (x & bit4) | nibble: 0xF8 is a | (b & c) over (nibble, shifted high bits, bit4).
            lo = _mm512_ternarylogic_epi32(lo, _mm512_slli_epi32(H, 4 - v), bit4, 0xF8);
            hi = _mm512_ternarylogic_epi32(hi, _mm512_srli_epi32(H, v), bit4, 0xF8);
          }
          for (int i = 0; i < MR; ++i) {
            A[i] = _mm512_dpbusd_epi32(A[i], lo, bcast4(xq[i] + 32 * g + 4 * v));
            B[i] = _mm512_dpbusd_epi32(B[i], hi, bcast4(xq[i] + 32 * g + 16 + 4 * v));
          }
        }
      } else {
        for (int v = 0; v < 8; v += 2) {
          _mm_prefetch(ahead + 64 * v, _MM_HINT_T1);
          _mm_prefetch(ahead + 64 * v + 64, _MM_HINT_T1);
          const __m512i q0 = _mm512_loadu_si512(gq + 64 * v), q1 = _mm512_loadu_si512(gq + 64 * (v + 1));
          for (int i = 0; i < MR; ++i) {
            A[i] = _mm512_dpbusd_epi32(A[i], q0, bcast4(xq[i] + 32 * g + 4 * v));
            B[i] = _mm512_dpbusd_epi32(B[i], q1, bcast4(xq[i] + 32 * g + 4 * v + 4));
          }
        }
      }
      const void* d_at = with_min ? static_cast<const void*>(gq) : sc[s] + 16 * g;
      const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(static_cast<const __m256i*>(d_at)));
      for (int i = 0; i < MR; ++i) {
        const __m512i b = in_place ? _mm512_srai_epi32(B[i], 4) : B[i];
        __m512i I = _mm512_add_epi32(A[i], b);
        if constexpr (!with_min) I = _mm512_sub_epi32(I, _mm512_set1_epi32(xs[i][g] << z_shift));
        const __m512 dx = _mm512_set1_ps(xd[i][g]);
        acc[s][i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(I), _mm512_mul_ps(dw, dx), acc[s][i]);
        if constexpr (with_min) {
          const __m512 mw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(gq + 32)));
          off[s][i] = _mm512_fmadd_ps(_mm512_set1_ps(float(-xs[i][g])), _mm512_mul_ps(mw, dx), off[s][i]);
        }
      }
    }
  }
  for (int s = 0; s < NS; ++s) store_tile<MR>(j, t + s * stride, acc[s], with_min ? off[s] : nullptr);
}

// The decode of a 32-element type: 4 runs per thread.
template <r16_kind K, int MR>
constexpr r16_decode_fn decode_tiles = &walk_runs<4, &decode_lockstep<K, MR, 4>, &decode_lockstep<K, MR, 1>>;

// Q4_K: per tile and 256-element group, the 16 rows' 6-bit scales and mins unpacked from their 3 words in the vector
// domain (quant::k_scale_min's rule, 4 sub-blocks per 32-bit lane), each 32-element sub-block's dots (8 vpdpbusd over
// the low or high nibbles) times its scale with vpmulld, the mins against x's 32-sums on vpdpwssd (in L2: 57 -> 62
// GB/s against 8 vpmulld; 9B-l8 decode +2%): lane j = row j's exact integers I and O of quant_linear.h's rule; then
// acc = fma(float(I), d * d_x, acc), off = fma(float(O), dmin * d_x, off) in group order and y = (acc - off) + bias,
// as decode1_q4k stores them. Q5_K (Q5): the same with 8 vectors of the 32 high-bit bytes (vectors 4 .. 11, qs from
// 12): the fifth bit of qs byte 4 v + i's low (high) nibble is bit 2 c (2 c + 1) of qh byte 4 v + i, put at bit 4 of
// the byte by one shift and one ternary-logic op, so its nibbles are taken shifted down, not in place.
template <int MR, int NS, bool Q5>
void decode_lockstep_q4k(const r16_job& j, int64_t t, int64_t stride) {
  const r16_layout& L = *j.layout;
  const int64_t ng = L.n_groups, gbytes = L.nv * 64;
  const int8_t* xq[MR];
  const float* xd[MR];
  for (int i = 0; i < MR; ++i) {
    xq[i] = j.x.qs(i);
    xd[i] = j.x.d(i);
  }
  const __m512i m4 = _mm512_set1_epi8(0x0f), low6 = _mm512_set1_epi8(0x3f), two = _mm512_set1_epi8(0x03);
  const __m512i bit4 = _mm512_set1_epi8(0x10);
  constexpr int qs_at = Q5 ? 12 * 64 : 4 * 64;  // the first vector of qs
  // Per 32-bit lane: byte b zero-extended to 32 bits; bytes 0, 1 (2, 3) as two 16-bit words.
  const __m512i byte_of[4] = {lane_shuffle(0x80808000u), lane_shuffle(0x80808001u), lane_shuffle(0x80808002u),
                              lane_shuffle(0x80808003u)};
  const __m512i words_01 = lane_shuffle(0x80018000u), words_23 = lane_shuffle(0x80038002u);
  const uint8_t* tile[NS];
  __m512 acc[NS][MR], off[NS][MR];
  for (int s = 0; s < NS; ++s) {
    tile[s] = L.quants(j.packed, t + s * stride);
    for (int i = 0; i < MR; ++i) acc[s][i] = off[s][i] = _mm512_setzero_ps();
  }
  for (int64_t g = 0; g < ng; ++g) {
    for (int s = 0; s < NS; ++s) {
      const uint8_t* gv = tile[s] + g * gbytes;
      const char* ahead = reinterpret_cast<const char*>(gv + k_prefetch_ahead);
      for (int64_t o = 0; o < 256; o += 64) _mm_prefetch(ahead + o, _MM_HINT_T1);
      const __m512i W0 = _mm512_loadu_si512(gv + 64), W1 = _mm512_loadu_si512(gv + 128);
      const __m512i W2 = _mm512_loadu_si512(gv + 192);
      // Bytes 0-3 of each lane: sub-blocks 0-3 (S03, M03) and 4-7 (S47, M47) of that row.
      const __m512i S[2] = {
          _mm512_and_si512(W0, low6),
          _mm512_or_si512(_mm512_and_si512(W2, m4),
                          _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(W0, 6), two), 4))};
      const __m512i M[2] = {
          _mm512_and_si512(W1, low6),
          _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(W2, 4), m4),
                          _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(W1, 6), two), 4))};
      // Byte sb % 4 of each lane of V[sb / 4], zero-extended (one shuffle: off the port of the shifts and dots).
      auto pick = [&](const __m512i* V, int sb) { return _mm512_shuffle_epi8(V[sb / 4], byte_of[sb % 4]); };
      // Q4_K's high nibbles are dotted in place (q & 0xf0: 16 times the nibble, no shift on the port of the dots), so
      // their part of I is gathered 16-fold in Ih and shifted back once per group: every term is a multiple of 16,
      // and |Ih| <= 4 * 32 * 240 * 128 * 63 < 2^31, so I is exact.
      __m512i I[MR], Ih[MR];
      for (int i = 0; i < MR; ++i) I[i] = Ih[i] = _mm512_setzero_si512();
      for (int c = 0; c < 4; ++c) {
        __m512i lo_sum[MR], hi_sum[MR];
        for (int i = 0; i < MR; ++i) lo_sum[i] = hi_sum[i] = _mm512_setzero_si512();
        for (int v = 0; v < 8; ++v) {
          _mm_prefetch(ahead + qs_at + 64 * (8 * c + v), _MM_HINT_T1);
          const __m512i q = _mm512_loadu_si512(gv + qs_at + 64 * (8 * c + v));
          __m512i lo = _mm512_and_si512(q, m4), hi;
          if constexpr (Q5) {
            if (c == 0) _mm_prefetch(ahead + 256 + 64 * v, _MM_HINT_T1);
            const __m512i H = _mm512_loadu_si512(gv + 256 + 64 * v);
            // Bit 2 c (2 c + 1) of each byte to bit 4 (within the byte whatever the shift's width); 0xF8 is
            // a | (b & c).
            auto to_bit4 = [&](int b) { return b <= 4 ? _mm512_slli_epi32(H, 4 - b) : _mm512_srli_epi32(H, b - 4); };
            lo = _mm512_ternarylogic_epi32(lo, to_bit4(2 * c), bit4, 0xF8);
            hi = _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srli_epi16(q, 4), m4), to_bit4(2 * c + 1), bit4,
                                           0xF8);
          } else {
            hi = _mm512_andnot_si512(m4, q);
          }
          for (int i = 0; i < MR; ++i) {
            const int8_t* x = xq[i] + 256 * g + 64 * c + 4 * v;
            lo_sum[i] = _mm512_dpbusd_epi32(lo_sum[i], lo, bcast4(x));
            hi_sum[i] = _mm512_dpbusd_epi32(hi_sum[i], hi, bcast4(x + 32));
          }
        }
        const __m512i s_lo = pick(S, 2 * c), s_hi = pick(S, 2 * c + 1);
        for (int i = 0; i < MR; ++i) {
          I[i] = _mm512_add_epi32(I[i], _mm512_mullo_epi32(lo_sum[i], s_lo));
          Ih[i] = _mm512_add_epi32(Ih[i], _mm512_mullo_epi32(hi_sum[i], s_hi));
        }
      }
      for (int i = 0; i < MR; ++i) I[i] = _mm512_add_epi32(I[i], Q5 ? Ih[i] : _mm512_srai_epi32(Ih[i], 4));
      const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(gv)));
      const __m512 dmin = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(gv + 32)));
      for (int i = 0; i < MR; ++i) {
        // O = sum over sb of min_sb * (x's sum of sub-block sb): the mins as 16-bit pairs (2k, 2k + 1) per lane
        // against x's sums 2k, 2k + 1 (adjacent int16s) on vpdpwssd; |min| < 64, |sum| <= 32 * 127: exact.
        const int16_t* bs = j.x.bsum(i, g) + 16;  // x's 8 sums of 32
        __m512i O = _mm512_setzero_si512();
        for (int h = 0; h < 2; ++h) {
          O = _mm512_dpwssd_epi32(O, _mm512_shuffle_epi8(M[h], words_01), bcast4(bs + 4 * h));
          O = _mm512_dpwssd_epi32(O, _mm512_shuffle_epi8(M[h], words_23), bcast4(bs + 4 * h + 2));
        }
        acc[s][i] =
            _mm512_fmadd_ps(_mm512_cvtepi32_ps(I[i]), _mm512_mul_ps(d, _mm512_set1_ps(xd[i][g])), acc[s][i]);
        off[s][i] =
            _mm512_fmadd_ps(_mm512_cvtepi32_ps(O), _mm512_mul_ps(dmin, _mm512_set1_ps(xd[i][g])), off[s][i]);
      }
    }
  }
  for (int s = 0; s < NS; ++s) store_tile<MR>(j, t + s * stride, acc[s], off[s]);
}

// The decode of Q4_K / Q5_K: 4 runs per thread for one x row, 2 for more (two accumulators per row and tile).
template <int MR>
constexpr int q4k_runs = MR == 1 ? 4 : 2;
template <int MR, bool Q5>
constexpr r16_decode_fn decode_tiles_q4k =
    &walk_runs<q4k_runs<MR>, &decode_lockstep_q4k<MR, q4k_runs<MR>, Q5>, &decode_lockstep_q4k<MR, 1, Q5>>;

// Q6_K (vector 0: the 16 rows' d; 1 .. 4: the 16 int8 scales; then ql and qh in the order read, three vectors per
// step, quant_repack.h): per half h of the group and word m of its ql / qh chunks, the 4 quarters' 6-bit weights (ql nibble | 2 qh bits << 4, unsigned as
// stored) dotted with vpdpbusd against x's bytes 128 h + 32 q + 4 m; each 16-element sub-block's dot times its scale
// (vpmulld) into I, and O = 32 * sum of scale x x's 16-sums (the scales as 16-bit pairs on vpdpwssd; |O| < 2^28):
// lane j = row j's exact I and O of quant_linear.h's rule; acc = fma(float(I), d * d_x, acc), off = fma(float(O),
// d * d_x, off) in group order and y = (acc - off) + bias, as the file's layout gives them.
template <int MR, int NS>
void decode_lockstep_q6k(const r16_job& j, int64_t t, int64_t stride) {
  const r16_layout& L = *j.layout;
  const int64_t ng = L.n_groups, gbytes = L.nv * 64;
  const int8_t* xq[MR];
  const float* xd[MR];
  for (int i = 0; i < MR; ++i) {
    xq[i] = j.x.qs(i);
    xd[i] = j.x.d(i);
  }
  const __m512i m4 = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
  // Per 32-bit lane: byte b to the top byte (sign-extended by a shift of 24); bytes 0, 1 (2, 3) to the high bytes of
  // two 16-bit words (sign-extended by a shift of 8).
  const __m512i top_of[4] = {lane_shuffle(0x00808080u), lane_shuffle(0x01808080u), lane_shuffle(0x02808080u),
                             lane_shuffle(0x03808080u)};
  const __m512i words_01 = lane_shuffle(0x01800080u), words_23 = lane_shuffle(0x03800280u);
  const uint8_t* tile[NS];
  __m512 acc[NS][MR], off[NS][MR];
  for (int s = 0; s < NS; ++s) {
    tile[s] = L.quants(j.packed, t + s * stride);
    for (int i = 0; i < MR; ++i) acc[s][i] = off[s][i] = _mm512_setzero_ps();
  }
  for (int64_t g = 0; g < ng; ++g) {
    for (int s = 0; s < NS; ++s) {
      const uint8_t* gv = tile[s] + g * gbytes;
      const char* ahead = reinterpret_cast<const char*>(gv + k_prefetch_ahead);
      for (int v = 0; v < 5; ++v) _mm_prefetch(ahead + 64 * v, _MM_HINT_T1);
      auto vec = [&](int v) { return _mm512_loadu_si512(gv + 64 * v); };
      const __m512i SC[4] = {vec(1), vec(2), vec(3), vec(4)};
      __m512i I[MR];
      for (int i = 0; i < MR; ++i) I[i] = _mm512_setzero_si512();
      for (int h = 0; h < 2; ++h)
        for (int half = 0; half < 2; ++half) {
          // Sub-blocks 8 h + 2 q + half (q = 0 .. 3): elements 128 h + 32 q + 16 half .. + 15.
          __m512i D[4][MR];
          for (int q = 0; q < 4; ++q)
            for (int i = 0; i < MR; ++i) D[q][i] = _mm512_setzero_si512();
          for (int m = 4 * half; m < 4 * half + 4; ++m) {
            const int l0 = q6k_vector_of_word(16 * h + m), l1 = l0 + 1, hb = l0 + 2;  // ql, ql + 8, qh
            _mm_prefetch(ahead + 64 * l0, _MM_HINT_T1);
            _mm_prefetch(ahead + 64 * l1, _MM_HINT_T1);
            _mm_prefetch(ahead + 64 * hb, _MM_HINT_T1);
            const __m512i QL0 = vec(l0), QL1 = vec(l1), QH = vec(hb);
            // (nibble & 0x0f) | (high bits & 0x30): 0xEA is (a & b) | c.
            const __m512i W[4] = {
                _mm512_ternarylogic_epi32(QL0, m4, _mm512_and_si512(_mm512_slli_epi16(QH, 4), m30), 0xEA),
                _mm512_ternarylogic_epi32(QL1, m4, _mm512_and_si512(_mm512_slli_epi16(QH, 2), m30), 0xEA),
                _mm512_ternarylogic_epi32(_mm512_srli_epi16(QL0, 4), m4, _mm512_and_si512(QH, m30), 0xEA),
                _mm512_ternarylogic_epi32(_mm512_srli_epi16(QL1, 4), m4,
                                          _mm512_and_si512(_mm512_srli_epi16(QH, 2), m30), 0xEA)};
            for (int q = 0; q < 4; ++q)
              for (int i = 0; i < MR; ++i)
                D[q][i] = _mm512_dpbusd_epi32(D[q][i], W[q], bcast4(xq[i] + 256 * g + 128 * h + 32 * q + 4 * m));
          }
          for (int q = 0; q < 4; ++q) {
            const int sb = 8 * h + 2 * q + half;
            const __m512i sc = _mm512_srai_epi32(_mm512_shuffle_epi8(SC[sb / 4], top_of[sb % 4]), 24);
            for (int i = 0; i < MR; ++i) I[i] = _mm512_add_epi32(I[i], _mm512_mullo_epi32(D[q][i], sc));
          }
        }
      const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(gv)));
      for (int i = 0; i < MR; ++i) {
        const int16_t* bs = j.x.bsum(i, g);  // x's 16 sums of 16
        __m512i O = _mm512_setzero_si512();
        for (int w = 0; w < 4; ++w) {
          O = _mm512_dpwssd_epi32(O, _mm512_srai_epi16(_mm512_shuffle_epi8(SC[w], words_01), 8), bcast4(bs + 4 * w));
          O = _mm512_dpwssd_epi32(O, _mm512_srai_epi16(_mm512_shuffle_epi8(SC[w], words_23), 8),
                                  bcast4(bs + 4 * w + 2));
        }
        O = _mm512_slli_epi32(O, 5);
        const __m512 sd = _mm512_mul_ps(d, _mm512_set1_ps(xd[i][g]));
        acc[s][i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(I[i]), sd, acc[s][i]);
        off[s][i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(O), sd, off[s][i]);
      }
    }
  }
  for (int s = 0; s < NS; ++s) store_tile<MR>(j, t + s * stride, acc[s], off[s]);
}

// The decode of Q6_K: 4 runs per thread for one x row, 2 for more.
template <int MR>
constexpr r16_decode_fn decode_tiles_q6k =
    &walk_runs<q4k_runs<MR>, &decode_lockstep_q6k<MR, q4k_runs<MR>>, &decode_lockstep_q6k<MR, 1>>;

}  // namespace

bool r16_pack_tile_avx512(const r16_layout& L, const uint8_t* const* rows, uint8_t* tile) {
  const int64_t bb = int64_t(dtype_block_bytes(L.type));
  auto load16 = [](const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); };
  // v[i] lane l = row 4 l + i's 16 bytes at block offset `at`; transposed: vector i's dword j = row j's bytes
  // at + 4 i .. at + 4 i + 3.
  auto transposed4 = [&](int64_t at, __m512i* v) {
    for (int i = 0; i < 4; ++i) {
      const __m256i a =
          _mm256_inserti128_si256(_mm256_castsi128_si256(load16(rows[i] + at)), load16(rows[4 + i] + at), 1);
      const __m256i b =
          _mm256_inserti128_si256(_mm256_castsi128_si256(load16(rows[8 + i] + at)), load16(rows[12 + i] + at), 1);
      v[i] = _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1);
    }
    transpose4x4_lanes(v);
  };
  if (L.type == dtype::Q4_K || L.type == dtype::Q5_K || L.type == dtype::Q6_K) {
    // Vector 0: d (and Q4_K / Q5_K's dmin); block word w (Q4_K / Q5_K: from byte 4, after d and dmin) to vector
    // 1 + w (Q6_K: q6k_vector_of_word(w)), 4 words per 16-byte load, the last words of a Q4_K or Q5_K block (35 or 43 of them) one at a time.
    const bool q6 = L.type == dtype::Q6_K;
    const int64_t first = q6 ? 0 : 4, words = L.nv - 1;
    auto vector_of = [q6](int64_t w) { return q6 ? q6k_vector_of_word(int(w)) : 1 + w; };
    for (int64_t g = 0; g < L.n_groups; ++g) {
      const int64_t o = g * bb;
      uint8_t* gv = tile + g * L.nv * 64;
      for (int j = 0; j < 16; ++j) {
        std::memcpy(gv + 2 * j, rows[j] + o + (q6 ? 208 : 0), 2);
        if (!q6) std::memcpy(gv + 32 + 2 * j, rows[j] + o + 2, 2);
      }
      int64_t w = 0;
      for (; w + 4 <= words; w += 4) {
        __m512i v[4];
        transposed4(o + first + 4 * w, v);
        for (int i = 0; i < 4; ++i) _mm512_storeu_si512(gv + 64 * vector_of(w + i), v[i]);
      }
      for (; w < words; ++w)
        for (int j = 0; j < 16; ++j) std::memcpy(gv + 64 * vector_of(w) + 4 * j, rows[j] + o + first + 4 * w, 4);
    }
    return true;
  }
  // The 32-element types: d (and m) per row to the scales area or vector 0, Q5_0 / Q5_1's high bits rearranged per
  // row (q5_high_to_tile), the quant bytes 4 words of 16 rows per 16-byte load (Q8_0 + 128).
  const bool q8 = L.type == dtype::Q8_0, with_min = L.type == dtype::Q4_1 || L.type == dtype::Q5_1;
  const bool five = L.type == dtype::Q5_0 || L.type == dtype::Q5_1;
  const int64_t h_at = with_min ? 64 : 0, q_at = h_at + (five ? 64 : 0);  // in the group's vectors
  const int64_t qs_byte = (with_min ? 4 : 2) + (five ? 4 : 0);               // in the block
  auto* sc = reinterpret_cast<uint16_t*>(tile);
  const __m512i flip = _mm512_set1_epi8(char(0x80));
  for (int64_t g = 0; g < L.n_groups; ++g) {
    const int64_t o = g * bb;
    uint8_t* gv = tile + L.scale_bytes + g * L.nv * 64;
    for (int j = 0; j < 16; ++j) {
      if (with_min) {
        std::memcpy(gv + 2 * j, rows[j] + o, 2);
        std::memcpy(gv + 32 + 2 * j, rows[j] + o + 2, 2);
      } else {
        std::memcpy(&sc[16 * g + j], rows[j] + o, 2);
      }
      if (five) {
        uint32_t qh;
        std::memcpy(&qh, rows[j] + o + qs_byte - 4, 4);
        qh = q5_high_to_tile(qh);
        std::memcpy(gv + h_at + 4 * j, &qh, 4);
      }
    }
    for (int h = 0; h < (q8 ? 2 : 1); ++h) {  // h: Q8_0's second 16 quant bytes
      __m512i v[4];
      transposed4(o + qs_byte + 16 * h, v);
      for (int i = 0; i < 4; ++i)
        _mm512_storeu_si512(gv + q_at + 256 * h + 64 * i, q8 ? _mm512_xor_si512(v[i], flip) : v[i]);
    }
  }
  return true;
}

r16_decode_fn r16_decode_avx512(dtype t, int64_t m) {
  if (t == dtype::Q4_K || t == dtype::Q5_K) {
    const bool q5 = t == dtype::Q5_K;
    switch (m) {
      case 1: return q5 ? decode_tiles_q4k<1, true> : decode_tiles_q4k<1, false>;
      case 2: return q5 ? decode_tiles_q4k<2, true> : decode_tiles_q4k<2, false>;
      case 3: return q5 ? decode_tiles_q4k<3, true> : decode_tiles_q4k<3, false>;
      default: return nullptr;
    }
  }
  if (t == dtype::Q6_K) {
    switch (m) {
      case 1: return decode_tiles_q6k<1>;
      case 2: return decode_tiles_q6k<2>;
      case 3: return decode_tiles_q6k<3>;
      default: return nullptr;
    }
  }
  auto pick = [m](auto kind) -> r16_decode_fn {
    constexpr r16_kind K = decltype(kind)::value;
    switch (m) {
      case 1: return decode_tiles<K, 1>;
      case 2: return decode_tiles<K, 2>;
      case 3: return decode_tiles<K, 3>;
      default: return nullptr;
    }
  };
  switch (t) {
    case dtype::Q4_0: return pick(std::integral_constant<r16_kind, r16_kind::Q4_0>{});
    case dtype::Q5_0: return pick(std::integral_constant<r16_kind, r16_kind::Q5_0>{});
    case dtype::Q8_0: return pick(std::integral_constant<r16_kind, r16_kind::Q8_0>{});
    case dtype::Q4_1: return pick(std::integral_constant<r16_kind, r16_kind::Q4_1>{});
    case dtype::Q5_1: return pick(std::integral_constant<r16_kind, r16_kind::Q5_1>{});
    default: return nullptr;
  }
}

}  // namespace autoglm::cpu

#pragma GCC diagnostic pop
#pragma GCC pop_options

#else

#include "kernels/cpu/quant_repack.h"

namespace autoglm::cpu {
r16_decode_fn r16_decode_avx512(dtype, int64_t) { return nullptr; }
bool r16_pack_tile_avx512(const r16_layout&, const uint8_t* const*, uint8_t*) { return false; }
}  // namespace autoglm::cpu

#endif
