// kernels/cpu/quant_isa_avx2.cpp: the quantized LINEAR micro-kernels for x86-64 with AVX2 + FMA + F16C (Haswell
// and later, Zen): int8 products with vpmaddubsw (unsigned weights x signed activations; signed Q8_0/I8 weights
// through the abs/sign trick) and vpmaddwd (pairs to int32 lanes, by 1 or by the k-quants' sub-block scale).
// Products never saturate: |x| <= 127 and weights are 0..63 or |w| <= 128, so a pair is at most 2 * 128 * 127.
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
#pragma GCC target("avx2,fma,f16c")

#include "kernels/cpu/quant_microkernel.h"

namespace autoglm::cpu::qgemm {

namespace {

struct v_avx2 {
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
  static ints dot_u(ints acc, bytes w, bytes x) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1)));
  }
  static ints dot_us(ints acc, bytes w, bytes x, scale s) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), s));
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
isa_table build_table() { return make_table<v_avx2, 4>("avx2", 4); }

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
