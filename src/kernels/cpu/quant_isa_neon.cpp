// kernels/cpu/quant_isa_neon.cpp: the quantized LINEAR micro-kernels for aarch64 with the dot-product extension
// (ARMv8.2 dotprod: every phone core since Cortex-A55/A75, Apple, Graviton 2+): sdot sums 4 signed byte products
// into each int32 lane, which is exactly the lane rule of quant_microkernel.h, so the 8 lanes are two int32x4 and
// results equal the x86 and portable paths bit for bit. Chosen at run time (HWCAP_ASIMDDP); without dotprod the
// portable path runs.
#if defined(__aarch64__)

#include <arm_neon.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/dtype.h"
#include "core/quant_blocks.h"
#include "kernels/cpu/quant_gemm.h"

#pragma GCC push_options
#pragma GCC target("arch=armv8.2-a+dotprod")

#include "kernels/cpu/quant_microkernel.h"

namespace autoglm::cpu::qgemm {

namespace {

struct v_neon {
  struct bytes {
    int8x16_t a, b;
  };
  struct ints {
    int32x4_t a, b;
  };
  struct floats {
    float32x4_t a, b;
  };
  struct scale {
    int32x4_t lo, hi;
  };

  static uint8x16_t u(int8x16_t v) { return vreinterpretq_u8_s8(v); }
  static int8x16_t s(uint8x16_t v) { return vreinterpretq_s8_u8(v); }

  static bytes load(const void* p) {
    const int8_t* q = static_cast<const int8_t*>(p);
    return {vld1q_s8(q), vld1q_s8(q + 16)};
  }
  static bytes nibbles16(const void* p) {
    const uint8x16_t q = vld1q_u8(static_cast<const uint8_t*>(p));
    return {s(vandq_u8(q, vdupq_n_u8(0x0f))), s(vshrq_n_u8(q, 4))};
  }
  static bytes nib_lo(bytes v) {
    const uint8x16_t m = vdupq_n_u8(0x0f);
    return {s(vandq_u8(u(v.a), m)), s(vandq_u8(u(v.b), m))};
  }
  static bytes nib_hi(bytes v) { return {s(vshrq_n_u8(u(v.a), 4)), s(vshrq_n_u8(u(v.b), 4))}; }
  static bytes field(bytes v, int shr, int mask, int shl) {
    const int8x16_t r = vdupq_n_s8(int8_t(-shr)), l = vdupq_n_s8(int8_t(shl));
    const uint8x16_t m = vdupq_n_u8(uint8_t(mask));
    return {s(vshlq_u8(vandq_u8(vshlq_u8(u(v.a), r), m), l)), s(vshlq_u8(vandq_u8(vshlq_u8(u(v.b), r), m), l))};
  }
  static bytes or_(bytes a, bytes b) { return {vorrq_s8(a.a, b.a), vorrq_s8(a.b, b.b)}; }
  static ints izero() { return {vdupq_n_s32(0), vdupq_n_s32(0)}; }
  static floats fzero() { return {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)}; }
  static scale make_scale(int lo, int hi) { return {vdupq_n_s32(lo), vdupq_n_s32(hi)}; }
  static ints dot_u(ints acc, bytes w, bytes x) { return {vdotq_s32(acc.a, w.a, x.a), vdotq_s32(acc.b, w.b, x.b)}; }
  static ints dot_us(ints acc, bytes w, bytes x, scale sc) {
    const int32x4_t z = vdupq_n_s32(0);
    return {vmlaq_s32(acc.a, vdotq_s32(z, w.a, x.a), sc.lo), vmlaq_s32(acc.b, vdotq_s32(z, w.b, x.b), sc.hi)};
  }
  static ints dot_ss(ints acc, bytes w, bytes x) { return dot_u(acc, w, x); }
  static floats fmadd(ints i, float sc, floats acc) {
    return {vfmaq_n_f32(acc.a, vcvtq_f32_s32(i.a), sc), vfmaq_n_f32(acc.b, vcvtq_f32_s32(i.b), sc)};
  }
  static float hsum(floats v) {
    const float32x4_t t = vaddq_f32(v.a, v.b);  // (a0+a4, a1+a5, a2+a6, a3+a7)
    const float32x2_t h = vadd_f32(vget_low_f32(t), vget_high_f32(t));
    return vget_lane_f32(h, 0) + vget_lane_f32(h, 1);
  }
  static float half(const uint8_t* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0);
  }
};

// Compiled for this ISA, so called only once the CPU is known to have it (the accessor below is not).
isa_table build_table() { return make_table<v_neon, 4>("neon-dotprod", 4); }

}  // namespace

}  // namespace autoglm::cpu::qgemm

#pragma GCC pop_options

namespace autoglm::cpu::qgemm {

const isa_table* table_neon_dotprod() {
  static const isa_table t = build_table();
  return &t;
}

}  // namespace autoglm::cpu::qgemm

#else

#include "kernels/cpu/quant_gemm.h"

namespace autoglm::cpu::qgemm {
const isa_table* table_neon_dotprod() { return nullptr; }
}  // namespace autoglm::cpu::qgemm

#endif
