// kernels/cpu/quant_isa_neon.h (internal): the vector abstraction V of quant_microkernel.h for aarch64 NEON with
// the dot-product extension (8 int32 / float lanes as two q registers; sdot for every integer dot product),
// included only by quant_isa_neon.cpp (dotprod) and quant_isa_neon_arm_i8mm.cpp (which extends it with smmla) once
// they compile for their ISA; everything is in an anonymous namespace, so each file has its own copy, built for its
// own target.
#pragma once

#include <arm_neon.h>

#include <cstdint>
#include <cstring>

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
  static constexpr int q8_bias = 0;  // sdot multiplies signed by signed: packed weights stay as they are

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
  // Byte e = v where bit e of the little-endian 32-bit word at p is set: byte k of the word duplicated over
  // bytes 8k .. 8k+7, then vtst against each byte's own bit.
  static bytes bits32(const void* p, int v) {
    const uint8_t* q = static_cast<const uint8_t*>(p);
    static constexpr uint8_t k_bit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    const uint8x16_t bit = vld1q_u8(k_bit), val = vdupq_n_u8(uint8_t(v));
    const uint8x16_t lo = vcombine_u8(vdup_n_u8(q[0]), vdup_n_u8(q[1]));
    const uint8x16_t hi = vcombine_u8(vdup_n_u8(q[2]), vdup_n_u8(q[3]));
    return {s(vandq_u8(vtstq_u8(lo, bit), val)), s(vandq_u8(vtstq_u8(hi, bit), val))};
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
  static bytes flip_sign(bytes a) {
    const int8x16_t m = vdupq_n_s8(int8_t(-128));
    return {veorq_s8(a.a, m), veorq_s8(a.b, m)};
  }
  static ints as_ints(bytes b) { return {vreinterpretq_s32_s8(b.a), vreinterpretq_s32_s8(b.b)}; }

  static ints izero() { return {vdupq_n_s32(0), vdupq_n_s32(0)}; }
  static ints ibcast(int x) { return {vdupq_n_s32(x), vdupq_n_s32(x)}; }
  static ints iadd(ints a, ints b) { return {vaddq_s32(a.a, b.a), vaddq_s32(a.b, b.b)}; }
  static ints imul(ints a, ints b) { return {vmulq_s32(a.a, b.a), vmulq_s32(a.b, b.b)}; }
  static ints iload(const int32_t* p) { return {vld1q_s32(p), vld1q_s32(p + 4)}; }
  static void istore(int32_t* p, ints a) {
    vst1q_s32(p, a.a);
    vst1q_s32(p + 4, a.b);
  }
  // Lane j = the sum of v[j]'s lanes: each row's halves added, then pairwise-add trees of 4 rows.
  static ints reduce8(const ints* v) {
    int32x4_t r[8];
    for (int j = 0; j < 8; ++j) r[j] = vaddq_s32(v[j].a, v[j].b);
    return {vpaddq_s32(vpaddq_s32(r[0], r[1]), vpaddq_s32(r[2], r[3])),
            vpaddq_s32(vpaddq_s32(r[4], r[5]), vpaddq_s32(r[6], r[7]))};
  }
  static void tr4(int32x4_t& a, int32x4_t& b, int32x4_t& c, int32x4_t& d) {
    const int32x4_t t0 = vtrn1q_s32(a, b), t1 = vtrn2q_s32(a, b), t2 = vtrn1q_s32(c, d), t3 = vtrn2q_s32(c, d);
    a = vreinterpretq_s32_s64(vtrn1q_s64(vreinterpretq_s64_s32(t0), vreinterpretq_s64_s32(t2)));
    b = vreinterpretq_s32_s64(vtrn1q_s64(vreinterpretq_s64_s32(t1), vreinterpretq_s64_s32(t3)));
    c = vreinterpretq_s32_s64(vtrn2q_s64(vreinterpretq_s64_s32(t0), vreinterpretq_s64_s32(t2)));
    d = vreinterpretq_s32_s64(vtrn2q_s64(vreinterpretq_s64_s32(t1), vreinterpretq_s64_s32(t3)));
  }
  // 8 x 8 as four 4 x 4 blocks: [A B; C D] -> [A' C'; B' D'].
  static void transpose8(ints* v) {
    int32x4_t A[4] = {v[0].a, v[1].a, v[2].a, v[3].a}, B[4] = {v[0].b, v[1].b, v[2].b, v[3].b};
    int32x4_t C[4] = {v[4].a, v[5].a, v[6].a, v[7].a}, D[4] = {v[4].b, v[5].b, v[6].b, v[7].b};
    tr4(A[0], A[1], A[2], A[3]);
    tr4(B[0], B[1], B[2], B[3]);
    tr4(C[0], C[1], C[2], C[3]);
    tr4(D[0], D[1], D[2], D[3]);
    for (int k = 0; k < 4; ++k) {
      v[k] = {A[k], C[k]};
      v[k + 4] = {B[k], D[k]};
    }
  }

  struct scale_src {
    int16_t v[16];
  };
  static scale_src scales_i8(const int8_t* p) {
    scale_src s;
    vst1q_s16(s.v, vmovl_s8(vld1_s8(p)));
    vst1q_s16(s.v + 8, vmovl_s8(vld1_s8(p + 8)));
    return s;
  }
  static scale_src scales_u8_dup(const uint8_t* p) {
    scale_src s;
    for (int k = 0; k < 16; ++k) s.v[k] = p[k / 2];
    return s;
  }
  static scale scale_pick(const scale_src& s, int v) { return {vdupq_n_s32(s.v[2 * v]), vdupq_n_s32(s.v[2 * v + 1])}; }
  static ints dot_u(ints acc, bytes w, bytes x) { return {vdotq_s32(acc.a, w.a, x.a), vdotq_s32(acc.b, w.b, x.b)}; }
  static ints dot_us(ints acc, bytes w, bytes x, scale sc) {
    const int32x4_t z = vdupq_n_s32(0);
    return {vmlaq_s32(acc.a, vdotq_s32(z, w.a, x.a), sc.lo), vmlaq_s32(acc.b, vdotq_s32(z, w.b, x.b), sc.hi)};
  }
  static ints dot_ss(ints acc, bytes w, bytes x) { return dot_u(acc, w, x); }
  static ints dotb_s(ints acc, bytes w, const int8_t* x4) {
    int32_t v;
    std::memcpy(&v, x4, 4);
    const int8x16_t xb = vreinterpretq_s8_s32(vdupq_n_s32(v));
    return {vdotq_s32(acc.a, w.a, xb), vdotq_s32(acc.b, w.b, xb)};
  }
  static ints dotb_u(ints acc, bytes w, const int8_t* x4) { return dotb_s(acc, w, x4); }  // weights <= 63

  static floats fzero() { return {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)}; }
  static floats fbcast(float x) { return {vdupq_n_f32(x), vdupq_n_f32(x)}; }
  static floats fmul_b(floats a, float x) { return {vmulq_n_f32(a.a, x), vmulq_n_f32(a.b, x)}; }
  static floats fload(const float* p) { return {vld1q_f32(p), vld1q_f32(p + 4)}; }
  // maxnm/minnm return the number when one operand is NaN: the scalar rule's std::max(m, |x|) and clamp.
  static floats fmaxabs(floats m, floats x) { return {vmaxnmq_f32(m.a, vabsq_f32(x.a)), vmaxnmq_f32(m.b, vabsq_f32(x.b))}; }
  static float fhmax(floats m) { return vmaxnmvq_f32(vmaxnmq_f32(m.a, m.b)); }
  static bytes quant32(const float* x, float id) {
    int16x8_t h[4];
    for (int k = 0; k < 4; ++k) {
      int32x4_t q[2];
      for (int u = 0; u < 2; ++u) {
        const float32x4_t v = vmulq_n_f32(vld1q_f32(x + 8 * k + 4 * u), id);
        q[u] = vcvtnq_s32_f32(vminnmq_f32(vmaxnmq_f32(v, vdupq_n_f32(-127.0f)), vdupq_n_f32(127.0f)));
      }
      h[k] = vcombine_s16(vqmovn_s32(q[0]), vqmovn_s32(q[1]));
    }
    return {vcombine_s8(vqmovn_s16(h[0]), vqmovn_s16(h[1])), vcombine_s8(vqmovn_s16(h[2]), vqmovn_s16(h[3]))};
  }
  static void store(void* p, bytes v) {
    vst1q_s8(static_cast<int8_t*>(p), v.a);
    vst1q_s8(static_cast<int8_t*>(p) + 16, v.b);
  }
  static void sums16(bytes q, int& lo, int& hi) {
    lo = vaddlvq_s8(q.a);
    hi = vaddlvq_s8(q.b);
  }
  static void fstore(float* p, floats a) {
    vst1q_f32(p, a.a);
    vst1q_f32(p + 4, a.b);
  }
  static floats fmadd(ints i, floats sc, floats acc) {
    return {vfmaq_f32(acc.a, vcvtq_f32_s32(i.a), sc.a), vfmaq_f32(acc.b, vcvtq_f32_s32(i.b), sc.b)};
  }
  static floats half8_at(const uint8_t* const* b, int at) {
    uint16_t h[8];
    for (int j = 0; j < 8; ++j) std::memcpy(&h[j], b[j] + at, 2);
    return half8(h);
  }
  static floats half8(const uint16_t* h) {
    return {vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(h))), vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(h + 4)))};
  }
  static int dot16_i8_i16(const int8_t* a, const int16_t* b) {
    const int16x8_t a0 = vmovl_s8(vld1_s8(a)), a1 = vmovl_s8(vld1_s8(a + 8));
    int32x4_t r = vmull_s16(vget_low_s16(a0), vld1_s16(b));
    r = vmlal_s16(r, vget_high_s16(a0), vld1_s16(b + 4));
    r = vmlal_s16(r, vget_low_s16(a1), vld1_s16(b + 8));
    r = vmlal_s16(r, vget_high_s16(a1), vld1_s16(b + 12));
    return vaddvq_s32(r);
  }
  static int dot8_u8_i16(const uint8_t* a, const int16_t* b) {
    const int16x8_t a0 = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(a)));
    int32x4_t r = vmull_s16(vget_low_s16(a0), vld1_s16(b));
    r = vmlal_s16(r, vget_high_s16(a0), vld1_s16(b + 4));
    return vaddvq_s32(r);
  }
};

}  // namespace

}  // namespace autoglm::cpu::qgemm
