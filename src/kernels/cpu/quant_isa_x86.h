// kernels/cpu/quant_isa_x86.h (internal): the vector abstraction V of quant_microkernel.h for x86-64, on 256-bit
// vectors, included only by quant_isa_avx2.cpp (AVX2 + FMA + F16C) and quant_isa_avx512.cpp (plus AVX-512 VNNI
// and VL) after their `#pragma GCC target`; everything is in an anonymous namespace, so each file has its own.
//  - AVX2: vpmaddubsw (unsigned x signed bytes to int16 pairs) then vpmaddwd (pairs to int32, by 1 or by the
//    k-quants' scale); signed weights through the abs/sign trick. Nothing saturates: |x| <= 127 and unsigned
//    weights are at most 63, so a pair is at most 2 * 128 * 127.
//  - VNNI: vpdpbusd (4 unsigned x signed byte products into each int32 lane, no intermediate saturation), so
//    packed Q8_0/I8 weights are stored + 128 as unsigned and the sum corrected by 128 x sum(x); the scaled form is
//    vpmaddubsw then vpdpwssd.
// Both compute the same integers; float steps are the shared ones of quant_microkernel.h.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace autoglm::cpu::qgemm {

namespace {

template <bool vnni>
struct v_x86 {
  using bytes = __m256i;
  using ints = __m256i;
  using floats = __m256;
  using scale = __m256i;
  static constexpr int q8_bias = vnni ? 128 : 0;

  static bytes load(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
  static bytes nibbles16(const void* p) {
    const __m128i q = _mm_loadu_si128(static_cast<const __m128i*>(p));
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(0x0f));
  }
  // Byte e = v where bit e of the little-endian 32-bit word at p is set. AVX-512 BW/VL: the word is a byte mask
  // as it stands (a kmov and a masked move). AVX2: byte k of the word spread over bytes 8k .. 8k+7 (the shuffle
  // works within 128-bit halves, each of which holds the word), then each byte tests its own bit.
  static bytes bits32(const void* p, int v) {
    int32_t w;
    std::memcpy(&w, p, 4);
    if constexpr (vnni) return _mm256_maskz_mov_epi8(__mmask32(uint32_t(w)), _mm256_set1_epi8(char(v)));
    const __m256i spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32(w), _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2,
                                               3, 3, 3, 3, 3, 3, 3, 3));
    const __m256i bit = _mm256_set1_epi64x(int64_t(0x8040201008040201ull));
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit), _mm256_set1_epi8(char(v)));
  }
  static bytes nib_lo(bytes v) { return _mm256_and_si256(v, _mm256_set1_epi8(0x0f)); }
  static bytes nib_hi(bytes v) { return _mm256_and_si256(_mm256_srli_epi16(v, 4), _mm256_set1_epi8(0x0f)); }
  // 16-bit shifts are exact per byte here: the mask drops what crosses in from the neighbour before the left
  // shift, and mask << shl stays inside the byte.
  static bytes field(bytes v, int shr, int mask, int shl) {
    const __m256i t = _mm256_and_si256(_mm256_srl_epi16(v, _mm_cvtsi32_si128(shr)), _mm256_set1_epi8(char(mask)));
    return _mm256_sll_epi16(t, _mm_cvtsi32_si128(shl));
  }
  static bytes or_(bytes a, bytes b) { return _mm256_or_si256(a, b); }
  static bytes flip_sign(bytes a) { return _mm256_xor_si256(a, _mm256_set1_epi8(char(0x80))); }
  static ints as_ints(bytes b) { return b; }

  static ints izero() { return _mm256_setzero_si256(); }
  static ints ibcast(int x) { return _mm256_set1_epi32(x); }
  static ints iadd(ints a, ints b) { return _mm256_add_epi32(a, b); }
  static ints imul(ints a, ints b) { return _mm256_mullo_epi32(a, b); }
  static ints iload(const int32_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static void istore(int32_t* p, ints a) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), a); }
  // Lane j = the sum of v[j]'s lanes: a horizontal-add tree (within 128-bit halves), then the halves.
  static ints reduce8(const ints* v) {
    const __m256i a0 = _mm256_hadd_epi32(v[0], v[1]), a1 = _mm256_hadd_epi32(v[2], v[3]);
    const __m256i a2 = _mm256_hadd_epi32(v[4], v[5]), a3 = _mm256_hadd_epi32(v[6], v[7]);
    const __m256i b0 = _mm256_hadd_epi32(a0, a1), b1 = _mm256_hadd_epi32(a2, a3);
    return _mm256_add_epi32(_mm256_permute2x128_si256(b0, b1, 0x20), _mm256_permute2x128_si256(b0, b1, 0x31));
  }
  static void transpose8(ints* v) {
    __m256i t[8], u[8];
    for (int k = 0; k < 4; ++k) {
      t[2 * k] = _mm256_unpacklo_epi32(v[2 * k], v[2 * k + 1]);
      t[2 * k + 1] = _mm256_unpackhi_epi32(v[2 * k], v[2 * k + 1]);
    }
    for (int k = 0; k < 2; ++k) {
      u[4 * k + 0] = _mm256_unpacklo_epi64(t[4 * k], t[4 * k + 2]);
      u[4 * k + 1] = _mm256_unpackhi_epi64(t[4 * k], t[4 * k + 2]);
      u[4 * k + 2] = _mm256_unpacklo_epi64(t[4 * k + 1], t[4 * k + 3]);
      u[4 * k + 3] = _mm256_unpackhi_epi64(t[4 * k + 1], t[4 * k + 3]);
    }
    for (int k = 0; k < 4; ++k) {
      v[k] = _mm256_permute2x128_si256(u[k], u[k + 4], 0x20);
      v[k + 4] = _mm256_permute2x128_si256(u[k], u[k + 4], 0x31);
    }
  }

  // The k-quants' integer scales of a group as 16 int16 (Q6_K: one per 16 elements; Q4_K/Q5_K: each of the 8
  // duplicated), and the scale vector of 32-element vector v: lanes 0-3 by entry 2v, lanes 4-7 by entry 2v + 1.
  using scale_src = __m256i;
  static scale_src scales_i8(const int8_t* p) {
    return _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static scale_src scales_u8_dup(const uint8_t* p) {
    const __m128i s = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
    return _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(s, s));
  }
  static scale scale_pick(scale_src s, int v) {
    const __m256i pair = _mm256_permutevar8x32_epi32(s, _mm256_set1_epi32(v));  // (entry 2v, entry 2v+1) x 8
    return _mm256_shuffle_epi8(pair, _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3,
                                                      2, 3, 2, 3, 2, 3, 2, 3, 2, 3));
  }
  static ints dot_u(ints acc, bytes w, bytes x) {
    if constexpr (vnni) return _mm256_dpbusd_epi32(acc, w, x);
    else return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1)));
  }
  static ints dot_us(ints acc, bytes w, bytes x, scale s) {
    if constexpr (vnni) return _mm256_dpwssd_epi32(acc, _mm256_maddubs_epi16(w, x), s);
    else return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), s));
  }
  static ints dot_ss(ints acc, bytes w, bytes x) { return dot_u(acc, _mm256_abs_epi8(w), _mm256_sign_epi8(x, w)); }
  static __m256i x4_bcast(const int8_t* x4) {
    int32_t v;
    std::memcpy(&v, x4, 4);
    return _mm256_set1_epi32(v);
  }
  static ints dotb_u(ints acc, bytes w, const int8_t* x4) { return dot_u(acc, w, x4_bcast(x4)); }
  static ints dotb_s(ints acc, bytes w, const int8_t* x4) { return dot_ss(acc, w, x4_bcast(x4)); }

  static floats fzero() { return _mm256_setzero_ps(); }
  static floats fbcast(float x) { return _mm256_set1_ps(x); }
  static floats fmul_b(floats a, float x) { return _mm256_mul_ps(a, _mm256_set1_ps(x)); }
  static void fstore(float* p, floats a) { _mm256_storeu_ps(p, a); }
  static floats fload(const float* p) { return _mm256_loadu_ps(p); }
  // max(m, |x|) per lane, keeping m where x is NaN (maxps returns its second operand then), as std::max(m, |x|).
  static floats fmaxabs(floats m, floats x) {
    return _mm256_max_ps(_mm256_and_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff))), m);
  }
  static float fhmax(floats m) {
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
  }
  // 32 values times id, clamped to +-127 (NaN to -127, as the scalar rule), rounded half to even (MXCSR default).
  static bytes quant32(const float* x, float id) {
    const __m256 s = _mm256_set1_ps(id), lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
    __m256i q[4];
    for (int k = 0; k < 4; ++k)
      q[k] = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * k), s), lo), hi));
    const __m256i a = _mm256_packs_epi32(q[0], q[1]), b = _mm256_packs_epi32(q[2], q[3]);  // within 128-bit halves
    const __m256i p = _mm256_packs_epi16(a, b);
    return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  }
  static void store(void* p, bytes v) { _mm256_storeu_si256(static_cast<__m256i*>(p), v); }
  static void sums16(bytes q, int& lo, int& hi) {
    const __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), q), _mm256_set1_epi16(1));
    lo = hsum_i32(_mm256_castsi256_si128(s));
    hi = hsum_i32(_mm256_extracti128_si256(s, 1));
  }
  static floats fmadd(ints i, floats s, floats acc) { return _mm256_fmadd_ps(_mm256_cvtepi32_ps(i), s, acc); }
  // The f16 at byte offset `at` of 8 blocks.
  static floats half8_at(const uint8_t* const* b, int at) {
    uint16_t h[8];
    for (int j = 0; j < 8; ++j) std::memcpy(&h[j], b[j] + at, 2);
    return _mm256_cvtph_ps(_mm_setr_epi16(short(h[0]), short(h[1]), short(h[2]), short(h[3]), short(h[4]), short(h[5]),
                                          short(h[6]), short(h[7])));
  }
  // half8_at's value where 16 bytes from the f16 lie inside each block: word 0 of a 16-byte load per block (ld(j):
  // block j's), gathered by an unpack tree (the loads fold into the unpacks) instead of 8 scalar loads and 7 word
  // inserts: a few percent of a Q4 decode, which is bound by issued instructions.
  template <class Load16>
  static floats half8_heads(Load16 ld) {
    const __m128i r01 = _mm_unpacklo_epi16(ld(0), ld(1)), r23 = _mm_unpacklo_epi16(ld(2), ld(3));
    const __m128i r45 = _mm_unpacklo_epi16(ld(4), ld(5)), r67 = _mm_unpacklo_epi16(ld(6), ld(7));
    return _mm256_cvtph_ps(_mm_unpacklo_epi64(_mm_unpacklo_epi32(r01, r23), _mm_unpacklo_epi32(r45, r67)));
  }
  static floats half8_in_blocks(const uint8_t* const* b, int at) {
    return half8_heads([&](int j) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[j] + at)); });
  }
  static floats half8(const uint16_t* h) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h)));
  }

  static int hsum_i32(__m128i s) {
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
  }
  static int dot16_i8_i16(const int8_t* a, const int16_t* b) {
    const __m256i p = _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a))),
                                        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b)));
    return hsum_i32(_mm_add_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1)));
  }
  static int dot8_u8_i16(const uint8_t* a, const int16_t* b) {
    return hsum_i32(_mm_madd_epi16(_mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(a))),
                                   _mm_loadu_si128(reinterpret_cast<const __m128i*>(b))));
  }
};

}  // namespace

}  // namespace autoglm::cpu::qgemm
