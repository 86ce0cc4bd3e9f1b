// kernels/cpu/cpu_features_arm.cpp: AArch64 extension detection from the auxiliary vector (see
// cpu_features_arm.h). The kernel fills AT_HWCAP/AT_HWCAP2 from the ID registers of every core, so the bits are
// what all cores of a big.LITTLE phone can run, which is what a kernel that migrates between cores needs.
#include "kernels/cpu/cpu_features_arm.h"

#include <atomic>

#include "kernels/cpu/convert.h"

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

namespace autoglm::cpu {

namespace {

#if defined(__aarch64__) && defined(__linux__)
// Bit numbers of the Linux arm64 ABI (arch/arm64/include/uapi/asm/hwcap.h), spelled out so that older kernel
// headers (and the NDK's) need not define the newer HWCAP2 names.
constexpr unsigned long k_hwcap_asimd = 1ul << 1;
constexpr unsigned long k_hwcap_asimdhp = 1ul << 10;
constexpr unsigned long k_hwcap_asimddp = 1ul << 20;
constexpr unsigned long k_hwcap_sve = 1ul << 22;
constexpr unsigned long k_hwcap2_i8mm = 1ul << 13;
constexpr unsigned long k_hwcap2_bf16 = 1ul << 14;
#endif

arm_features detect() {
  arm_features f;
#if defined(__aarch64__) && defined(__linux__)
  const unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
  f.neon = (hw & k_hwcap_asimd) != 0;
  f.fp16 = (hw & k_hwcap_asimdhp) != 0;
  f.dotprod = (hw & k_hwcap_asimddp) != 0;
  f.sve = (hw & k_hwcap_sve) != 0;
  f.i8mm = (hw2 & k_hwcap2_i8mm) != 0;
  f.bf16 = (hw2 & k_hwcap2_bf16) != 0;
#elif defined(__aarch64__)
  f.neon = true;  // AdvSIMD is part of the AArch64 base; the extensions are not probed here
#endif
  return f;
}

// The limit as one bit per field, so readers on kernel threads never see a half-written struct.
enum : unsigned {
  k_bit_neon = 1, k_bit_fp16 = 2, k_bit_dotprod = 4, k_bit_i8mm = 8, k_bit_bf16 = 16, k_bit_sve = 32, k_bit_all = 63
};
std::atomic<unsigned> g_allowed{k_bit_all};

unsigned to_bits(const arm_features& f) {
  return (f.neon ? k_bit_neon : 0u) | (f.fp16 ? k_bit_fp16 : 0u) | (f.dotprod ? k_bit_dotprod : 0u) |
         (f.i8mm ? k_bit_i8mm : 0u) | (f.bf16 ? k_bit_bf16 : 0u) | (f.sve ? k_bit_sve : 0u);
}

}  // namespace

const arm_features& arm_cpu_features() {
  static const arm_features f = detect();
  return f;
}

arm_features arm_usable_features() {
  if (portable_kernels_forced()) return {};
  const arm_features& cpu = arm_cpu_features();
  const unsigned allowed = g_allowed.load(std::memory_order_relaxed);
  arm_features f;
  f.neon = cpu.neon && (allowed & k_bit_neon);
  // Every extension kernel also uses baseline NEON: hiding neon hides them all.
  f.fp16 = f.neon && cpu.fp16 && (allowed & k_bit_fp16);
  f.dotprod = f.neon && cpu.dotprod && (allowed & k_bit_dotprod);
  f.i8mm = f.dotprod && cpu.i8mm && (allowed & k_bit_i8mm);
  f.bf16 = f.neon && cpu.bf16 && (allowed & k_bit_bf16);
  f.sve = cpu.sve && (allowed & k_bit_sve);
  return f;
}

bool cpu_has_neon() { return arm_usable_features().neon; }
bool cpu_has_neon_fp16() { return arm_usable_features().fp16; }
bool cpu_has_neon_dotprod() { return arm_usable_features().dotprod; }
bool cpu_has_neon_i8mm() { return arm_usable_features().i8mm; }
bool cpu_has_neon_bf16() { return arm_usable_features().bf16; }

void limit_arm_features(const arm_features& allowed) { g_allowed.store(to_bits(allowed)); }
void reset_arm_feature_limit() { g_allowed.store(k_bit_all); }

std::string arm_features_string(const arm_features& f) {
  std::string s;
  auto add = [&](bool on, const char* name) {
    if (!on) return;
    if (!s.empty()) s += ' ';
    s += name;
  };
  add(f.neon, "neon");
  add(f.fp16, "fp16");
  add(f.dotprod, "dotprod");
  add(f.i8mm, "i8mm");
  add(f.bf16, "bf16");
  add(f.sve, "sve");
  return s.empty() ? "none" : s;
}

}  // namespace autoglm::cpu
