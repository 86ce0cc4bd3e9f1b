// tests/kernels/cpu_features_test.cpp: AArch64 extension detection (kernels/cpu/cpu_features_arm.h) checked
// against the instructions themselves. Every extension the detection reports runs a probe compiled for it (with
// AUTOGLM_ARM_TARGET, and sdot and smmla also through the per-file flags of cmake/autoglm_arm.cmake) and must give the
// scalar answer; every extension it denies must fault with SIGILL when executed anyway. So detection is neither
// optimistic (a crash on the user's phone) nor pessimistic (a fast path never taken). tests/arm runs this under
// qemu -cpu max (all present) and -cpu cortex-a53 (ARMv8.0: all absent). On x86: the XCR0 read behind the AVX-512
// and AMX checks.
#include <gtest/gtest.h>

#include <csignal>
#include <cstdint>
#include <cstdlib>

#include "kernels/cpu/convert.h"
#include "kernels/cpu/cpu_features_arm.h"

#if defined(__aarch64__)
#include <arm_neon.h>

#include <cstring>

// arm_probe_arm_dotprod.cpp (compiled with -march=armv8.2-a+dotprod): sum of a[i]*b[i], n a multiple of 16.
int32_t arm_probe_sdot_file(const int8_t* a, const int8_t* b, int n);
// arm_probe_arm_i8mm.cpp (-march=armv8.2-a+dotprod+i8mm): c[2i + j] = a's row i . b's row j, rows of 8 bytes.
void arm_probe_smmla_file(const int8_t* a, const int8_t* b, int32_t* c);
#endif

using namespace autoglm::cpu;

namespace {

#if defined(__aarch64__)
int8_t g_a[32], g_b[32];
volatile int64_t g_sink;

void fill() {
  for (int i = 0; i < 32; ++i) {
    g_a[i] = int8_t((i * 37) % 255 - 127);  // spans -127..127, so signed products (sdot, not udot) matter
    g_b[i] = int8_t(100 - i * 7);
  }
}

int64_t dot_ref(int n) {
  int64_t s = 0;
  for (int i = 0; i < n; ++i) s += int64_t(g_a[i]) * g_b[i];
  return s;
}

AUTOGLM_ARM_TARGET("+dotprod") int64_t probe_sdot() {
  int32x4_t acc = vdupq_n_s32(0);
  acc = vdotq_s32(acc, vld1q_s8(g_a), vld1q_s8(g_b));
  acc = vdotq_s32(acc, vld1q_s8(g_a + 16), vld1q_s8(g_b + 16));
  return vaddvq_s32(acc);
}

// smmla: the 2x2 product of A (2x8 rows, g_a[0..16)) and B^T (B 2x8 rows, g_b[0..16)), lanes c00 c01 c10 c11.
AUTOGLM_ARM_TARGET("+dotprod+i8mm") int64_t probe_smmla() {
  int32x4_t c = vmmlaq_s32(vdupq_n_s32(0), vld1q_s8(g_a), vld1q_s8(g_b));
  return int64_t(vgetq_lane_s32(c, 0)) + 3 * vgetq_lane_s32(c, 1) + 5 * vgetq_lane_s32(c, 2) + 7 * vgetq_lane_s32(c, 3);
}

int64_t smmla_ref() {
  int64_t c[2][2] = {};
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j)
      for (int k = 0; k < 8; ++k) c[i][j] += int64_t(g_a[i * 8 + k]) * g_b[j * 8 + k];
  return c[0][0] + 3 * c[0][1] + 5 * c[1][0] + 7 * c[1][1];
}

// Small integers are exact in fp16 and bf16, so the probes compare exactly: sum over 8 lanes of a*b.
int64_t small_dot_ref() {
  int64_t s = 0;
  for (int i = 0; i < 8; ++i) s += int64_t(g_a[i] / 16) * (g_b[i] / 16);
  return s;
}

AUTOGLM_ARM_TARGET("+fp16") int64_t probe_fp16() {
  float16_t a[8], b[8];
  for (int i = 0; i < 8; ++i) {
    a[i] = float16_t(g_a[i] / 16);
    b[i] = float16_t(g_b[i] / 16);
  }
  float16x8_t p = vfmaq_f16(vdupq_n_f16(0), vld1q_f16(a), vld1q_f16(b));  // FEAT_FP16 vector arithmetic
  float32x4_t s = vaddq_f32(vcvt_f32_f16(vget_low_f16(p)), vcvt_f32_f16(vget_high_f16(p)));
  return int64_t(vaddvq_f32(s));
}

uint16_t bf16_of_small_int(int v) {
  const float f = float(v);
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return uint16_t(u >> 16);  // exact: small integers have no bits below the top 16
}

AUTOGLM_ARM_TARGET("+bf16") int64_t probe_bfdot() {
  uint16_t a[8], b[8];
  for (int i = 0; i < 8; ++i) {
    a[i] = bf16_of_small_int(g_a[i] / 16);
    b[i] = bf16_of_small_int(g_b[i] / 16);
  }
  bfloat16x8_t va, vb;
  std::memcpy(&va, a, 16);
  std::memcpy(&vb, b, 16);
  return int64_t(vaddvq_f32(vbfdotq_f32(vdupq_n_f32(0), va, vb)));
}

// The probe must give the scalar answer when the extension is reported, and fault when it is not.
template <class Probe>
void check(bool reported, Probe probe, int64_t expect, const char* name) {
  if (reported) {
    EXPECT_EQ(probe(), expect) << name << " reported present but computes wrongly";
  } else {
    EXPECT_EXIT((g_sink = probe(), std::exit(0)), ::testing::KilledBySignal(SIGILL), "")
        << name << " reported absent but the CPU executes it";
  }
}
#endif

}  // namespace

#if defined(__aarch64__)
TEST(arm_features, detection_matches_what_the_cpu_executes) {
  fill();
  const arm_features& f = arm_cpu_features();
  std::printf("[arm] detected: %s\n", arm_features_string(f).c_str());
  EXPECT_TRUE(f.neon) << "AdvSIMD is part of every AArch64 core";
  check(f.dotprod, probe_sdot, dot_ref(32), "dotprod (attribute)");
  check(f.dotprod, [] { return int64_t(arm_probe_sdot_file(g_a, g_b, 32)); }, dot_ref(32), "dotprod (per-file flags)");
  check(f.i8mm, probe_smmla, smmla_ref(), "i8mm (attribute)");
  check(f.i8mm, [] {
    int32_t c[4];
    arm_probe_smmla_file(g_a, g_b, c);
    return int64_t(c[0]) + 3 * c[1] + 5 * c[2] + 7 * c[3];
  }, smmla_ref(), "i8mm (per-file flags)");
  check(f.fp16, probe_fp16, small_dot_ref(), "fp16");
  check(f.bf16, probe_bfdot, small_dot_ref(), "bf16");
}
#else
TEST(arm_features, nothing_is_reported_off_aarch64) {
  EXPECT_EQ(arm_features_string(arm_cpu_features()), "none");
  EXPECT_EQ(arm_features_string(arm_usable_features()), "none");
  EXPECT_FALSE(cpu_has_neon());
}
#endif

#if defined(__x86_64__)
// XCR0 as the AMX and AVX-512 checks read it: where AVX2 runs, the OS must save the SSE and AVX (ymm) state, and
// x87 state (bit 0) is always on when XSAVE is.
TEST(x86_features, saved_xstate_covers_what_runs) {
  const uint64_t xcr0 = os_saved_xstate();
  if (cpu_has_avx2()) {
    EXPECT_EQ(xcr0 & 0x7, 0x7u) << std::hex << xcr0;
  }
  if (xcr0 != 0) {
    EXPECT_TRUE(xcr0 & 1u);
  }
}
#endif

TEST(arm_features, limit_and_portable_mode_hide_extensions) {
  const arm_features& cpu = arm_cpu_features();
  reset_arm_feature_limit();
  EXPECT_EQ(cpu_has_neon(), cpu.neon);
  EXPECT_EQ(cpu_has_neon_fp16(), cpu.fp16);
  EXPECT_EQ(cpu_has_neon_dotprod(), cpu.dotprod);
  EXPECT_EQ(cpu_has_neon_i8mm(), cpu.i8mm && cpu.dotprod);
  EXPECT_EQ(cpu_has_neon_bf16(), cpu.bf16);

  arm_features no_dotprod{true, true, false, true, true, true};
  limit_arm_features(no_dotprod);
  EXPECT_FALSE(cpu_has_neon_dotprod());
  EXPECT_FALSE(cpu_has_neon_i8mm()) << "i8mm kernels use sdot too";
  EXPECT_EQ(cpu_has_neon_fp16(), cpu.fp16);
  EXPECT_EQ(cpu_has_neon(), cpu.neon);

  arm_features only_sve;
  only_sve.sve = true;
  limit_arm_features(only_sve);  // neon hidden: every extension kernel needs it
  EXPECT_EQ(arm_features_string(arm_usable_features()), cpu.sve ? "sve" : "none");
  reset_arm_feature_limit();
  EXPECT_EQ(cpu_has_neon_dotprod(), cpu.dotprod);

  force_portable_kernels(true);
  EXPECT_EQ(arm_features_string(arm_usable_features()), "none");
  force_portable_kernels(false);
  EXPECT_EQ(cpu_has_neon(), cpu.neon);
}

TEST(arm_features, names) {
  EXPECT_EQ(arm_features_string(arm_features{}), "none");
  arm_features f;
  f.neon = f.dotprod = f.bf16 = true;
  EXPECT_EQ(arm_features_string(f), "neon dotprod bf16");
}
