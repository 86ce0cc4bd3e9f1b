// kernels/cpu/amx.h: Intel AMX tiles (Xeon Sapphire Rapids and later) for the CPU kernels (internal to kernels/cpu):
// whether this process may use them, and two implementations of the few tile instructions the kernels issue, so a
// kernel is written once as a template over them:
//  - amx_hw: the instructions themselves (inline assembly), run only where amx_bf16_usable() says so;
//  - amx_emulated: the same semantics on a thread-local register file in plain C++, so the tests exercise a kernel's
//    tile layouts, padding and loop structure on any machine (the dev and CI machines have no AMX; the real
//    instructions are tested on an AMX host by the kernel harness).
// Every tile is configured as 16 rows of 64 bytes: an A operand is 16 x 32 bf16, a B operand 16 rows of 16 bf16
// pairs (row k holds (b[2k][j], b[2k + 1][j]) for columns j), an accumulator 16 x 16 f32.
#pragma once

#include <cstdint>
#include <cstring>

#include "core/dtype.h"

namespace autoglm::cpu {

// AUTOGLM_CPU_AMX=1 asks for the tiles (opt-in: the AMX kernels have been tested only through amx_emulated so
// far), the CPU has AMX-TILE and AMX-BF16, the OS saves their state (XCR0) and granted this process the tile data
// permission (arch_prctl), and a child process ran the instructions with the expected results (a sandbox may report
// the features yet trap them). Checked once; force_portable_kernels turns it off.
bool amx_bf16_usable();

struct amx_tile_config {
  alignas(64) uint8_t bytes[64];
};
// Palette 1, all 8 tiles 16 rows x 64 bytes.
inline amx_tile_config amx_config_16x64() {
  amx_tile_config c{};
  c.bytes[0] = 1;
  for (int t = 0; t < 8; ++t) {
    const uint16_t colsb = 64;
    std::memcpy(c.bytes + 16 + 2 * t, &colsb, 2);
    c.bytes[48 + t] = 16;
  }
  return c;
}

#if defined(__x86_64__)
struct amx_hw {
  static void configure() {
    static const amx_tile_config cfg = amx_config_16x64();
    asm volatile("ldtilecfg %0" ::"m"(cfg.bytes));
  }
  static void release() { asm volatile("tilerelease" ::: "memory"); }
  template <int T>
  static void zero() {
    asm volatile("tilezero %%tmm%c0" ::"i"(T));
  }
  template <int T>
  static void load(const void* p, int64_t stride) {
    asm volatile("tileloadd (%0,%1,1), %%tmm%c2" ::"r"(p), "r"(stride), "i"(T) : "memory");
  }
  template <int T>
  static void store(void* p, int64_t stride) {
    asm volatile("tilestored %%tmm%c2, (%0,%1,1)" ::"r"(p), "r"(stride), "i"(T) : "memory");
  }
  // C += A . B: c[i][j] += sum_k a[i][2k] b[k][2j] + a[i][2k + 1] b[k][2j + 1].
  template <int C, int A, int B>
  static void dp_bf16() {
    asm volatile("tdpbf16ps %%tmm%c2, %%tmm%c1, %%tmm%c0" ::"i"(C), "i"(A), "i"(B));
  }
};
#endif

struct amx_emulated {
  struct tile {
    alignas(64) uint8_t b[16][64];
  };
  static tile* regs() {
    thread_local tile t[8];
    return t;
  }
  static void configure() {}
  static void release() {}
  template <int T>
  static void zero() {
    std::memset(regs()[T].b, 0, sizeof(tile));
  }
  template <int T>
  static void load(const void* p, int64_t stride) {
    for (int r = 0; r < 16; ++r) std::memcpy(regs()[T].b[r], static_cast<const uint8_t*>(p) + r * stride, 64);
  }
  template <int T>
  static void store(void* p, int64_t stride) {
    for (int r = 0; r < 16; ++r) std::memcpy(static_cast<uint8_t*>(p) + r * stride, regs()[T].b[r], 64);
  }
  template <int C, int A, int B>
  static void dp_bf16() {
    tile& c = regs()[C];
    const tile &a = regs()[A], &b = regs()[B];
    for (int i = 0; i < 16; ++i)
      for (int j = 0; j < 16; ++j) {
        float acc;
        std::memcpy(&acc, c.b[i] + 4 * j, 4);
        for (int k = 0; k < 16; ++k) {
          uint16_t a0, a1, b0, b1;
          std::memcpy(&a0, a.b[i] + 4 * k, 2);
          std::memcpy(&a1, a.b[i] + 4 * k + 2, 2);
          std::memcpy(&b0, b.b[k] + 4 * j, 2);
          std::memcpy(&b1, b.b[k] + 4 * j + 2, 2);
          acc += bf16_to_f32(a0) * bf16_to_f32(b0) + bf16_to_f32(a1) * bf16_to_f32(b1);
        }
        std::memcpy(c.b[i] + 4 * j, &acc, 4);
      }
  }
};

}  // namespace autoglm::cpu
