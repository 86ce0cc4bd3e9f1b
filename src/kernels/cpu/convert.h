// kernels/cpu/convert.h: element conversion of weight rows to fp32 (the CPU kernels keep weights in their file
// dtype and convert on the fly), and the run-time ISA switch every CPU kernel consults.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace autoglm::cpu {

// dst[0..n) = float(src[0..n)) for F32, F16 or BF16 source.
void convert_to_f32(dtype type, const void* src, float* dst, int64_t n);
// Scalar reference of the same.
void convert_to_f32_ref(dtype type, const void* src, float* dst, int64_t n);
// dst[0..n) = src[0..n) rounded to F32, F16 or BF16 (round to nearest even, as torch's .to()).
void convert_from_f32(dtype type, const float* src, void* dst, int64_t n);

// Whether the fast x86 paths may run: the CPU has AVX2+FMA+F16C and the portable paths are not forced.
bool cpu_has_avx2();
#if defined(__x86_64__)
// XCR0: the register state components the OS saves across context switches (0 where it has not enabled XSAVE). A
// feature's registers are usable only where its bits are set (AVX-512: 0xE6; AMX tiles: bits 17-18).
uint64_t os_saved_xstate();
#endif
// Forces every CPU kernel onto its portable (plain C++) path, so tests cover the fallback on an AVX2 machine.
// Not meant to be flipped while kernels run on other threads.
void force_portable_kernels(bool on);
bool portable_kernels_forced();

}  // namespace autoglm::cpu
