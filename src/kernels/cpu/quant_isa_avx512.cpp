// kernels/cpu/quant_isa_avx512.cpp: the quantized LINEAR micro-kernels for x86-64 with AVX-512 VNNI (Ice Lake,
// Sapphire Rapids, Zen 4 and later) on 256-bit vectors: vpdpbusd, and 32 registers for the register tiles
// (EVEX); the vector operations are those of quant_isa_x86.h (v_x86<true>), compiled here for this ISA.
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
#pragma GCC target("avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")
// GCC 12's AVX-512 headers build broadcasts and casts on _mm512_undefined_*(), which -Wmaybe-uninitialized flags.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "kernels/cpu/quant_isa_x86.h"
#include "kernels/cpu/quant_microkernel.h"

namespace autoglm::cpu::qgemm {

namespace {

using V = v_x86<true>;

// ---- decode of one x row on 512-bit vectors (Q8_0, Q4_0, Q4_K) ------------------------------------------------
// The same integers and the same float steps as decode_kernel (quant_microkernel.h): per group, one exact integer
// per W row, then acc = fma(float(I), d_w * d_x, acc) on 8 lanes = 8 W rows. Only the integer work differs: each
// zmm holds two W rows (or 64 weights of one), so a tile of 8 rows takes half the dot products, and the 8 rows'
// partial sums are added across with one shuffle tree per group instead of hadd chains.

// Decode reads a tile's 8 W rows side by side, each from its head: a look-ahead within each row leaves every
// row's first KiB to demand misses, and the hardware streams follow 8 slow interleaved streams poorly (a Q4_0 tile
// at k = 4096 streamed at ~6 GB/s on one Zen 4 core, ~13 GB/s with this). So each call fetches the NEXT tile's
// rows (the 8 W rows after its own) into L2, front to back, at the pace it reads its own: the next call finds
// them in cache. Past a chunk's or the weight's end this only fetches bytes no one reads (prefetches never fault).
struct next_tile_prefetch {
  const char* p;
  int64_t done = 0, per_step;
  next_tile_prefetch(const tile& t, int64_t steps)
      : p(reinterpret_cast<const char*>(t.w + 8 * t.w_stride)),
        per_step((8 * t.w_stride + std::max<int64_t>(1, steps) - 1) / std::max<int64_t>(1, steps)) {}
  void step() {
    for (const int64_t end = done + per_step; done < end; done += 64) _mm_prefetch(p + done, _MM_HINT_T1);
  }
};

// The f16 at byte o of the 8 rows.
inline __m256 half8_rows(const uint8_t* const* w, int64_t o) {
  uint16_t h[8];
  for (int j = 0; j < 8; ++j) std::memcpy(&h[j], w[j] + o, 2);
  return _mm256_cvtph_ps(_mm_setr_epi16(short(h[0]), short(h[1]), short(h[2]), short(h[3]), short(h[4]), short(h[5]),
                                        short(h[6]), short(h[7])));
}

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

template <wtype T>
void decode1_q32(const tile& t) {
  static_assert(T == wtype::Q8_0 || T == wtype::Q4_0);
  constexpr int64_t gb = group_bytes<T>;
  const uint8_t* w[8];
  for (int j = 0; j < 8; ++j) w[j] = t.w + std::min(j, t.nr - 1) * t.w_stride;
  const int8_t* xq = t.x.qs(t.i0);
  const float* xd = t.x.d(t.i0);
  const int32_t* xs = t.x.sum(t.i0);
  __m256 acc = _mm256_setzero_ps();
  auto group = [&](int64_t g) {
    const int64_t o = g * gb;
    const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + 32 * g));
    __m256i P[4];
    if constexpr (T == wtype::Q4_0) {
      // Rows p and p + 4 in one vector: [row p's 16 bytes | row p + 4's]; low nibbles (elements 0-15) against
      // [x 0-15 | x 0-15], high nibbles (16-31) against [x 16-31 | x 16-31].
      const __m256i xlo = _mm256_permute2x128_si256(xv, xv, 0x00), xhi = _mm256_permute2x128_si256(xv, xv, 0x11);
      const __m256i m4 = _mm256_set1_epi8(0x0f);
      for (int p = 0; p < 4; ++p) {
        const __m256i q = _mm256_inserti128_si256(
            _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w[p] + o + 2))),
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[p + 4] + o + 2)), 1);
        const __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
        P[p] = _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), lo, xlo), hi, xhi);
      }
    } else {
      // Each row's 32 weights + 128 (unsigned) against x; the sum is corrected by 128 x sum(x).
      const __m256i flip = _mm256_set1_epi8(char(0x80));
      __m256i Q[8];
      for (int j = 0; j < 8; ++j)
        Q[j] = _mm256_dpbusd_epi32(
            _mm256_setzero_si256(),
            _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[j] + o + 2)), flip), xv);
      fold_rows(Q, P);
    }
    __m256i I = reduce_pairs(P);
    I = _mm256_add_epi32(I, _mm256_set1_epi32((T == wtype::Q4_0 ? -8 : -128) * xs[g]));
    acc = V::fmadd(I, group_scale<V, T>(half8_rows(w, o), xd[g]), acc);
  };
  const int64_t ng = t.x.n_groups;
  next_tile_prefetch pf(t, (ng + 1) / 2);
  int64_t g = 0;
  for (; g + 1 < ng; g += 2) {
    pf.step();
    group(g);
    group(g + 1);
  }
  if (g < ng) group(g);
  store_row<V, T>(t, 0, acc, _mm256_setzero_ps());
}

// Compiled for this ISA, so called only once the CPU is known to have it (the accessor below is not).
isa_table build_table() {
  isa_table tab = make_table<V>("avx512-vnni", 6);
  tab.dk[size_t(wtype::Q8_0)][0] = &decode1_q32<wtype::Q8_0>;
  tab.dk[size_t(wtype::Q4_0)][0] = &decode1_q32<wtype::Q4_0>;
  return tab;
}

}  // namespace

}  // namespace autoglm::cpu::qgemm

#pragma GCC diagnostic pop
#pragma GCC pop_options

namespace autoglm::cpu::qgemm {

const isa_table* table_avx512_vnni() {
  static const isa_table t = build_table();
  return &t;
}

}  // namespace autoglm::cpu::qgemm

#else

#include "kernels/cpu/quant_gemm.h"

namespace autoglm::cpu::qgemm {
const isa_table* table_avx512_vnni() { return nullptr; }
}  // namespace autoglm::cpu::qgemm

#endif
