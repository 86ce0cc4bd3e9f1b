// kernels/cpu/gemm_amx.cpp: the BF16-weight GEMM on AMX tiles, see gemm_amx.h. Written once over the tile
// instructions (amx_hw, or amx_emulated for the tests).
#include "kernels/cpu/gemm_amx.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "core/aligned_buffer.h"
#include "core/error.h"
#include "core/quant_blocks.h"
#include "kernels/cpu/amx.h"
#include "kernels/cpu/convert.h"
#include "kernels/cpu/gemm_bf16.h"
#include "kernels/cpu/kernel_util.h"
#include "kernels/cpu/quant_repack.h"
#include "kernels/cpu/transpose_avx512.h"

namespace autoglm::cpu {

namespace {

constexpr int64_t k_block = 32;          // W rows per task; x rows per block (two B tiles)
constexpr int64_t k_step = 32;           // elements of k per tile step
constexpr int64_t k_tile = 512;          // bf16 per tile (16 rows x 64 bytes)
constexpr int64_t k_blocks_per_task = 8;  // x blocks a task runs against its W rows (they stay in L1/L2)
std::atomic<int64_t> g_x_pack_bytes{k_amx_gemm_x_pack_bytes};

struct problem {
  const float* x;
  int64_t xs, m;
  weight_rows w;
  int64_t n, k;
  int64_t steps;  // k / 32, rounded up
  const float* bias;
  float* y;
  int64_t ys;
  const float* row_scale;  // I8: y = fma(sum, row_scale[j], bias[j] or 0)
};

// x rows [r0 + 32 b0, r0 + 32 b1) of the super-block at row r0 (`rows` of them exist) into B tiles: block b, half t
// (its rows 16 t .. 16 t + 15), step c at xp + ((2 b + t) steps + c) k_tile; a tile's row kk holds the pair
// (x[i][32 c + 2 kk], x[i][32 c + 2 kk + 1]) for its 16 rows i. Rows past `rows` and elements past k are zeros.
// With AVX-512 BF16 (every AMX CPU): per step, the 16 rows' 32 floats rounded to 16 pairs each (vcvtne2ps2bf16, as
// f32_to_bf16 for every input the tiles do not flush: they take denormals as zero) and the 16 x 16 pairs transposed
// into the tile's rows; elsewhere (the emulated tiles' tests) convert_from_f32 and 4-byte copies, the same bits.
#if defined(__x86_64__)
__attribute__((target("avx512f,avx512bw,avx512bf16"))) void pack_x_avx512(const problem& p, int64_t r0, int64_t rows,
                                                                           int64_t b0, int64_t b1, uint16_t* xp) {
  for (int64_t h = 2 * b0; h < 2 * b1; ++h) {  // 16-row halves of the blocks
    const float* src[16];
    for (int64_t i = 0; i < 16; ++i) src[i] = 16 * h + i < rows ? p.x + (r0 + 16 * h + i) * p.xs : nullptr;
    for (int64_t c = 0; c < p.steps; ++c) {
      const int64_t j = c * k_step;
      const __mmask16 mlo = first_lanes16(p.k - j), mhi = first_lanes16(p.k - j - 16);
      __m512i v[16];
      for (int i = 0; i < 16; ++i) {
        if (!src[i]) {
          v[i] = _mm512_setzero_si512();
          continue;
        }
        const __m512 lo = _mm512_maskz_loadu_ps(mlo, src[i] + j), hi = _mm512_maskz_loadu_ps(mhi, src[i] + j + 16);
        v[i] = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo));
      }
      transpose16x16(v);  // v[kk] = pair kk of the 16 rows
      uint16_t* dst = xp + (h * p.steps + c) * k_tile;
      for (int kk = 0; kk < 16; ++kk) _mm512_storeu_si512(dst + kk * 32, v[kk]);
    }
  }
}
#endif

void pack_x(const problem& p, int64_t r0, int64_t rows, int64_t b0, int64_t b1, uint16_t* xp) {
#if defined(__x86_64__)
  if (bf16_gemm_available()) return pack_x_avx512(p, r0, rows, b0, b1, xp);
#endif
  const int64_t kp = p.steps * k_step;
  thread_local std::vector<uint16_t> row;
  row.assign(size_t(kp), 0);
  for (int64_t b = b0; b < b1; ++b)
    for (int64_t i = 0; i < k_block; ++i) {
      const int64_t r = b * k_block + i;
      if (r < rows) convert_from_f32(dtype::BF16, p.x + (r0 + r) * p.xs, row.data(), p.k);
      else std::fill(row.begin(), row.begin() + p.k, uint16_t(0));
      uint16_t* dst = xp + (2 * b + i / 16) * p.steps * k_tile + 2 * (i % 16);
      for (int64_t c = 0; c < p.steps; ++c)
        for (int64_t kk = 0; kk < 16; ++kk)
          std::memcpy(dst + c * k_tile + kk * 32, row.data() + c * k_step + 2 * kk, 4);
    }
}

// A row of quantized blocks as k bf16: each weight computed in F32 exactly as core's dequantizer computes it (Q4_0,
// Q5_0, Q8_0: d * q, exact; Q4_1, Q5_1: d * q + m, the product and the sum each rounded; the k-quants below), then
// rounded once to nearest even (vcvtne2ps2bf16), as f32_to_bf16 of core's value. GCC 12's own _mm512_cvtepi8_epi32
// trips -Wmaybe-uninitialized under a target attribute (its undefined passthrough).
#if defined(__x86_64__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define AG_AVX512_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,f16c")))
// 32 bf16 at dst from the int8 values lo (elements 0-15) and hi (16-31): d_lo * q and d_hi * q, rounded once.
AG_AVX512_BF16 inline void store_scaled_bf16(uint16_t* dst, __m128i lo, __m128i hi, float d_lo, float d_hi) {
  const __m512 flo = _mm512_mul_ps(_mm512_set1_ps(d_lo), _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(lo)));
  const __m512 fhi = _mm512_mul_ps(_mm512_set1_ps(d_hi), _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(hi)));
  _mm512_storeu_si512(dst, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(fhi, flo)));
}
// A half float's value: F16C's conversion, inline (core's out-of-line f16_to_f32 gives the same value for every
// half but NaNs, which F16C keeps quiet; it was 2.5% of a 1.5B-dims q4_0 prefill as a call per block).
AG_AVX512_BF16 inline float half_value(uint16_t h) { return _cvtsh_ss(h); }
// The same with m added after the product (Q4_1, Q5_1: d * q + m, each rounded in F32 as core's dequantizer).
AG_AVX512_BF16 inline void store_affine_bf16(uint16_t* dst, __m128i lo, __m128i hi, float d, float m) {
  const __m512 vd = _mm512_set1_ps(d), vm = _mm512_set1_ps(m);
  const __m512 flo = _mm512_add_ps(_mm512_mul_ps(vd, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(lo))), vm);
  const __m512 fhi = _mm512_add_ps(_mm512_mul_ps(vd, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(hi))), vm);
  _mm512_storeu_si512(dst, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(fhi, flo)));
}

// The 32-element types in core's block layouts: Q4_0 d * (q - 8), Q5_0 d * (q - 16) with bit e of qh adding 16 to
// element e, Q8_0 d * q; Q4_1 / Q5_1 d * q + m with the unsigned q of Q4_0 / Q5_0.
template <dtype T>
AG_AVX512_BF16 void dequant_row_bf16_avx512(const uint8_t* src, uint16_t* dst, int64_t k) {
  constexpr bool five = T == dtype::Q5_0 || T == dtype::Q5_1, with_min = T == dtype::Q4_1 || T == dtype::Q5_1;
  using block = std::conditional_t<
      T == dtype::Q4_0, quant::block_q4_0,
      std::conditional_t<T == dtype::Q4_1, quant::block_q4_1,
                         std::conditional_t<T == dtype::Q5_0, quant::block_q5_0,
                                            std::conditional_t<T == dtype::Q5_1, quant::block_q5_1,
                                                               quant::block_q8_0>>>>;
  const auto* blocks = reinterpret_cast<const block*>(src);
  for (int64_t g = 0; g < k / 32; ++g) {
    const block& b = blocks[g];
    __m128i lo, hi;  // elements 0-15 and 16-31 as int8
    if constexpr (T == dtype::Q8_0) {
      lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs));
      hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs + 16));
    } else {
      const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs));
      const __m128i m4 = _mm_set1_epi8(0x0f);
      lo = _mm_and_si128(q, m4);
      hi = _mm_and_si128(_mm_srli_epi16(q, 4), m4);
      if constexpr (five) {
        uint32_t qh;
        std::memcpy(&qh, b.qh, 4);
        const __m128i b5 = _mm_set1_epi8(0x10);
        lo = _mm_mask_add_epi8(lo, __mmask16(qh & 0xffffu), lo, b5);
        hi = _mm_mask_add_epi8(hi, __mmask16(qh >> 16), hi, b5);
      }
      if constexpr (!with_min) {
        const __m128i zero = _mm_set1_epi8(five ? 16 : 8);
        lo = _mm_sub_epi8(lo, zero);
        hi = _mm_sub_epi8(hi, zero);
      }
    }
    const float d = half_value(b.d);
    if constexpr (with_min) store_affine_bf16(dst + 32 * g, lo, hi, d, half_value(b.m));
    else store_scaled_bf16(dst + 32 * g, lo, hi, d, d);
  }
}

// Q4_K: per 256-element block, sub-block j (32 elements) = (d * sc_j) * q - (dmin * m_j), the product and the
// difference each rounded in F32 as core's dequantizer does, then rounded once to bf16. Q5_K: the same with bit j of
// qh[l] adding 16 to element l of sub-block j.
template <dtype T>
AG_AVX512_BF16 void dequant_row_bf16_kquant(const uint8_t* src, uint16_t* dst, int64_t k) {
  static_assert(T == dtype::Q4_K || T == dtype::Q5_K);
  using block = std::conditional_t<T == dtype::Q4_K, quant::block_q4_k, quant::block_q5_k>;
  const __m256i m4 = _mm256_set1_epi16(0x0f), one = _mm256_set1_epi16(1);
  for (int64_t g = 0; g < k / 256; ++g) {
    const auto* b = reinterpret_cast<const block*>(src) + g;
    const float d = half_value(b->d), dmin = half_value(b->dmin);
    __m256i h = _mm256_setzero_si256(), h2 = _mm256_setzero_si256();  // qh[0..15], qh[16..31] as 16-bit lanes
    if constexpr (T == dtype::Q5_K) {
      h = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b->qh)));
      h2 = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b->qh + 16)));
    }
    for (int c = 0; c < 4; ++c) {
      const __m256i q = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b->qs + 32 * c)));
      const __m256i q2 = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b->qs + 32 * c + 16)));
      for (int half = 0; half < 2; ++half) {
        const int j = 2 * c + half;
        uint8_t sc, m;
        quant::k_scale_min(b->scales, j, sc, m);
        const __m512 ds = _mm512_set1_ps(d * float(sc)), dm = _mm512_set1_ps(dmin * float(m));
        __m256i a = half ? _mm256_srli_epi16(q, 4) : _mm256_and_si256(q, m4);
        __m256i a2 = half ? _mm256_srli_epi16(q2, 4) : _mm256_and_si256(q2, m4);
        if constexpr (T == dtype::Q5_K) {
          const __m128i sh = _mm_cvtsi32_si128(j);
          a = _mm256_or_si256(a, _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(h, sh), one), 4));
          a2 = _mm256_or_si256(a2, _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(h2, sh), one), 4));
        }
        const __m512 f0 = _mm512_sub_ps(_mm512_mul_ps(ds, _mm512_cvtepi32_ps(_mm512_cvtepu16_epi32(a))), dm);
        const __m512 f1 = _mm512_sub_ps(_mm512_mul_ps(ds, _mm512_cvtepi32_ps(_mm512_cvtepu16_epi32(a2))), dm);
        _mm512_storeu_si512(dst + 256 * g + 64 * c + 32 * half, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(f1, f0)));
      }
    }
  }
}
// Q6_K: per 256-element block, element 128h + 32t + l (t = 0..3, l = 0..31) is the nibble t of ql (low nibbles of
// ql[l] / ql[l + 32], then their high ones) with bits 2t, 2t + 1 of qh[l] above it, minus 32, times (d * sc) of its
// 16 elements: the product d * sc exact, the second one rounded in F32 as core's dequantizer, then once to bf16.
AG_AVX512_BF16 void dequant_row_bf16_q6k(const uint8_t* src, uint16_t* dst, int64_t k) {
  const __m256i m4 = _mm256_set1_epi8(0x0f), m3 = _mm256_set1_epi8(3), e32 = _mm256_set1_epi8(32);
  for (int64_t g = 0; g < k / 256; ++g) {
    const auto* b = reinterpret_cast<const quant::block_q6_k*>(src) + g;
    const float d = half_value(b->d);
    for (int h = 0; h < 2; ++h) {
      const __m256i A = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b->ql + 64 * h));
      const __m256i B = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b->ql + 64 * h + 32));
      const __m256i H = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b->qh + 32 * h));
      for (int t = 0; t < 4; ++t) {
        const __m256i src4 = t & 1 ? B : A;
        const __m256i nib = t < 2 ? _mm256_and_si256(src4, m4) : _mm256_and_si256(_mm256_srli_epi16(src4, 4), m4);
        const __m256i hb = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(H, 2 * t), m3), 4);
        const __m256i q = _mm256_sub_epi8(_mm256_or_si256(nib, hb), e32);
        const int8_t* sc = b->scales + 8 * h + 2 * t;
        store_scaled_bf16(dst + 256 * g + 128 * h + 32 * t, _mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1),
                          d * float(sc[0]), d * float(sc[1]));
      }
    }
  }
}
// I8: int8 to bf16, exact (|q| <= 128 has at most 8 significant bits), 32 at a time; returns how many it converted
// (the rest, fewer than 32, are w_row_bf16's).
AG_AVX512_BF16 int64_t i8_row_bf16(const int8_t* q, uint16_t* dst, int64_t k) {
  int64_t e = 0;
  for (; e + 32 <= k; e += 32) {
    const __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + e));
    const __m128i hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + e + 16));
    store_scaled_bf16(dst + e, lo, hi, 1.0f, 1.0f);
  }
  return e;
}
// Rows 0 .. rows - 1 of tile t of an r16 weight (quant_repack.h) as bf16, row r at d + r * kp: per group, the quant
// vectors' 32-bit lanes (4 bytes of each of 16 rows) transposed 4 x 4 within each 128-bit lane, so row 4 l + i's 16
// bytes are lane l of vector i; then each row as dequant_row_bf16_avx512 does it (Q4_0 d * (q - 8), Q8_0 d * q: the
// layout's w + 128 flipped back), the same bits.
AG_AVX512_BF16 void r16_tile_bf16(const r16_layout& L, const uint8_t* packed, int64_t t, int64_t rows, uint16_t* d,
                                  int64_t kp) {
  const uint16_t* sc = L.scales(packed, t);
  const uint8_t* qs = L.quants(packed, t);
  const bool q4 = L.type == dtype::Q4_0;
  const __m128i m4 = _mm_set1_epi8(0x0f), eight = _mm_set1_epi8(8), flip = _mm_set1_epi8(char(0x80));
  alignas(64) uint8_t R[8][64];  // R[i] + 16 l: bytes 0-15 of row 4 l + i; R[4 + i]: bytes 16-31 (Q8_0)
  alignas(64) float dv[16];

  for (int64_t g = 0; g < L.n_groups; ++g) {
    const uint8_t* gq = qs + g * L.nv * 64;
    for (int h = 0; h < (q4 ? 1 : 2); ++h) {
      __m512i v[4];
      for (int i = 0; i < 4; ++i) v[i] = _mm512_loadu_si512(gq + 256 * h + 64 * i);
      transpose4x4_lanes(v);
      for (int i = 0; i < 4; ++i) _mm512_store_si512(R[4 * h + i], v[i]);
    }
    _mm512_store_ps(dv, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(sc + 16 * g))));
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t i = r & 3, l = r >> 2;
      const __m128i a = _mm_load_si128(reinterpret_cast<const __m128i*>(R[i] + 16 * l));
      __m128i lo, hi;
      if (q4) {
        lo = _mm_sub_epi8(_mm_and_si128(a, m4), eight);
        hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(a, 4), m4), eight);
      } else {
        lo = _mm_xor_si128(a, flip);
        hi = _mm_xor_si128(_mm_load_si128(reinterpret_cast<const __m128i*>(R[4 + i] + 16 * l)), flip);
      }
      store_scaled_bf16(d + r * kp + 32 * g, lo, hi, dv[r], dv[r]);
    }
  }
}
#undef AG_AVX512_BF16
#pragma GCC diagnostic pop
#endif

// Row r of a W block as bf16 into dst (k elements): BF16 copied, the quantized types dequantized
// (amx_gemm_weight_type): with AVX-512 BF16 (every AMX CPU) by the vector code above, elsewhere (the emulated
// tiles' tests) through core's dequantizer and f32_to_bf16, the same bits.
void w_row_bf16(dtype t, const void* src, uint16_t* dst, int64_t k) {
  if (t == dtype::BF16) {
    std::memcpy(dst, src, size_t(k) * 2);
    return;
  }
  if (t == dtype::I8) {  // the integers themselves (exact in bf16); the row's scale is applied to the sums
    const auto* q = static_cast<const int8_t*>(src);
    int64_t e = 0;
#if defined(__x86_64__)
    if (bf16_gemm_available()) e = i8_row_bf16(q, dst, k);
#endif
    for (; e < k; ++e) dst[e] = f32_to_bf16(float(q[e]));
    return;
  }
#if defined(__x86_64__)
  if (bf16_gemm_available()) {
    const auto* s8 = static_cast<const uint8_t*>(src);
    switch (t) {
      case dtype::Q4_0: return dequant_row_bf16_avx512<dtype::Q4_0>(s8, dst, k);
      case dtype::Q4_1: return dequant_row_bf16_avx512<dtype::Q4_1>(s8, dst, k);
      case dtype::Q5_0: return dequant_row_bf16_avx512<dtype::Q5_0>(s8, dst, k);
      case dtype::Q5_1: return dequant_row_bf16_avx512<dtype::Q5_1>(s8, dst, k);
      case dtype::Q8_0: return dequant_row_bf16_avx512<dtype::Q8_0>(s8, dst, k);
      case dtype::Q4_K: return dequant_row_bf16_kquant<dtype::Q4_K>(s8, dst, k);
      case dtype::Q5_K: return dequant_row_bf16_kquant<dtype::Q5_K>(s8, dst, k);
      case dtype::Q6_K: return dequant_row_bf16_q6k(s8, dst, k);
      default: break;
    }
  }
#endif
  thread_local std::vector<float> f;
  f.resize(size_t(k));
  quant::dequantize_row(t, src, f.data(), k);
  convert_from_f32(dtype::BF16, f.data(), dst, k);
}

// Rows [j0, j0 + nr) of an r16 weight as bf16, row r - j0 at d + (r - j0) * kp (j0 a multiple of 16): as w_row_bf16
// computes them from the file's layout; Q5_0 and Q4_K rows, and any without AVX-512 BF16 (the emulated tiles' tests),
// are unpacked to that layout first.
void r16_rows_bf16(const weight_rows& w, int64_t j0, int64_t nr, uint16_t* d, int64_t kp, int64_t k) {
  const r16_layout& L = *w.r16;
#if defined(__x86_64__)
  if (bf16_gemm_available() && (L.type == dtype::Q4_0 || L.type == dtype::Q8_0)) {
    for (int64_t r = 0; r < nr; r += k_r16_rows)
      r16_tile_bf16(L, w.data, (j0 + r) / k_r16_rows, std::min<int64_t>(k_r16_rows, nr - r), d + r * kp, kp);
    return;
  }
#endif
  const int64_t row_bytes = int64_t(dtype_row_bytes(L.type, k));
  thread_local std::vector<uint8_t> rows;
  rows.resize(size_t(nr * row_bytes));
  r16_unpack_rows(L, w.data, j0, nr, rows.data(), row_bytes);
  for (int64_t r = 0; r < nr; ++r) w_row_bf16(L.type, rows.data() + r * row_bytes, d + r * kp, k);
}

// W blocks per task: up to 4 (128 rows), as many as keep their A rows within ~1 MiB of L2 beside the x block.
int64_t w_blocks_per_task(int64_t steps) {
  return std::clamp<int64_t>((int64_t(1) << 20) / (k_block * steps * k_step * 2), 1, 4);
}

// Tasks [t0, t1) of a super-block: task t = W blocks wpt (t / groups) .. + wpt - 1 (32 rows each) against x blocks
// 8 (t % groups) .. + 7; per x block, every W block of the task over all of k (the x block's B tiles stay in L2
// across the W blocks, the W blocks' rows across the x blocks).
template <class X>
void run_tasks(const problem& p, const uint16_t* xp, int64_t r0, int64_t rows, int64_t groups, int64_t t0,
               int64_t t1) {
  const int64_t n_xb = (rows + k_block - 1) / k_block, n_wb = (p.n + k_block - 1) / k_block;
  const int64_t kp = p.steps * k_step, wpt = w_blocks_per_task(p.steps);
  thread_local aligned_buffer wpad;
  alignas(64) float c[k_block * k_block];  // c[j][i]: W row j, x row i
  const uint8_t* a[4];
  int64_t as[4];
  X::configure();
  // The W blocks whose bf16 copy wpad holds (this call's previous task, or none): the next task of the same W
  // blocks (the next x blocks of a super-block with more than 8) reuses it instead of dequantizing them again.
  int64_t padded_wb0 = -1;
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t wb0 = (t / groups) * wpt, wb1 = std::min(n_wb, wb0 + wpt), g = t % groups;
    const bool reuse = wb0 == padded_wb0;
    padded_wb0 = -1;
    for (int64_t wb = wb0; wb < wb1; ++wb) {
      const int64_t j0 = wb * k_block, nr = std::min(k_block, p.n - j0);
      a[wb - wb0] = static_cast<const uint8_t*>(p.w.row(j0));
      as[wb - wb0] = p.w.row_bytes;
      // A block whose tiles would read past its rows, or of quantized rows: a zero-padded bf16 copy (dequantized
      // once per task and used against all its x blocks, up to 256 rows, and by this thread's next task of the
      // same blocks).
      if (nr < k_block || p.k % k_step != 0 || p.w.type != dtype::BF16) {
        wpad.resize(size_t(4 * k_block * kp) * 2);
        uint16_t* d = static_cast<uint16_t*>(wpad.data()) + (wb - wb0) * k_block * kp;
        if (!reuse) {
          if (p.w.r16) {
            r16_rows_bf16(p.w, j0, nr, d, kp, p.k);
          } else {
            for (int64_t r = 0; r < nr; ++r) {
              if (r + 2 < nr) {  // the dequantizer stalled on memory (half its time): the row after next into L1
                const char* ahead = static_cast<const char*>(p.w.row(j0 + r + 2));
                for (int64_t o = 0; o < p.w.row_bytes; o += 64) __builtin_prefetch(ahead + o, 0, 3);
              }
              w_row_bf16(p.w.type, p.w.row(j0 + r), d + r * kp, p.k);
            }
          }
          for (int64_t r = 0; r < k_block; ++r)  // zeros past each row's k and in rows past nr
            std::fill(d + r * kp + (r < nr ? p.k : 0), d + (r + 1) * kp, uint16_t(0));
        }
        padded_wb0 = wb0;
        a[wb - wb0] = reinterpret_cast<const uint8_t*>(d);
        as[wb - wb0] = kp * 2;
      }
    }
    for (int64_t b = g * k_blocks_per_task; b < std::min(n_xb, (g + 1) * k_blocks_per_task); ++b) {
      const uint16_t* b0 = xp + 2 * b * p.steps * k_tile;
      const uint16_t* b1 = b0 + p.steps * k_tile;
      const int64_t mr = std::min(k_block, rows - b * k_block);
      for (int64_t wb = wb0; wb < wb1; ++wb) {
        const uint8_t* aw = a[wb - wb0];
        const int64_t s_a = as[wb - wb0], j0 = wb * k_block, nr = std::min(k_block, p.n - j0);
        amx_zero_2x2<X>();
        for (int64_t s = 0; s < p.steps; ++s)
          amx_step_2x2<X>(aw + s * 64, aw + 16 * s_a + s * 64, s_a, b0 + s * k_tile, b1 + s * k_tile);
        amx_store_2x2<X>(c, k_block);
        for (int64_t i = 0; i < mr; ++i) {
          float* yr = p.y + (r0 + b * k_block + i) * p.ys + j0;
          if (p.row_scale)  // explicit fma, as the integer kernels' I8 store (quant_microkernel.h store_row)
            for (int64_t j = 0; j < nr; ++j)
              yr[j] = std::fma(c[j * k_block + i], p.row_scale[j0 + j], p.bias ? p.bias[j0 + j] : 0.0f);
          else if (p.bias)
            for (int64_t j = 0; j < nr; ++j) yr[j] = c[j * k_block + i] + p.bias[j0 + j];
          else
            for (int64_t j = 0; j < nr; ++j) yr[j] = c[j * k_block + i];
        }
      }
    }
  }
  X::release();
}

template <class X>
void gemm(thread_pool* pool, const float* x, int64_t xs, int64_t m, const weight_rows& w, int64_t n, int64_t k,
          const float* bias, float* y, int64_t ys, const float* row_scale) {
  AG_CHECK(amx_gemm_weight_type(w.type), std::string("gemm_bf16_amx: weights must be BF16, a GGUF block type or ") +
                                             "I8, not " + dtype_name(w.type));
  AG_CHECK((w.type == dtype::I8) == (row_scale != nullptr), "gemm_bf16_amx: row scales go with I8 weights only");
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {  // empty dot products: y = bias
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) y[i * ys + j] = bias ? bias[j] : 0.0f;
    return;
  }
  const problem p{x, xs, m, w, n, k, (k + k_step - 1) / k_step, bias, y, ys, row_scale};
  const int64_t row_bytes = p.steps * k_step * 2;
  const int64_t sb_rows = std::max<int64_t>(k_block, g_x_pack_bytes.load() / row_bytes / k_block * k_block);
  thread_local aligned_buffer xbuf;
  xbuf.resize(size_t(std::min(sb_rows, (m + k_block - 1) / k_block * k_block) * row_bytes));
  uint16_t* xp = static_cast<uint16_t*>(xbuf.data());
  const int64_t n_wg = ((n + k_block - 1) / k_block + w_blocks_per_task(p.steps) - 1) / w_blocks_per_task(p.steps);
  for (int64_t r0 = 0; r0 < m; r0 += sb_rows) {
    const int64_t rows = std::min(sb_rows, m - r0), n_xb = (rows + k_block - 1) / k_block;
    parallel_for(pool, n_xb, 1, [&](int64_t b0, int64_t b1) { pack_x(p, r0, rows, b0, b1, xp); });
    const int64_t groups = (n_xb + k_blocks_per_task - 1) / k_blocks_per_task;
    parallel_for(pool, n_wg * groups, 1,
                 [&](int64_t t0, int64_t t1) { run_tasks<X>(p, xp, r0, rows, groups, t0, t1); });
  }
}

}  // namespace

void set_amx_gemm_x_pack_bytes(int64_t bytes) { g_x_pack_bytes.store(std::max<int64_t>(1, bytes)); }

bool amx_gemm_weight_type(dtype type) {
  switch (type) {
    case dtype::BF16: case dtype::Q4_0: case dtype::Q4_1: case dtype::Q5_0: case dtype::Q5_1: case dtype::Q8_0:
    case dtype::Q4_K: case dtype::Q5_K: case dtype::Q6_K: case dtype::I8: return true;
    default: return false;
  }
}

bool use_amx_gemm(dtype type, int64_t m) {
  return amx_gemm_weight_type(type) && m >= k_amx_gemm_min_rows &&
         get_cpu_gemm_precision() == cpu_gemm_precision::ROUNDED && amx_bf16_usable();
}

void gemm_bf16_amx(thread_pool* pool, const float* x, int64_t xs, int64_t m, const weight_rows& w, int64_t n,
                   int64_t k, const float* bias, float* y, int64_t ys, const float* row_scale) {
  AG_CHECK(amx_bf16_usable(), "gemm_bf16_amx: AMX tiles are not usable in this process");
#if defined(__x86_64__)
  gemm<amx_hw>(pool, x, xs, m, w, n, k, bias, y, ys, row_scale);
#else
  (void)pool, (void)x, (void)xs, (void)m, (void)w, (void)n, (void)k, (void)bias, (void)y, (void)ys, (void)row_scale;
#endif
}

void gemm_bf16_amx_emulated(thread_pool* pool, const float* x, int64_t xs, int64_t m, const weight_rows& w,
                            int64_t n, int64_t k, const float* bias, float* y, int64_t ys, const float* row_scale) {
  gemm<amx_emulated>(pool, x, xs, m, w, n, k, bias, y, ys, row_scale);
}

}  // namespace autoglm::cpu
