// kernels/cpu/quant_kv.cpp: Q8_0 cache rows to and from F32 (see quant_kv.h).
#include "kernels/cpu/quant_kv.h"

#include <cstring>

#include "core/quant_blocks.h"
#include "kernels/cpu/convert.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace autoglm::cpu {

namespace {

#if defined(__x86_64__)
__attribute__((target("avx2,fma,f16c"))) void q8_0_to_f32_avx2(const uint8_t* src, float* dst, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, src += 34, dst += 32) {
    uint16_t h;
    std::memcpy(&h, src, 2);
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(h));
    for (int v = 0; v < 4; ++v) {
      const __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(src + 2 + 8 * v)));
      _mm256_storeu_ps(dst + 8 * v, _mm256_mul_ps(d, _mm256_cvtepi32_ps(q)));
    }
  }
}
#endif

}  // namespace

void q8_0_to_f32(const uint8_t* src, float* dst, int64_t n) {
#if defined(__x86_64__)
  if (cpu_has_avx2()) return q8_0_to_f32_avx2(src, dst, n / 32);
#endif
  quant::dequantize_row(dtype::Q8_0, src, dst, n);
}

void f32_to_q8_0(const float* src, uint8_t* dst, int64_t n) { quant::quantize_row_q8_0(src, dst, n); }

}  // namespace autoglm::cpu
