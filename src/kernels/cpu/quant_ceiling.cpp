// kernels/cpu/quant_ceiling.cpp: the int8 dot-product throughput probe (see quant_ceiling.h).
#include "kernels/cpu/quant_ceiling.h"

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "kernels/cpu/ceilings.h"
#include "kernels/cpu/quant_linear.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif
#if defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace autoglm::cpu {

namespace {

std::atomic<int32_t> g_sink{0};

// Each probe runs `iters` rounds of 12 independent chains and returns int8 operations done (2 per product).
#if defined(__x86_64__)
__attribute__((target("avx2,avx512f,avx512vl,avx512bw,avx512vnni"))) double probe_vnni(int64_t iters) {
  __m256i a[12];
  for (int k = 0; k < 12; ++k) a[k] = _mm256_set1_epi32(k);
  const __m256i b = _mm256_set1_epi8(3), c = _mm256_set1_epi8(5);
  for (int64_t i = 0; i < iters; ++i)
#pragma GCC unroll 12
    for (int k = 0; k < 12; ++k) a[k] = _mm256_dpbusd_epi32(a[k], b, c);
  for (int k = 1; k < 12; ++k) a[0] = _mm256_add_epi32(a[0], a[k]);
  g_sink.store(_mm256_extract_epi32(a[0], 0), std::memory_order_relaxed);
  return 12.0 * 32 * 2 * double(iters);
}

__attribute__((target("avx2"))) double probe_avx2(int64_t iters) {
  __m256i a[12];
  for (int k = 0; k < 12; ++k) a[k] = _mm256_set1_epi32(k);
  __m256i b = _mm256_set1_epi8(3);
  const __m256i c = _mm256_set1_epi8(5), one = _mm256_set1_epi16(1);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (int k = 0; k < 12; ++k) a[k] = _mm256_add_epi32(a[k], _mm256_madd_epi16(_mm256_maddubs_epi16(b, c), one));
    // A dependence on the loop keeps the products from being hoisted out of it.
    b = _mm256_xor_si256(b, _mm256_srli_epi32(a[0], 31));
  }
  for (int k = 1; k < 12; ++k) a[0] = _mm256_add_epi32(a[0], a[k]);
  g_sink.store(_mm256_extract_epi32(a[0], 0), std::memory_order_relaxed);
  return 12.0 * 32 * 2 * double(iters);
}
#endif

#if defined(__aarch64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target("arch=armv8.2-a+dotprod"))) double probe_sdot(int64_t iters) {
  int32x4_t a[12];
  for (int k = 0; k < 12; ++k) a[k] = vdupq_n_s32(k);
  const int8x16_t b = vdupq_n_s8(3), c = vdupq_n_s8(5);
  for (int64_t i = 0; i < iters; ++i)
#pragma GCC unroll 12
    for (int k = 0; k < 12; ++k) a[k] = vdotq_s32(a[k], b, c);
  for (int k = 1; k < 12; ++k) a[0] = vaddq_s32(a[0], a[k]);
  g_sink.store(vgetq_lane_s32(a[0], 0), std::memory_order_relaxed);
  return 12.0 * 16 * 2 * double(iters);
}

// smmla: a 2 x 8 by 8 x 2 int8 product, 32 multiply-adds per instruction.
__attribute__((target("arch=armv8.2-a+dotprod+i8mm"))) double probe_smmla(int64_t iters) {
  int32x4_t a[12];
  for (int k = 0; k < 12; ++k) a[k] = vdupq_n_s32(k);
  const int8x16_t b = vdupq_n_s8(3), c = vdupq_n_s8(5);
  for (int64_t i = 0; i < iters; ++i)
#pragma GCC unroll 12
    for (int k = 0; k < 12; ++k) a[k] = vmmlaq_s32(a[k], b, c);
  for (int k = 1; k < 12; ++k) a[0] = vaddq_s32(a[0], a[k]);
  g_sink.store(vgetq_lane_s32(a[0], 0), std::memory_order_relaxed);
  return 12.0 * 32 * 2 * double(iters);
}
#endif

double probe_portable(int64_t iters) {
  int32_t a[12];
  for (int k = 0; k < 12; ++k) a[k] = k;
  volatile int8_t vb = 3, vc = 5;
  const int32_t b = vb, c = vc;
  for (int64_t i = 0; i < iters; ++i)
    for (int k = 0; k < 12; ++k) a[k] += b * c + (a[k] >> 31);
  int32_t s = 0;
  for (int k = 0; k < 12; ++k) s += a[k];
  g_sink.store(s, std::memory_order_relaxed);
  return 12.0 * 2 * double(iters);
}

double probe(quant_isa isa, int64_t iters) {
  switch (isa) {
#if defined(__x86_64__)
    case quant_isa::AVX512_VNNI:
    case quant_isa::AVX512_GFNI: return probe_vnni(iters);
    case quant_isa::AVX2: return probe_avx2(iters);
#endif
#if defined(__aarch64__) && defined(__GNUC__) && !defined(__clang__)
    case quant_isa::NEON_DOTPROD: return probe_sdot(iters);
    case quant_isa::NEON_I8MM: return probe_smmla(iters);
#endif
    default: return probe_portable(iters * 16);
  }
}

}  // namespace

double measure_int8_peak(int n_threads) {
  const quant_isa isa = quant_isa_selected();
  const int64_t iters = 10'000'000;
  return best_rate_on_threads(n_threads, 3, [&](int) { return probe(isa, iters); }) / 1e9;
}

}  // namespace autoglm::cpu
