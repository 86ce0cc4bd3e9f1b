// kernels/cpu/quant_isa_avx512_gfni.cpp: the Q4_0 / Q5_0 decode kernels of quant_decode_x86.h compiled with GFNI
// added to AVX-512 VNNI (high nibbles in one affine byte transform), for the avx512-gfni path: the avx512-vnni
// table with these decode entries (quant_isa_avx512.cpp's table_avx512_gfni). A file of its own so that nothing
// else is ever compiled with GFNI enabled for CPUs that have VNNI without it (Cascade Lake).
#if defined(__x86_64__)

#include "kernels/cpu/quant_gemm.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni,gfni")
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "kernels/cpu/quant_decode_x86.h"

namespace autoglm::cpu::qgemm {

namespace {

// Q4_K keeps the VNNI table's kernel: its loop is bound by the multiply pipes (2 vpmaddubsw + 2 vpdpwssd per 32
// bytes), where vgf2p8affineqb also runs, so the affine split measured slower there (43.1 vs 42.2 ns per
// super-block of 8 rows, one Zen 4 core) than the shift and mask on the other pipes.
void fill(isa_table& tab) {
  tab.dk[size_t(wtype::Q4_0)][0] = &decode1_q32<wtype::Q4_0, true>;
  tab.dk[size_t(wtype::Q5_0)][0] = &decode1_q32<wtype::Q5_0, true>;
}

}  // namespace

}  // namespace autoglm::cpu::qgemm

#pragma GCC diagnostic pop
#pragma GCC pop_options

namespace autoglm::cpu::qgemm {

void fill_decode_gfni(isa_table& tab) { fill(tab); }

}  // namespace autoglm::cpu::qgemm

#endif
