// kernels/cpu/quant_ceiling.h: the ceiling the quantized LINEAR kernels' prefill is reported against (the harness's
// --perf mode): peak int8 multiply-add throughput of the instruction the selected path uses.
#pragma once

namespace autoglm::cpu {

// Int8 operations per second in G (a multiply and its add count 2, as for GFLOP/s): n_threads threads each run 12
// independent chains of the quantized kernels' dot-product instruction out of registers: vpdpbusd on 256-bit
// vectors (AVX-512 VNNI), vpmaddubsw + vpmaddwd + vpaddd (AVX2), sdot (NEON dotprod), smmla (NEON i8mm), or a
// scalar loop (portable), whichever quant_isa_selected() is.
double measure_int8_peak(int n_threads);

}  // namespace autoglm::cpu
