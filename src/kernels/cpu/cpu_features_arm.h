// kernels/cpu/cpu_features_arm.h: which AArch64 SIMD extensions the running CPU has (read once from the kernel's
// AT_HWCAP/AT_HWCAP2), and the two ways a kernel file carries ARMv8.2+ code in a binary that must still run on
// ARMv8.0 cores (Cortex-A53, the little core of most phones): a kernel compiled for an extension may only be
// called after the matching cpu_has_neon_*() says yes, exactly like the AVX2 paths behind cpu_has_avx2().
//
//  1. Per function (GCC; the x86 kernels' style):
//       AUTOGLM_ARM_TARGET("+dotprod") void dot_q8_sdot(...) { ... vdotq_s32 ... }
//     The function is compiled for armv8.2-a+<ext> (GCC 12's arm_neon.h declares the extension intrinsics for
//     that base, so nothing lower compiles). That is safe: every extension here is optional from v8.2 on, so a core
//     that reports one implements v8.2. Clang before 16 (Android NDK r25 and older) does not expose extension
//     intrinsics inside such functions: use 2 there.
//  2. Per file (GCC and any clang): name the file <name>_arm_<ext>.cpp with ext in dotprod, i8mm, fp16, bf16;
//     cmake/autoglm_arm.cmake compiles it with -march=armv8.2-a+<ext> on aarch64 and leaves it out elsewhere.
//     Such a file holds kernels only, and includes nothing that instantiates library code (<arm_neon.h>,
//     <cstdint>, <cstddef> and plain declarations): an inline function emitted there (std::vector, shared_ptr,
//     atomics) is compiled with v8.1 LSE atomics, and the linker may keep that copy for the baseline callers too,
//     which an ARMv8.0 core (Cortex-A53) cannot run. tests/arm/run_arm_tests.sh fails on weak symbols there.
//  Never -march=armv8.2-a (or higher) for a whole target, for the same reason.
#pragma once

#include <string>

namespace autoglm::cpu {

// Extensions a kernel may dispatch on. `neon` is AdvSIMD, present on every AArch64 core.
struct arm_features {
  bool neon = false;
  bool fp16 = false;     // FEAT_FP16 vector half-precision arithmetic (asimdhp: vfmaq_f16)
  bool dotprod = false;  // FEAT_DotProd sdot/udot (vdotq_s32); optional in v8.2, mandatory from v8.4
  bool i8mm = false;     // FEAT_I8MM smmla/ummla/usdot (vmmlaq_s32); v8.6
  bool bf16 = false;     // FEAT_BF16 bfdot/bfmmla/bfcvt (vbfdotq_f32); v8.6
  bool sve = false;      // SVE, reported only: no SVE kernels
};

// What the CPU has, detected once (all false off AArch64; neon only on AArch64 systems other than Linux/Android,
// where detection is not implemented).
const arm_features& arm_cpu_features();

// What kernels may use: the CPU's features, minus those hidden by limit_arm_features, and none at all while
// force_portable_kernels (convert.h) is on. i8mm counts only with dotprod (i8mm kernels use sdot for tails).
arm_features arm_usable_features();
bool cpu_has_neon();
bool cpu_has_neon_fp16();
bool cpu_has_neon_dotprod();
bool cpu_has_neon_i8mm();
bool cpu_has_neon_bf16();

// Hides extensions the CPU has, so the harness can run each dispatched path of one binary on one machine (e.g.
// dotprod without i8mm on a v8.6 core). Fields set to false are hidden; the default allows everything. Like
// force_portable_kernels, not meant to be flipped while kernels run on other threads.
void limit_arm_features(const arm_features& allowed);
void reset_arm_feature_limit();

// "neon fp16 dotprod i8mm bf16 sve" for the ones set, "none" if none (logs, bench headers).
std::string arm_features_string(const arm_features& f);

}  // namespace autoglm::cpu

// Per-function extension attribute (use 1 above); expands to nothing off AArch64 and on clang, whose kernels
// take use 2 instead.
#if defined(__aarch64__) && defined(__GNUC__) && !defined(__clang__)
#define AUTOGLM_ARM_TARGET(ext) __attribute__((target("arch=armv8.2-a" ext)))
#else
#define AUTOGLM_ARM_TARGET(ext)
#endif
