// kernels/cpu/amx.cpp: whether this process may use AMX tiles (amx.h).
#include "kernels/cpu/amx.h"

#include <cstdlib>

#include "kernels/cpu/convert.h"
#include "kernels/cpu/kernel_util.h"

#if defined(__x86_64__) && defined(__linux__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

namespace autoglm::cpu {

namespace {

#if defined(__x86_64__) && defined(__linux__)
bool cpu_reports_amx_bf16() {
  if (__get_cpuid_max(0, nullptr) < 7) return false;
  unsigned a, b, c, d;
  __cpuid_count(7, 0, a, b, c, d);
  const bool amx_bf16 = (d >> 22) & 1u, amx_tile = (d >> 24) & 1u;
  if (!amx_bf16 || !amx_tile) return false;
  return ((os_saved_xstate() >> 17) & 3u) == 3u;  // XTILECFG and XTILEDATA state enabled by the OS
}

// Linux 5.16+: a process asks for the tile data state before its first tile instruction (else SIGILL).
bool request_tile_permission() {
  constexpr long arch_req_xcomp_perm = 0x1023, xfeature_xtiledata = 18;
  return syscall(SYS_arch_prctl, arch_req_xcomp_perm, xfeature_xtiledata) == 0;
}

// Runs the instructions the kernels use in a child process and checks their semantics: a sandbox or hypervisor that
// reports the features but traps them kills the child, not this process, and an operand order or stride mistake
// gives other numbers. Tile A (16 x 32 bf16) and B (16 rows of 16 pairs) hold small integers, loaded with strides of
// 128 and 192 bytes; C = A . B (exact in f32 in any order) is stored with a stride of 96 bytes and compared with the
// sum written out here. The child takes no locks (no allocation, no thread_local) and leaves with _exit.
bool tiles_run_in_child() {
  const pid_t pid = fork();
  if (pid < 0) return false;
  if (pid == 0) {
    alignas(64) uint16_t a[16 * 64] = {}, b[16 * 96] = {};
    alignas(64) float c[16 * 24] = {};
    for (int i = 0; i < 16; ++i)
      for (int k = 0; k < 32; ++k) a[i * 64 + k] = f32_to_bf16(float((i + 2 * k) % 5 - 2));
    for (int k = 0; k < 16; ++k)
      for (int j = 0; j < 32; ++j) b[k * 96 + j] = f32_to_bf16(float((3 * k + j) % 7 - 3));
    amx_hw::configure();
    amx_hw::zero<5>();
    amx_hw::load<1>(a, 128);
    amx_hw::load<6>(b, 192);
    amx_hw::dp_bf16<5, 1, 6>();
    amx_hw::store<5>(c, 96);
    amx_hw::release();
    for (int i = 0; i < 16; ++i)
      for (int j = 0; j < 16; ++j) {
        float want = 0.0f;
        for (int k = 0; k < 16; ++k)
          want += bf16_to_f32(a[i * 64 + 2 * k]) * bf16_to_f32(b[k * 96 + 2 * j]) +
                  bf16_to_f32(a[i * 64 + 2 * k + 1]) * bf16_to_f32(b[k * 96 + 2 * j + 1]);
        if (c[i * 24 + j] != want) _exit(3);
      }
    _exit(0);
  }
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return false;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}
#endif

bool detect() {
  // On by default since the kernels were measured on AMX hardware (2026-12-05 attention, 2026-12-06 the GEMM);
  // AUTOGLM_CPU_AMX=0 (or off / false / no) keeps the AVX-512 paths.
  if (env_value_is_off(std::getenv("AUTOGLM_CPU_AMX"))) return false;
#if defined(__x86_64__) && defined(__linux__)
  return cpu_reports_amx_bf16() && request_tile_permission() && tiles_run_in_child();
#else
  return false;
#endif
}

}  // namespace

bool amx_bf16_usable() {
  static const bool usable = detect();
  return usable && !portable_kernels_forced();
}

}  // namespace autoglm::cpu
