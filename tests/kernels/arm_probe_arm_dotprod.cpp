// tests/kernels/arm_probe_arm_dotprod.cpp: an sdot kernel written without any attribute, so it compiles only
// when cmake/autoglm_arm.cmake gives this *_arm_dotprod.cpp file -march=armv8.2-a+dotprod (aarch64 builds; other
// processors leave the file out). cpu_features_test.cpp runs it where dotprod is reported.
#include <arm_neon.h>

#include <cstdint>

int32_t arm_probe_sdot_file(const int8_t* a, const int8_t* b, int n) {
  int32x4_t acc = vdupq_n_s32(0);
  for (int i = 0; i < n; i += 16) acc = vdotq_s32(acc, vld1q_s8(a + i), vld1q_s8(b + i));
  return vaddvq_s32(acc);
}
