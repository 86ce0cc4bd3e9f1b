// kernels/cpu/quant_isa_neon_arm_i8mm.cpp: the prefill (packed) quantized LINEAR kernels for aarch64 with the
// int8 matrix-multiply extension (FEAT_I8MM: optional from ARMv8.2, mandatory from v8.6; Cortex-A510/A710/X2 and
// later, Neoverse V1/N2). smmla multiplies a 2 x 8 block of signed bytes by the transpose of another: 4 int32 sums
// of 8 products each, i.e. 2 x rows against 2 W rows over an 8-byte slice of k, 32 products per instruction where
// sdot does 16. So packed tiles hold pairs of W rows (chunk = 8 bytes of row 2p, then the same 8 bytes of row
// 2p + 1), x rows are paired the same way as they are read (two zips per pair and 16 bytes), and each group's
// 2 x 2 blocks are unzipped into the lane-per-W-row integers of quant_microkernel.h. The integers are exactly
// those of every other path (int32 sums of the same int8 products, the k-quant scales applied per sub-block as
// integers), and the float steps are the shared ones, so the results equal the dotprod and portable paths bit for
// bit.
//
// Decode (1-3 x rows, W read once in place, bound by memory bandwidth) and the activation quantizer stay the
// dotprod ones (quant_isa_neon.cpp). Compiled with -march=armv8.2-a+dotprod+i8mm for this file only
// (cmake/autoglm_arm.cmake), and called only once quant_linear.cpp has seen HWCAP2_I8MM and HWCAP_ASIMDDP: the
// rest of the binary still runs on ARMv8.0 (Cortex-A53). Everything here is a template on a V in an anonymous
// namespace or a plain function, so the object defines no weak symbol a baseline caller could pick up
// (tests/arm/run_arm_tests.sh checks).
#include <arm_neon.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>

#include "core/dtype.h"
#include "core/quant_blocks.h"
#include "kernels/cpu/quant_gemm.h"
#include "kernels/cpu/quant_isa_neon.h"
#include "kernels/cpu/quant_microkernel.h"

namespace autoglm::cpu::qgemm {

namespace {

int64x2_t d64(int32x4_t v) { return vreinterpretq_s64_s32(v); }
int64x2_t d64(int8x16_t v) { return vreinterpretq_s64_s8(v); }
int32x4_t s32(int64x2_t v) { return vreinterpretq_s32_s64(v); }

struct v_i8mm : v_neon {
  static constexpr bool pair_tiles = true;

  // r[j] = W row j's 32 bytes (as two int32x4: bytes 0-15, 16-31) -> 16 chunks of 16 bytes, chunk 4p + s = bytes
  // 8s .. 8s+7 of row 2p then of row 2p + 1 (smmla's second operand for W rows 2p, 2p + 1 and k slice s); r[k]
  // holds chunks 2k and 2k + 1.
  static void pair_rows(ints* r) {
    ints out[8];
    for (int p = 0; p < 4; ++p) {
      const int64x2_t a_lo = d64(r[2 * p].a), a_hi = d64(r[2 * p].b);
      const int64x2_t b_lo = d64(r[2 * p + 1].a), b_hi = d64(r[2 * p + 1].b);
      out[2 * p] = {s32(vzip1q_s64(a_lo, b_lo)), s32(vzip2q_s64(a_lo, b_lo))};      // slices 0, 1
      out[2 * p + 1] = {s32(vzip1q_s64(a_hi, b_hi)), s32(vzip2q_s64(a_hi, b_hi))};  // slices 2, 3
    }
    for (int k = 0; k < 8; ++k) r[k] = out[k];
  }

  // The x rows in pairs (2q, 2q + 1; the last row twice when MR is odd), 16 bytes each from byte `at` of their qs:
  // X[q][s] = smmla's first operand for k slice s (bytes at + 8s .. at + 8s + 7 of both rows).
  template <int MR>
  static void x_pairs(const int8_t* const* xq, int64_t at, int8x16_t (*X)[2]) {
    for (int q = 0; q < (MR + 1) / 2; ++q) {
      const int64x2_t a = d64(vld1q_s8(xq[2 * q] + at)), b = d64(vld1q_s8(xq[std::min(2 * q + 1, MR - 1)] + at));
      X[q][0] = vreinterpretq_s8_s64(vzip1q_s64(a, b));
      X[q][1] = vreinterpretq_s8_s64(vzip2q_s64(a, b));
    }
  }

  // C[q][p] += the products of 16 bytes of k: x pair q against W pair p, from `w` (the vector's 256 packed bytes)
  // at slices 2h, 2h + 1. C[q][p] lanes: (x 2q, W 2p), (x 2q, W 2p+1), (x 2q+1, W 2p), (x 2q+1, W 2p+1).
  template <int NP>
  static void mmla16(const uint8_t* w, int h, const int8x16_t (*X)[2], int32x4_t (*C)[4]) {
    for (int p = 0; p < 4; ++p)
      for (int s = 0; s < 2; ++s) {
        const int8x16_t wv = vld1q_s8(reinterpret_cast<const int8_t*>(w) + 16 * (4 * p + 2 * h + s));
        for (int q = 0; q < NP; ++q) C[q][p] = vmmlaq_s32(C[q][p], X[q][s], wv);
      }
  }

  // The integers I_g of group g for MR x rows (quant_microkernel.h's pair_tiles contract).
  template <wtype T, int MR>
  static void group_ints(const uint8_t* packed, const int8_t* const* xq, int64_t g, ints* I) {
    constexpr int NP = (MR + 1) / 2;
    int32x4_t C[NP][4];
    for (auto& c : C)
      for (auto& v : c) v = vdupq_n_s32(0);
    int8x16_t X[NP][2];
    if constexpr (!is_k<T>) {
      for (int h = 0; h < 2; ++h) {
        x_pairs<MR>(xq, 32 * g + 16 * h, X);
        mmla16<NP>(packed, h, X, C);
      }
    } else {
      // Runs of elements sharing one integer scale per W row: Q6_K two runs of 16 per 32-element vector, else one
      // of 32. Each run's sums are multiplied by its scales, laid out like C: [s(2p), s(2p+1), s(2p), s(2p+1)].
      // The loops inside a vector are unrolled, so every offset below is a constant.
      const int32_t* sc = reinterpret_cast<const int32_t*>(packed + 64 * 32);  // [16 halves][8 rows], see pack_tile
      constexpr int runs = T == wtype::Q6_K ? 2 : 1, halves = 2 / runs;        // per vector, 16-byte halves per run
      for (int v = 0; v < 8; ++v) {
#pragma GCC unroll 2
        for (int r = 0; r < runs; ++r) {
          int32x4_t D[NP][4];
          for (auto& d : D)
            for (auto& e : d) e = vdupq_n_s32(0);
#pragma GCC unroll 2
          for (int u = 0; u < halves; ++u) {
            const int h = r * halves + u;  // 16-byte half of vector v
            x_pairs<MR>(xq, 256 * g + 32 * v + 16 * h, X);
            mmla16<NP>(packed + 256 * v, h, X, D);
          }
          const int32_t* s = sc + 8 * (2 * v + r);  // the first 16-element half of the run
          const int64x2_t lo = d64(vld1q_s32(s)), hi = d64(vld1q_s32(s + 4));
          const int32x4_t S[4] = {s32(vdupq_laneq_s64(lo, 0)), s32(vdupq_laneq_s64(lo, 1)), s32(vdupq_laneq_s64(hi, 0)),
                                  s32(vdupq_laneq_s64(hi, 1))};
          for (int q = 0; q < NP; ++q)
            for (int p = 0; p < 4; ++p) C[q][p] = vmlaq_s32(C[q][p], D[q][p], S[p]);
        }
      }
    }
    // To lanes = W rows: x row 2q takes the low halves of C[q][0 .. 3], x row 2q + 1 the high halves.
    for (int q = 0; q < NP; ++q) {
      I[2 * q] = {s32(vzip1q_s64(d64(C[q][0]), d64(C[q][1]))), s32(vzip1q_s64(d64(C[q][2]), d64(C[q][3])))};
      if (2 * q + 1 < MR)
        I[2 * q + 1] = {s32(vzip2q_s64(d64(C[q][0]), d64(C[q][1]))), s32(vzip2q_s64(d64(C[q][2]), d64(C[q][3])))};
    }
  }
};

template <int... Ts>
void fill_prefill_all(isa_table& tab, std::integer_sequence<int, Ts...>) {
  (fill_prefill<v_i8mm, wtype(Ts)>(tab), ...);
}

}  // namespace

// Only pointers are stored here; the table itself is built (once, thread-safe) by table_neon_i8mm in
// quant_isa_neon.cpp, so this object needs no static guard and no exception tables (whose personality
// reference would be a weak symbol).
void fill_prefill_i8mm(isa_table& tab) {
  // 2 x pairs: 8 accumulators (16 with the k-quants' per-run sums) fit the 32 registers.
  for (int& mr : tab.prefill_mr) mr = 4;
  fill_prefill_all(tab, std::make_integer_sequence<int, int(wtype::COUNT)>{});  // every weight type
}

}  // namespace autoglm::cpu::qgemm
