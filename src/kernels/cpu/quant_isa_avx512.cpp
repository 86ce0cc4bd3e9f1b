// kernels/cpu/quant_isa_avx512.cpp: the quantized LINEAR micro-kernels for x86-64 with AVX-512 VNNI (Ice Lake,
// Sapphire Rapids, Zen 4 and later), on 256-bit vectors (the lanes of quant_microkernel.h; EVEX encoding also
// gives the compiler 32 registers for the register tiles): vpdpbusd does unsigned x signed byte products summed
// by 4 into int32 lanes in one instruction; the k-quants' scaled form is vpmaddubsw then vpdpwssd (pairs x scale
// added into the lanes). The integers are exactly those of the AVX2 file, so results are identical.
#if defined(__x86_64__)

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/dtype.h"
#include "core/quant_blocks.h"
#include "kernels/cpu/quant_gemm.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")

#include "kernels/cpu/quant_microkernel.h"

namespace autoglm::cpu::qgemm {

namespace {

struct v_vnni {
  using bytes = __m256i;
  using ints = __m256i;
  using floats = __m256;
  using scale = __m256i;

  static bytes load(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
  static bytes nibbles16(const void* p) {
    const __m128i q = _mm_loadu_si128(static_cast<const __m128i*>(p));
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(0x0f));
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
  static ints izero() { return _mm256_setzero_si256(); }
  static floats fzero() { return _mm256_setzero_ps(); }
  static scale make_scale(int lo, int hi) {
    return _mm256_set_m128i(_mm_set1_epi16(short(hi)), _mm_set1_epi16(short(lo)));
  }
  static ints dot_u(ints acc, bytes w, bytes x) { return _mm256_dpbusd_epi32(acc, w, x); }
  static ints dot_us(ints acc, bytes w, bytes x, scale s) {
    return _mm256_dpwssd_epi32(acc, _mm256_maddubs_epi16(w, x), s);
  }
  static ints dot_ss(ints acc, bytes w, bytes x) { return dot_u(acc, _mm256_abs_epi8(w), _mm256_sign_epi8(x, w)); }
  static floats fmadd(ints i, float s, floats acc) {
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(i), _mm256_set1_ps(s), acc);
  }
  static float hsum(floats v) {
    __m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
  }
  static float half(const uint8_t* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return _cvtsh_ss(h);
  }
};

// Compiled for this ISA, so called only once the CPU is known to have it (the accessor below is not).
isa_table build_table() { return make_table<v_vnni, 4>("avx512-vnni", 4); }

}  // namespace

}  // namespace autoglm::cpu::qgemm

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
