// kernels/cpu/convert.cpp: F16/BF16 -> F32 row conversion (AVX2+F16C or portable), F32 -> BF16 (AVX2 or
// portable), F32 -> F16, and the ISA switch.
#include "kernels/cpu/convert.h"

#include <atomic>
#include <cstring>

#include "core/error.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

namespace autoglm::cpu {

namespace {
std::atomic<bool> g_portable_only{false};
}  // namespace

bool cpu_has_avx2() {
#if defined(__x86_64__)
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  return has && !g_portable_only.load(std::memory_order_relaxed);
#else
  return false;
#endif
}

#if defined(__x86_64__)
uint64_t os_saved_xstate() {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE)) return 0;
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (uint64_t(hi) << 32) | lo;
}
#endif

void force_portable_kernels(bool on) { g_portable_only.store(on); }
bool portable_kernels_forced() { return g_portable_only.load(); }

void convert_to_f32_ref(dtype type, const void* src, float* dst, int64_t n) {
  switch (type) {
    case dtype::F32:
      std::memcpy(dst, src, size_t(n) * 4);
      return;
    case dtype::BF16: {
      auto* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
      return;
    }
    case dtype::F16: {
      auto* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(s[i]);
      return;
    }
    default:
      AG_CHECK(false, std::string("convert_to_f32: unsupported dtype ") + dtype_name(type));
  }
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma,f16c"))) static void convert_avx2(dtype type, const void* src, float* dst, int64_t n) {
  int64_t i = 0;
  auto* s = static_cast<const uint16_t*>(src);
  if (type == dtype::BF16) {
    for (; i + 8 <= n; i += 8) {
      __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i)));
      _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
    }
  } else {
    for (; i + 8 <= n; i += 8)
      _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i))));
  }
  if (i < n) convert_to_f32_ref(type, s + i, dst + i, n - i);
}
#endif

void convert_to_f32(dtype type, const void* src, float* dst, int64_t n) {
#if defined(__x86_64__)
  if (type != dtype::F32 && (type == dtype::BF16 || type == dtype::F16) && cpu_has_avx2()) {
    convert_avx2(type, src, dst, n);
    return;
  }
#endif
  convert_to_f32_ref(type, src, dst, n);
}

#if defined(__x86_64__)
// f32_to_bf16 on 8 lanes, the same integer steps: round to nearest even, a NaN quieted with its top payload bits.
__attribute__((target("avx2"))) static int64_t bf16_from_f32_avx2(const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
  const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
  const __m256i round = _mm256_set1_epi32(0x7fff), one = _mm256_set1_epi32(1), quiet = _mm256_set1_epi32(0x40);
  for (; i + 8 <= n; i += 8) {
    const __m256i u = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i));
    const __m256i hi = _mm256_srli_epi32(u, 16);
    const __m256i rounded =
        _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, round), _mm256_and_si256(hi, one)), 16);
    const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, abs_mask), inf);
    const __m256i r = _mm256_blendv_epi8(rounded, _mm256_or_si256(hi, quiet), nan);
    // 8 x 32 -> 8 x 16 (values < 2^16: packus is exact); packus works per 128-bit lane, so gather lanes 0 and 2.
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0x08);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), _mm256_castsi256_si128(packed));
  }
  return i;
}
#endif

void convert_from_f32(dtype type, const float* src, void* dst, int64_t n) {
  switch (type) {
    case dtype::F32:
      std::memcpy(dst, src, size_t(n) * 4);
      return;
    case dtype::BF16: {
      auto* d = static_cast<uint16_t*>(dst);
      int64_t i = 0;
#if defined(__x86_64__)
      if (cpu_has_avx2()) i = bf16_from_f32_avx2(src, d, n);
#endif
      for (; i < n; ++i) d[i] = f32_to_bf16(src[i]);
      return;
    }
    case dtype::F16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = f32_to_f16(src[i]);
      return;
    }
    default:
      AG_CHECK(false, std::string("convert_from_f32: unsupported dtype ") + dtype_name(type));
  }
}

}  // namespace autoglm::cpu
