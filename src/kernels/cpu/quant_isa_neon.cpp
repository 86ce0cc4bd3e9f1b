// kernels/cpu/quant_isa_neon.cpp: the quantized LINEAR micro-kernels for aarch64 with the dot-product extension
// (ARMv8.2 dotprod: every phone core since Cortex-A55/A75, Apple, Graviton 2+): sdot sums 4 signed byte products
// into each int32 lane, which is exactly the lane rule of quant_microkernel.h, so the 8 lanes are two int32x4 and
// results equal the x86 and portable paths bit for bit. The vector operations are those of quant_isa_neon.h (v_neon),
// compiled here for this ISA. Chosen at run time (HWCAP_ASIMDDP); without dotprod the portable path runs.
#if defined(__aarch64__)

#include <arm_neon.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>

#include "core/dtype.h"
#include "core/quant_blocks.h"
#include "kernels/cpu/quant_gemm.h"

#pragma GCC push_options
#pragma GCC target("arch=armv8.2-a+dotprod")

#include "kernels/cpu/quant_isa_neon.h"
#include "kernels/cpu/quant_microkernel.h"

namespace autoglm::cpu::qgemm {

namespace {

// Compiled for this ISA, so called only once the CPU is known to have it (the accessor below is not).
isa_table build_table() { return make_table<v_neon>("neon-dotprod", 4); }

}  // namespace

}  // namespace autoglm::cpu::qgemm

#pragma GCC pop_options

namespace autoglm::cpu::qgemm {

const isa_table* table_neon_dotprod() {
  static const isa_table t = build_table();
  return &t;
}

// Called, like the dotprod table, only once the CPU is known to have both extensions.
const isa_table* table_neon_i8mm() {
  static const isa_table t = [] {
    isa_table tab = *table_neon_dotprod();
    tab.name = "neon-i8mm";
    fill_prefill_i8mm(tab);
    return tab;
  }();
  return &t;
}

}  // namespace autoglm::cpu::qgemm

#else

#include "kernels/cpu/quant_gemm.h"

namespace autoglm::cpu::qgemm {
const isa_table* table_neon_dotprod() { return nullptr; }
}  // namespace autoglm::cpu::qgemm

#endif
