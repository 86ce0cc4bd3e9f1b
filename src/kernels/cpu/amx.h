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

// The CPU has AMX-TILE and AMX-BF16, the OS saves their state (XCR0) and granted this process the tile data
// permission (arch_prctl), a child process ran the instructions with the expected results (a sandbox may report the
// features yet trap them), and AUTOGLM_CPU_AMX is not 0 / off / false / no (the tiles are on by default where they
// work). Checked once; force_portable_kernels turns it off. The kernels that use them (the bf16 GEMM, gemm_amx.h;
// dense attention, attention_amx.h) round their inputs to bf16, so they also require the ROUNDED precision
// (gemm_bf16.h): EXACT keeps the F32 arithmetic.
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

// The 2 x 2 block both AMX kernels run: accumulator tiles 4-7 (rows 0-15 / 16-31 of A's 32 rows x two 16-column B
// tiles), zeroed, one step (A tiles at a0 and a1 with byte stride as, B tiles at b0 and b1 packed 64 bytes a row),
// stored to c (float stride cs): tile 4 = A0 B0 at c, 5 = A0 B1 at c + 16, 6 = A1 B0 at c + 16 cs, 7 = A1 B1.
template <class X>
void amx_zero_2x2() {
  X::template zero<4>();
  X::template zero<5>();
  X::template zero<6>();
  X::template zero<7>();
}
template <class X>
void amx_step_2x2(const void* a0, const void* a1, int64_t as, const void* b0, const void* b1) {
  X::template load<0>(a0, as);
  X::template load<1>(a1, as);
  X::template load<2>(b0, 64);
  X::template load<3>(b1, 64);
  X::template dp_bf16<4, 0, 2>();
  X::template dp_bf16<5, 0, 3>();
  X::template dp_bf16<6, 1, 2>();
  X::template dp_bf16<7, 1, 3>();
}
template <class X>
void amx_store_2x2(float* c, int64_t cs) {
  X::template store<4>(c, cs * 4);
  X::template store<5>(c + 16, cs * 4);
  X::template store<6>(c + 16 * cs, cs * 4);
  X::template store<7>(c + 16 * cs + 16, cs * 4);
}

}  // namespace autoglm::cpu
