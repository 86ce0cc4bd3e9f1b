// tests/kernels/arm_probe_arm_i8mm.cpp: an smmla kernel written without any attribute, so it compiles only when
// cmake/autoglm_arm.cmake gives this *_arm_i8mm.cpp file -march=armv8.2-a+dotprod+i8mm, as it does the quantized
// kernels of src/kernels/cpu/quant_isa_neon_arm_i8mm.cpp (aarch64 builds; other processors leave the file out).
// cpu_features_test.cpp runs it where i8mm is reported and expects SIGILL where it is not.
#include <arm_neon.h>

#include <cstdint>

// c[2i + j] = the dot product of a's row i (a[8i .. 8i+8)) with b's row j (b[8j .. 8j+8)).
void arm_probe_smmla_file(const int8_t* a, const int8_t* b, int32_t* c) {
  vst1q_s32(c, vmmlaq_s32(vdupq_n_s32(0), vld1q_s8(a), vld1q_s8(b)));
}
