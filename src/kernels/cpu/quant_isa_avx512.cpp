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

#include "kernels/cpu/quant_isa_x86.h"
#include "kernels/cpu/quant_microkernel.h"

namespace autoglm::cpu::qgemm {

namespace {

// Compiled for this ISA, so called only once the CPU is known to have it (the accessor below is not).
isa_table build_table() { return make_table<v_x86<true>>("avx512-vnni", 6); }

}  // namespace

}  // namespace autoglm::cpu::qgemm

#pragma GCC pop_options

namespace autoglm::cpu::qgemm {

const isa_table* table_avx512_vnni() {
  static const isa_table t = build_table();
  return &t;
}

}  // namespace autoglm::cpu::qgemm

#else

#include "kernels/cpu/quant_gemm.h"

namespace autoglm::cpu::qgemm {
const isa_table* table_avx512_vnni() { return nullptr; }
}  // namespace autoglm::cpu::qgemm

#endif
