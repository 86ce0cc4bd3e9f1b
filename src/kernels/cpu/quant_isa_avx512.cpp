// kernels/cpu/quant_isa_avx512.cpp: the quantized LINEAR micro-kernels for x86-64 with AVX-512 VNNI (Ice Lake,
// Sapphire Rapids, Zen 4 and later) on 256-bit vectors: vpdpbusd, and 32 registers for the register tiles
// (EVEX); the vector operations are those of quant_isa_x86.h (v_x86<true>), compiled here for this ISA.
#if defined(__x86_64__)

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>

#include "core/dtype.h"
#include "core/quant_blocks.h"
#include "kernels/cpu/quant_gemm.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")
// GCC 12's AVX-512 headers build broadcasts and casts on _mm512_undefined_*(), which -Wmaybe-uninitialized flags.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "kernels/cpu/quant_isa_x86.h"
#include "kernels/cpu/quant_microkernel.h"
#include "kernels/cpu/quant_decode_x86.h"

namespace autoglm::cpu::qgemm {

namespace {

using V = v_x86<true>;

// Compiled for this ISA, so called only once the CPU is known to have it (the accessor below is not).
isa_table build_table() {
  isa_table tab = make_table<V>("avx512-vnni", 6);
  tab.dk[size_t(wtype::Q8_0)][0] = &decode1_q32<wtype::Q8_0, false>;
  tab.dk[size_t(wtype::Q4_0)][0] = &decode1_q32<wtype::Q4_0, false>;
  tab.dk[size_t(wtype::Q4_K)][0] = &decode1_q4k;
  tab.dk[size_t(wtype::Q5_0)][0] = &decode1_q32<wtype::Q5_0, false>;
  fill_wide_avx512(tab);
  return tab;
}

}  // namespace

}  // namespace autoglm::cpu::qgemm

#pragma GCC diagnostic pop
#pragma GCC pop_options

namespace autoglm::cpu::qgemm {

const isa_table* table_avx512_vnni() {
  static const isa_table t = build_table();
  return &t;
}

const isa_table* table_avx512_gfni() {
  static const isa_table t = [] {
    isa_table tab = build_table();
    tab.name = "avx512-gfni";
    fill_decode_gfni(tab);
    return tab;
  }();
  return &t;
}

}  // namespace autoglm::cpu::qgemm

#else

#include "kernels/cpu/quant_gemm.h"

namespace autoglm::cpu::qgemm {
const isa_table* table_avx512_vnni() { return nullptr; }
const isa_table* table_avx512_gfni() { return nullptr; }
}  // namespace autoglm::cpu::qgemm

#endif
