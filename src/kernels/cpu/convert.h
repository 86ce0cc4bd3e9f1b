// kernels/cpu/convert.h: element conversion of weight rows to fp32 (the CPU kernels keep weights in their file
// dtype and convert on the fly).
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace autoglm::cpu {

// dst[0..n) = float(src[0..n)) for F32, F16 or BF16 source.
void convert_to_f32(dtype type, const void* src, float* dst, int64_t n);
// Scalar reference of the same.
void convert_to_f32_ref(dtype type, const void* src, float* dst, int64_t n);

// Whether the running CPU has AVX2+FMA+F16C (the fast x86 paths).
bool cpu_has_avx2();

}  // namespace autoglm::cpu
