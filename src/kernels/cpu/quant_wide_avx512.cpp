// kernels/cpu/quant_wide_avx512.cpp: the wide prefill of the quantized LINEAR on AVX-512 VNNI, see quant_gemm.h's
// wide_fn: the 32-element types (weights Q8_0: q; Q4_0: q - 8; Q5_0: q - 16; Q4_1/Q5_1: q, with the min's x-sum
// term) and, further down, the k-quants (Q4_K, Q5_K, Q6_K: per-run scales and mins).
// Same integers and float steps as the shared packed kernel (quant_microkernel.h), so the bytes equal
// every other path's; only the tiling differs:
//  - register tile: 6 x rows x 32 W rows (2 zmm of 16 lanes, lane r = W row r), 12 vpdpbusd chains, 12 float
//    accumulators; per 4-byte step 2 W loads and 6 broadcasts feed 12 vpdpbusd (the 8-lane ymm tile of the shared
//    kernel: 1 load + 6 broadcasts per 6);
//  - vpdpbusd takes x unsigned (x + 128, laid out once per call by pack_x) and W signed, and the packed tile keeps
//    -128 x (sum of the group's weights) per row, which seeds the chain: the group's integer comes out exact with no
//    correction step (the shared kernel adds -128 x sum(x) or -8 x sum(x) per x row and group);
//  - W scales are converted to float once at packing; each thread packs each of its W tiles once per call (not
//    once per L2 panel of x) and runs all of x against it in L1-sized blocks of groups; x streams from L2/L3.
// LINEAR_SWIGLU (wide_job::swiglu): a tile's lanes 0-15 are 16 gate rows and lanes 16-31 their up rows, and the store
// writes silu(gate) * up (SILU_MUL's arithmetic on the finished sums): the [m, 2n] product never reaches memory.
#if defined(__x86_64__)

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "core/aligned_buffer.h"
#include "core/quant_blocks.h"
#include "kernels/cpu/quant_gemm.h"
#include "kernels/cpu/quant_repack.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "kernels/cpu/quant_isa_x86.h"
#include "kernels/cpu/vec_exp.h"

namespace autoglm::cpu::qgemm {

namespace {

using V = v_x86<true>;

constexpr int k_rows = 32;  // W rows per packed tile: 2 zmm vectors of 16 lanes
constexpr int k_mr = 6;     // x rows per register tile and per panel of x
// Packed tile, per group: 8 steps x 2 vectors x 64 bytes (step s, vector v, lane r: weights 4s .. 4s+3 of row
// 16v + r, signed), then int32 seed[32] = -128 x the row's weight sum, then float dw[32].
constexpr int64_t k_w_group = 8 * 128 + 128 + 128;
// x panel (6 rows), per group: 8 steps x 6 rows x 4 bytes of x + 128; then the panel's float d[8] per group after
// all its groups.
constexpr int64_t k_x_qs = 8 * k_mr * 4;
constexpr int64_t k_x_group = k_x_qs + 32;
// Groups per pass of a packed tile over all panels: 12 x 1280 bytes stay in the 32 KiB L1 beside x's stream.
constexpr int64_t k_block_groups = 12;
// k-quants: sub-block runs sharing one integer scale per row (Q4_K/Q5_K 8 runs of 32 elements with a 6-bit scale
// and min; Q6_K 16 runs of 16 with an int8 scale, no min). Packed tile per 256-group: 64 steps x 2 vectors x 64
// bytes of unsigned weights, int32 scale[runs][32], int32 pair[pairs][32] (two int16 per lane: Q4_K/Q5_K the mins
// of runs 2p and 2p + 1, Q6_K the scales of runs 2p and 2p + 1), float d[32], float dmin[32].
template <wtype T>
constexpr bool is_k = T == wtype::Q4_K || T == wtype::Q5_K || T == wtype::Q6_K;
// Q4_1 / Q5_1 (x ~ d q + m): their packed group adds float dmin[32] (the f16 m), their x panel int32 sum[8] per group
// after the d's, and the accumulators off = fma(-(sum of x), m d_x, off) beside acc.
template <wtype T>
constexpr bool has_min = T == wtype::Q4_1 || T == wtype::Q5_1;
template <wtype T>
constexpr int k_runs = T == wtype::Q6_K ? 16 : 8;
template <wtype T>
constexpr int k_pairs = k_runs<T> / 2;
template <wtype T>
constexpr int64_t k_wk_group = 64 * 128 + 128 * (k_runs<T> + k_pairs<T>) + 256;
// x panel per 256-group: its 8 chunks of k_x_qs bytes (x signed as quantized); after all groups float d[8] per
// group, then int16 sums[6][24] per group (xq_view::bsum of each row).
constexpr int64_t k_xk_qs = 8 * k_x_qs;
constexpr int64_t k_xk_group = k_xk_qs + 32 + k_mr * 48;
// Per type: packed bytes and x bytes per group, groups per L1 block (2 x ~10 KiB for the k-quants), floats of
// carried state per x row (acc; k-quants acc then off).
template <wtype T>
constexpr int64_t w_group = is_k<T> ? k_wk_group<T> : has_min<T> ? k_w_group + 128 : k_w_group;
template <wtype T>
constexpr int64_t x_group = is_k<T> ? k_xk_group : has_min<T> ? k_x_group + 32 : k_x_group;
template <wtype T>
constexpr int64_t block_groups = is_k<T> ? 2 : k_block_groups;
template <wtype T>
constexpr int64_t state_floats = is_k<T> || has_min<T> ? 64 : 32;

// One 32-byte chunk of the 6 rows of a panel (r[i] = row i's bytes as the kernel takes them) into 8 steps of 6 x 4
// bytes: rows 0-3 by a 4 x 4 transpose of 32-bit words per 16 bytes, rows 4-5 by 64-bit unpacks.
void put_chunk(const __m256i* r, uint8_t* o) {
  // Words w of rows a, b interleaved: (a0 b0 a1 b1 | a4 b4 a5 b5) and (a2 b2 a3 b3 | a6 b6 a7 b7).
  const __m256i a01 = _mm256_unpacklo_epi32(r[0], r[1]), b01 = _mm256_unpackhi_epi32(r[0], r[1]);
  const __m256i a23 = _mm256_unpacklo_epi32(r[2], r[3]), b23 = _mm256_unpackhi_epi32(r[2], r[3]);
  const __m256i a45 = _mm256_unpacklo_epi32(r[4], r[5]), b45 = _mm256_unpackhi_epi32(r[4], r[5]);
  // Step s: rows 0-3 (16 bytes) then rows 4-5 (8 bytes); steps 0, 1, 4, 5 from the a's, 2, 3, 6, 7 from the b's.
  const __m256i s0 = _mm256_unpacklo_epi64(a01, a23), s1 = _mm256_unpackhi_epi64(a01, a23);
  const __m256i s2 = _mm256_unpacklo_epi64(b01, b23), s3 = _mm256_unpackhi_epi64(b01, b23);
  const __m256i q03[4] = {s0, s1, s2, s3}, q45[2] = {a45, b45};
  for (int h = 0; h < 2; ++h)
    for (int s = 0; s < 4; ++s) {
      const int step = 4 * h + s;
      const __m128i lo = h ? _mm256_extracti128_si256(q03[s], 1) : _mm256_castsi256_si128(q03[s]);
      const __m128i hi = h ? _mm256_extracti128_si256(q45[s / 2], 1) : _mm256_castsi256_si128(q45[s / 2]);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(o + 24 * step), lo);
      _mm_storel_epi64(reinterpret_cast<__m128i*>(o + 24 * step + 16), s % 2 ? _mm_unpackhi_epi64(hi, hi) : hi);
    }
}

// 32-element types: per group, the 6 rows' 32 bytes + 128 (xor 0x80) as one chunk; missing rows are x = 0. With
// sums (Q4_1/Q5_1), the rows' int32 sums of x per group follow the d's.
template <bool sums>
void pack_x(const xq_view& x, int64_t m, int64_t p0, int64_t p1, uint8_t* out) {
  const int64_t ng = x.n_groups;
  const __m256i flip = _mm256_set1_epi8(char(0x80));
  for (int64_t p = p0; p < p1; ++p) {
    uint8_t* qs = out + p * ng * (sums ? k_x_group + 32 : k_x_group);
    float* d = reinterpret_cast<float*>(qs + ng * k_x_qs);
    int32_t* xs = reinterpret_cast<int32_t*>(d + 8 * ng);
    const int8_t* src[k_mr];
    for (int i = 0; i < k_mr; ++i) src[i] = p * k_mr + i < m ? x.qs(p * k_mr + i) : nullptr;
    for (int64_t g = 0; g < ng; ++g) {
      __m256i r[k_mr];
      for (int i = 0; i < k_mr; ++i) {
        r[i] = src[i] ? _mm256_xor_si256(V::load(src[i] + 32 * g), flip) : flip;
        d[8 * g + i] = src[i] ? x.d(p * k_mr + i)[g] : 0.0f;
        if constexpr (sums) xs[8 * g + i] = src[i] ? x.sum(p * k_mr + i)[g] : 0;
      }
      d[8 * g + 6] = d[8 * g + 7] = 0.0f;
      if constexpr (sums) xs[8 * g + 6] = xs[8 * g + 7] = 0;
      put_chunk(r, qs + g * k_x_qs);
    }
  }
}

// k-quants (weights unsigned, x signed as it is): per 256-group, its 8 chunks (k_xk_qs bytes), after all groups the
// panel's float d[8] per group, then per group the 6 rows' 24 int16 sums (xq_view::bsum); missing rows are zeros.
void pack_x_k(const xq_view& x, int64_t m, int64_t p0, int64_t p1, uint8_t* out) {
  const int64_t ng = x.n_groups;
  for (int64_t p = p0; p < p1; ++p) {
    uint8_t* qs = out + p * ng * k_xk_group;
    float* d = reinterpret_cast<float*>(qs + ng * k_xk_qs);
    int16_t* bs = reinterpret_cast<int16_t*>(d + 8 * ng);
    const int8_t* src[k_mr];
    for (int i = 0; i < k_mr; ++i) src[i] = p * k_mr + i < m ? x.qs(p * k_mr + i) : nullptr;
    for (int64_t g = 0; g < ng; ++g) {
      for (int i = 0; i < k_mr; ++i) {
        d[8 * g + i] = src[i] ? x.d(p * k_mr + i)[g] : 0.0f;
        if (src[i]) std::memcpy(bs + (k_mr * g + i) * 24, x.bsum(p * k_mr + i, g), 48);
        else std::memset(bs + (k_mr * g + i) * 24, 0, 48);
      }
      d[8 * g + 6] = d[8 * g + 7] = 0.0f;
      for (int c = 0; c < 8; ++c) {
        __m256i r[k_mr];
        for (int i = 0; i < k_mr; ++i) r[i] = src[i] ? V::load(src[i] + 256 * g + 32 * c) : _mm256_setzero_si256();
        put_chunk(r, qs + g * k_xk_qs + c * k_x_qs);
      }
    }
  }
}

// The 32 signed weights of group g of a W row (at the row's block g); Q4_1/Q5_1's unsigned q fit as they are.
template <wtype T>
__m256i weights(const uint8_t* blk) {
  if constexpr (T == wtype::Q8_0) return V::load(blk + 2);
  else if constexpr (T == wtype::Q4_0) return _mm256_sub_epi8(V::nibbles16(blk + 2), _mm256_set1_epi8(8));
  else if constexpr (T == wtype::Q5_0)
    return _mm256_sub_epi8(V::or_(V::nibbles16(blk + 6), V::bits32(blk + 2, 0x10)), _mm256_set1_epi8(16));
  else if constexpr (T == wtype::Q4_1) return V::nibbles16(blk + 4);
  else return V::or_(V::nibbles16(blk + 8), V::bits32(blk + 4, 0x10));
}

template <wtype T>
constexpr int64_t block_bytes = T == wtype::Q8_0 ? 34 : T == wtype::Q4_0 ? 18 : T == wtype::Q5_0 ? 22
                                : T == wtype::Q4_1 ? 20 : T == wtype::Q5_1 ? 24
                                : T == wtype::Q4_K ? 144 : T == wtype::Q5_K ? 176 : 210;

// The 32 W rows of tile t (the last valid row repeated past the end): rows 32t .. 32t + 31, or with swiglu gate
// rows 16t .. 16t + 15 then the up rows n + 16t .. n + 16t + 15 (lanes 0-15: gates, 16-31: their ups); tile_row
// gives lane r's row.
int64_t tile_row(const wide_job& j, int64_t t, int r) {
  if (!j.swiglu) return std::min<int64_t>(t * k_rows + r, j.n - 1);
  const int64_t g = std::min<int64_t>(t * (k_rows / 2) + r % (k_rows / 2), j.n - 1);
  return r < k_rows / 2 ? g : j.n + g;
}
void tile_rows(const wide_job& j, int64_t t, const uint8_t** w) {
  for (int r = 0; r < k_rows; ++r) w[r] = j.w + tile_row(j, t, r) * j.w_stride;
}

// tile_rows of an r16 copy: the rows unpacked to the file's layout in `buf` (the thread's, kept until the next tile).
void unpacked_tile_rows(const wide_job& j, int64_t t, const uint8_t** w, aligned_buffer& buf) {
  buf.resize(size_t(k_rows * j.w_stride));
  uint8_t* out = static_cast<uint8_t*>(buf.data());
  for (int r = 0; r < k_rows; ++r) {
    r16_unpack_rows(*j.r16, j.r16_data, tile_row(j, t, r), 1, out + r * j.w_stride, j.w_stride);
    w[r] = out + r * j.w_stride;
  }
}

// x row `row`'s finished sums of tile t (a0: lanes 0-15, a1: lanes 16-31) into y, each plus its bias (0 without
// one, as LINEAR adds it); with swiglu, y = silu(gate) * up by silu_mul16_avx512: SILU_MUL's bytes.
inline void store_tile_row(const wide_job& j, int64_t row, int64_t t, __m512 a0, __m512 a1) {
  float* y = j.y + row * j.y_stride;
  if (!j.swiglu) {
    const int64_t n0 = t * k_rows;
    for (int v = 0; v < 2; ++v) {
      const int64_t lanes = std::clamp<int64_t>(j.n - n0 - 16 * v, 0, 16);
      if (!lanes) break;
      const __mmask16 mask = __mmask16((1u << lanes) - 1);
      const __m512 b = j.bias ? _mm512_maskz_loadu_ps(mask, j.bias + n0 + 16 * v) : _mm512_setzero_ps();
      _mm512_mask_storeu_ps(y + n0 + 16 * v, mask, _mm512_add_ps(v ? a1 : a0, b));
    }
    return;
  }
  const int64_t c0 = t * (k_rows / 2), lanes = std::min<int64_t>(16, j.n - c0);
  const __mmask16 mask = __mmask16((1u << lanes) - 1);
  const __m512 g = _mm512_add_ps(a0, j.bias ? _mm512_maskz_loadu_ps(mask, j.bias + c0) : _mm512_setzero_ps());
  const __m512 u = _mm512_add_ps(a1, j.bias ? _mm512_maskz_loadu_ps(mask, j.bias + j.n + c0) : _mm512_setzero_ps());
  _mm512_mask_storeu_ps(y + c0, mask, silu_mul16_avx512(g, u));
}

// The 32 W rows `w` (tile_rows) into the packed layout, 8 rows at a time: their 32 weights transposed to
// lane-per-row 4-byte groups, the row sums by vpdpbusd against ones.
template <wtype T>
void pack_tile(const uint8_t* const* w, int64_t g0, int64_t g1, uint8_t* out) {
  const __m256i ones = _mm256_set1_epi8(1);
  for (int64_t g = g0; g < g1; ++g, out += w_group<T>) {
    const int64_t o = g * block_bytes<T>;
    for (int b = 0; b < 4; ++b) {
      __m256i v[8];
      uint16_t h[8], hm[8];
      for (int r = 0; r < 8; ++r) {
        v[r] = weights<T>(w[8 * b + r] + o);
        std::memcpy(&h[r], w[8 * b + r] + o, 2);
        std::memcpy(&hm[r], w[8 * b + r] + o + 2, 2);
      }
      V::transpose8(v);  // v[s] lane r = weights 4s .. 4s+3 of row 8b + r
      __m256i sum = _mm256_setzero_si256();
      for (int s = 0; s < 8; ++s) {
        _mm256_store_si256(reinterpret_cast<__m256i*>(out + 128 * s + 32 * b), v[s]);
        sum = _mm256_dpbusd_epi32(sum, ones, v[s]);
      }
      _mm256_store_si256(reinterpret_cast<__m256i*>(out + 1024 + 32 * b),
                         _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(sum, 7)));
      _mm256_store_ps(reinterpret_cast<float*>(out + 1152 + 32 * b), V::half8(h));
      if constexpr (has_min<T>) _mm256_store_ps(reinterpret_cast<float*>(out + 1280 + 32 * b), V::half8(hm));
    }
  }
}

// MR x rows of one panel against groups [g0, g1) of a tile, packed at wp (group g0 first). Float accumulators of
// earlier groups come from `state` (32 floats per x row); after the last group y = acc + bias (the shared
// epilogue's (acc - 0) + bias). The next panel's x for the same groups (`next`) is fetched meanwhile: each panel's
// block of groups is a short run (12 x 192 bytes) far from the previous one, too short for the hardware prefetcher.
template <wtype T, int MR>
void run_panel(const uint8_t* wp, const uint8_t* xqs, const float* xd, int64_t g0, int64_t g1, int64_t ng,
               const uint8_t* next, float* state, const wide_job& j, int64_t i0, int64_t t) {
  __m512 acc[MR][2];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < 2; ++v)
      acc[i][v] = g0 ? _mm512_load_ps(state + state_floats<T> * i + 16 * v) : _mm512_setzero_ps();
  for (int64_t g = g0; g < g1; ++g) {
    const uint8_t* w = wp + (g - g0) * w_group<T>;
    const uint8_t* x = xqs + g * k_x_qs;
    for (int l = 0; l < k_x_qs; l += 64)
      _mm_prefetch(reinterpret_cast<const char*>(next + g * k_x_qs + l), _MM_HINT_T0);
    __m512i I[MR][2];
    for (int i = 0; i < MR; ++i)
      for (int v = 0; v < 2; ++v) I[i][v] = _mm512_load_si512(w + 1024 + 64 * v);
#pragma GCC unroll 8
    for (int s = 0; s < 8; ++s) {
      const __m512i w0 = _mm512_load_si512(w + 128 * s), w1 = _mm512_load_si512(w + 128 * s + 64);
      for (int i = 0; i < MR; ++i) {
        int32_t x4;
        std::memcpy(&x4, x + 24 * s + 4 * i, 4);
        const __m512i xb = _mm512_set1_epi32(x4);
        I[i][0] = _mm512_dpbusd_epi32(I[i][0], xb, w0);
        I[i][1] = _mm512_dpbusd_epi32(I[i][1], xb, w1);
      }
    }
    const __m512 d0 = _mm512_load_ps(w + 1152), d1 = _mm512_load_ps(w + 1216);
    for (int i = 0; i < MR; ++i) {
      const __m512 dx = _mm512_set1_ps(xd[8 * g + i]);
      acc[i][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(I[i][0]), _mm512_mul_ps(d0, dx), acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(I[i][1]), _mm512_mul_ps(d1, dx), acc[i][1]);
    }
  }
  if constexpr (has_min<T>) {
    // off in a second pass over the groups (acc, off and the integers would not fit the 32 registers together);
    // acc - off is kept in acc, as the shared epilogue's difference.
    __m512 off[MR][2];
    for (int i = 0; i < MR; ++i)
      for (int v = 0; v < 2; ++v) off[i][v] = g0 ? _mm512_load_ps(state + 64 * i + 32 + 16 * v) : _mm512_setzero_ps();
    const int32_t* xs = reinterpret_cast<const int32_t*>(xd + 8 * ng);
    for (int64_t g = g0; g < g1; ++g) {
      const uint8_t* w = wp + (g - g0) * w_group<T>;
      const __m512 m0 = _mm512_load_ps(w + 1280), m1 = _mm512_load_ps(w + 1344);
      for (int i = 0; i < MR; ++i) {
        const __m512 dx = _mm512_set1_ps(xd[8 * g + i]), o = _mm512_set1_ps(float(-xs[8 * g + i]));
        off[i][0] = _mm512_fmadd_ps(o, _mm512_mul_ps(m0, dx), off[i][0]);
        off[i][1] = _mm512_fmadd_ps(o, _mm512_mul_ps(m1, dx), off[i][1]);
      }
    }
    for (int i = 0; i < MR; ++i)
      for (int v = 0; v < 2; ++v) {
        if (g1 < ng) {
          _mm512_store_ps(state + 64 * i + 16 * v, acc[i][v]);
          _mm512_store_ps(state + 64 * i + 32 + 16 * v, off[i][v]);
        } else {
          acc[i][v] = _mm512_sub_ps(acc[i][v], off[i][v]);
        }
      }
    if (g1 < ng) return;
  } else if (g1 < ng) {
    for (int i = 0; i < MR; ++i)
      for (int v = 0; v < 2; ++v) _mm512_store_ps(state + 32 * i + 16 * v, acc[i][v]);
    return;
  }
  for (int i = 0; i < MR; ++i) store_tile_row(j, i0 + i, t, acc[i][0], acc[i][1]);
}

using panel_fn = void (*)(const uint8_t*, const uint8_t*, const float*, int64_t, int64_t, int64_t, const uint8_t*,
                          float*, const wide_job&, int64_t, int64_t);
template <wtype T>
constexpr panel_fn k_panel[k_mr] = {&run_panel<T, 1>, &run_panel<T, 2>, &run_panel<T, 3>,
                                    &run_panel<T, 4>, &run_panel<T, 5>, &run_panel<T, 6>};

// ---- k-quants ----------------------------------------------------------------------------------------------------

// The 32 unsigned weights of vector v (elements 32v .. 32v + 31) of a k-quant block (layouts: core/quant_blocks.h).
template <wtype T>
__m256i weights_k(const uint8_t* blk, int v) {
  if constexpr (T == wtype::Q6_K) {
    const int h = v / 4, q = v % 4;  // half of 128 elements, quarter of the half
    const __m256i ql = V::load(blk + 64 * h + 32 * (q % 2));
    return V::or_(q < 2 ? V::nib_lo(ql) : V::nib_hi(ql), V::field(V::load(blk + 128 + 32 * h), 2 * q, 3, 4));
  } else {
    const __m256i q = V::load(blk + (T == wtype::Q4_K ? 16 : 48) + 32 * (v / 2));
    const __m256i r = v % 2 ? V::nib_hi(q) : V::nib_lo(q);
    if constexpr (T == wtype::Q5_K) return V::or_(r, V::field(V::load(blk + 16), v, 1, 4));  // fifth bit: bit v
    else return r;
  }
}

// The 32 W rows `w` (tile_rows), groups [g0, g1), into the k-quant packed layout.
template <wtype T>
void pack_tile_k(const uint8_t* const* w, int64_t g0, int64_t g1, uint8_t* out) {
  for (int64_t g = g0; g < g1; ++g, out += k_wk_group<T>) {
    const int64_t o = g * block_bytes<T>;
    for (int b = 0; b < 4; ++b)
      for (int v = 0; v < 8; ++v) {
        __m256i q[8];
        for (int r = 0; r < 8; ++r) q[r] = weights_k<T>(w[8 * b + r] + o, v);
        V::transpose8(q);  // q[s] lane r = weights 32v + 4s .. +3 of row 8b + r
        for (int s = 0; s < 8; ++s)
          _mm256_store_si256(reinterpret_cast<__m256i*>(out + 128 * (8 * v + s) + 32 * b), q[s]);
      }
    int32_t* sc = reinterpret_cast<int32_t*>(out + 64 * 128);
    int32_t* pair = sc + 32 * k_runs<T>;
    float* d = reinterpret_cast<float*>(pair + 32 * k_pairs<T>);
    for (int r = 0; r < k_rows; ++r) {
      const uint8_t* blk = w[r] + o;
      uint16_t h[2] = {0, 0};
      if constexpr (T == wtype::Q6_K) {
        const int8_t* s8 = reinterpret_cast<const int8_t*>(blk + 192);
        for (int u = 0; u < 16; ++u) sc[32 * u + r] = s8[u];
        for (int p = 0; p < 8; ++p)
          pair[32 * p + r] = int32_t(uint32_t(uint16_t(int16_t(s8[2 * p]))) |
                                     uint32_t(uint16_t(int16_t(s8[2 * p + 1]))) << 16);
        std::memcpy(h, blk + 208, 2);
      } else {
        alignas(8) uint8_t s6[8], m6[8];
        quant::k_scales_mins(blk + 4, s6, m6);
        for (int u = 0; u < 8; ++u) sc[32 * u + r] = s6[u];
        for (int p = 0; p < 4; ++p) pair[32 * p + r] = int32_t(uint32_t(m6[2 * p]) | uint32_t(m6[2 * p + 1]) << 16);
        std::memcpy(h, blk, 4);
      }
      d[r] = _cvtsh_ss(h[0]);
      d[32 + r] = _cvtsh_ss(h[1]);
    }
  }
}

// MR x rows of one panel against groups [g0, g1) of a k-quant tile. Per group: each run's dots in 12 vpdpbusd
// chains (W unsigned, x signed), times the run's scale into the group integer I (vpmulld: a run's dot needs 17
// bits); the mins' integer O from the x sums by vpdpwssd (Q6_K: 32 x the scales against the 16-sums); then, as the
// shared kernel, acc = fma(I, d_w d_x, acc), off = fma(O, t, off) (t = dmin_w d_x, Q6_K d_w d_x), y = (acc - off) +
// bias. acc and off live in `state` (64 floats per x row) between groups.
template <wtype T, int MR>
void run_panel_k(const uint8_t* wp, const uint8_t* xqs, int64_t g0, int64_t g1, int64_t ng, const uint8_t* next,
                 float* state, const wide_job& j, int64_t i0, int64_t t) {
  constexpr int per_run = 64 / k_runs<T>;  // 4-byte steps per run
  const float* xd = reinterpret_cast<const float*>(xqs + ng * k_xk_qs);
  const int16_t* xbs = reinterpret_cast<const int16_t*>(xd + 8 * ng);
  for (int64_t g = g0; g < g1; ++g) {
    const uint8_t* w = wp + (g - g0) * k_wk_group<T>;
    const uint8_t* x = xqs + g * k_xk_qs;
    __m512i I[MR][2];
    for (int h = 0; h < k_runs<T>; ++h) {
      if (h % 2 == 0)
        for (int l = 0; l < 2 * per_run * 24; l += 64)
          _mm_prefetch(reinterpret_cast<const char*>(next + g * k_xk_qs + h * per_run * 24 + l), _MM_HINT_T0);
      __m512i D[MR][2];
      for (int i = 0; i < MR; ++i) D[i][0] = D[i][1] = _mm512_setzero_si512();
#pragma GCC unroll 8
      for (int s = 0; s < per_run; ++s) {
        const int e = h * per_run + s;
        const __m512i w0 = _mm512_load_si512(w + 128 * e), w1 = _mm512_load_si512(w + 128 * e + 64);
        for (int i = 0; i < MR; ++i) {
          int32_t x4;
          std::memcpy(&x4, x + 24 * e + 4 * i, 4);
          const __m512i xb = _mm512_set1_epi32(x4);
          D[i][0] = _mm512_dpbusd_epi32(D[i][0], w0, xb);
          D[i][1] = _mm512_dpbusd_epi32(D[i][1], w1, xb);
        }
      }
      const __m512i s0 = _mm512_load_si512(w + 8192 + 128 * h), s1 = _mm512_load_si512(w + 8192 + 128 * h + 64);
      for (int i = 0; i < MR; ++i) {
        const __m512i a = _mm512_mullo_epi32(D[i][0], s0), b = _mm512_mullo_epi32(D[i][1], s1);
        I[i][0] = h ? _mm512_add_epi32(I[i][0], a) : a;
        I[i][1] = h ? _mm512_add_epi32(I[i][1], b) : b;
      }
    }
    const uint8_t* pair = w + 8192 + 128 * k_runs<T>;
    const float* wd = reinterpret_cast<const float*>(pair + 128 * k_pairs<T>);
    for (int i = 0; i < MR; ++i) {
      const int16_t* bs = xbs + (k_mr * g + i) * 24 + (T == wtype::Q6_K ? 0 : 16);
      const __m512 dx = _mm512_set1_ps(xd[8 * g + i]);
      float* st = state + 64 * i;
      __m512 r[2];
      for (int v = 0; v < 2; ++v) {
        __m512i O = _mm512_setzero_si512();
        for (int p = 0; p < k_pairs<T>; ++p) {
          int32_t b2;
          std::memcpy(&b2, bs + 2 * p, 4);
          O = _mm512_dpwssd_epi32(O, _mm512_load_si512(pair + 128 * p + 64 * v), _mm512_set1_epi32(b2));
        }
        if constexpr (T == wtype::Q6_K) O = _mm512_slli_epi32(O, 5);
        const __m512 s = _mm512_mul_ps(_mm512_load_ps(wd + 16 * v), dx);
        const __m512 t = T == wtype::Q6_K ? s : _mm512_mul_ps(_mm512_load_ps(wd + 32 + 16 * v), dx);
        const __m512 acc0 = g ? _mm512_load_ps(st + 16 * v) : _mm512_setzero_ps();
        const __m512 off0 = g ? _mm512_load_ps(st + 32 + 16 * v) : _mm512_setzero_ps();
        const __m512 acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(I[i][v]), s, acc0);
        const __m512 off = _mm512_fmadd_ps(_mm512_cvtepi32_ps(O), t, off0);
        if (g + 1 < ng) {
          _mm512_store_ps(st + 16 * v, acc);
          _mm512_store_ps(st + 32 + 16 * v, off);
        }
        r[v] = _mm512_sub_ps(acc, off);
      }
      if (g + 1 < ng) continue;
      store_tile_row(j, i0 + i, t, r[0], r[1]);
    }
  }
}

using panel_k_fn = void (*)(const uint8_t*, const uint8_t*, int64_t, int64_t, int64_t, const uint8_t*, float*,
                            const wide_job&, int64_t, int64_t);
template <wtype T>
constexpr panel_k_fn k_panel_k[k_mr] = {&run_panel_k<T, 1>, &run_panel_k<T, 2>, &run_panel_k<T, 3>,
                                        &run_panel_k<T, 4>, &run_panel_k<T, 5>, &run_panel_k<T, 6>};

template <wtype T>
void run_tiles(const wide_job& j, int64_t t0, int64_t t1) {
  const int64_t ng = j.n_groups, n_panels = (j.m + k_mr - 1) / k_mr;
  // The tile is packed one block of groups at a time, right before its pass: the block stays in L1.
  thread_local aligned_buffer t_packed, t_state;
  t_packed.resize(size_t(block_groups<T> * w_group<T>));
  t_state.resize(size_t(n_panels * k_mr * state_floats<T>) * sizeof(float));
  uint8_t* packed = static_cast<uint8_t*>(t_packed.data());
  thread_local aligned_buffer t_rows;  // an r16 copy's tile, unpacked
  const uint8_t* rows[k_rows];
  const uint8_t* next_rows[k_rows];
  for (int64_t t = t0; t < t1; ++t) {
    if (j.r16) {
      unpacked_tile_rows(j, t, rows, t_rows);
      std::copy(rows, rows + k_rows, next_rows);  // the next tile is not unpacked yet: its prefetches hit this one
    } else {
      tile_rows(j, t, rows);
      tile_rows(j, t + 1, next_rows);  // clamped to the last row past the end
    }
    for (int64_t g0 = 0; g0 < ng; g0 += block_groups<T>) {
      const int64_t g1 = std::min(ng, g0 + block_groups<T>);
      if constexpr (is_k<T>) pack_tile_k<T>(rows, g0, g1, packed);
      else pack_tile<T>(rows, g0, g1, packed);
      // The W bytes of the next block (or of the next tile's first block) are fetched into L2 a few lines per panel:
      // packing reads 32 rows side by side, each a short run, which otherwise waits on memory (6% of the time at
      // k = 4096). Rows are clamped to the last; the line past a row's run may belong to the next row (harmless).
      const int64_t nb0 = g1 < ng ? g1 : 0;
      const uint8_t* const* nrows = g1 < ng ? rows : next_rows;
      const int64_t run = (std::min(ng, nb0 + block_groups<T>) - nb0) * block_bytes<T>;
      const int64_t lines_per_row = (run + 63) / 64 + 1, n_lines = k_rows * lines_per_row;
      const int64_t per_panel = (n_lines + n_panels - 1) / n_panels;
      int64_t line = 0;
      for (int64_t p = 0; p < n_panels; ++p) {
        for (const int64_t end = std::min(n_lines, line + per_panel); line < end; ++line)
          _mm_prefetch(reinterpret_cast<const char*>(nrows[line / lines_per_row] + nb0 * block_bytes<T> +
                                                     64 * (line % lines_per_row)),
                       _MM_HINT_T1);
        const uint8_t* xqs = j.xp + p * ng * x_group<T>;
        const uint8_t* next = p + 1 < n_panels ? xqs + ng * x_group<T> : j.xp;
        const int mr = int(std::min<int64_t>(k_mr, j.m - p * k_mr));
        float* state = t_state.f32() + p * k_mr * state_floats<T>;
        if constexpr (is_k<T>) {
          k_panel_k<T>[mr - 1](packed, xqs, g0, g1, ng, next, state, j, p * k_mr, t);
        } else {
          const float* xd = reinterpret_cast<const float*>(xqs + ng * k_x_qs);
          k_panel<T>[mr - 1](packed, xqs, xd, g0, g1, ng, next, state, j, p * k_mr, t);
        }
      }
    }
  }
}

}  // namespace

void fill_wide_avx512(isa_table& tab) {
  tab.wide[size_t(wtype::Q8_0)] = &run_tiles<wtype::Q8_0>;
  tab.wide[size_t(wtype::Q4_0)] = &run_tiles<wtype::Q4_0>;
  tab.wide[size_t(wtype::Q5_0)] = &run_tiles<wtype::Q5_0>;
  tab.wide[size_t(wtype::Q4_K)] = &run_tiles<wtype::Q4_K>;
  tab.wide[size_t(wtype::Q5_K)] = &run_tiles<wtype::Q5_K>;
  tab.wide[size_t(wtype::Q6_K)] = &run_tiles<wtype::Q6_K>;
  tab.wide[size_t(wtype::Q4_1)] = &run_tiles<wtype::Q4_1>;
  tab.wide[size_t(wtype::Q5_1)] = &run_tiles<wtype::Q5_1>;
  for (wtype t : {wtype::Q8_0, wtype::Q4_0, wtype::Q5_0}) {
    tab.wide_pack_x[size_t(t)] = &pack_x<false>;
    tab.wide_x_group_bytes[size_t(t)] = k_x_group;
  }
  for (wtype t : {wtype::Q4_1, wtype::Q5_1}) {
    tab.wide_pack_x[size_t(t)] = &pack_x<true>;
    tab.wide_x_group_bytes[size_t(t)] = k_x_group + 32;
  }
  for (wtype t : {wtype::Q4_K, wtype::Q5_K, wtype::Q6_K}) {
    tab.wide_pack_x[size_t(t)] = &pack_x_k;
    tab.wide_x_group_bytes[size_t(t)] = k_xk_group;
  }
  tab.wide_rows = k_rows;
  tab.wide_mr = k_mr;
}

}  // namespace autoglm::cpu::qgemm

#pragma GCC diagnostic pop
#pragma GCC pop_options

#endif
