// kernels/cpu/copy.h: data movement kernels: COPY (element-wise over any strides, up to 4-D, converting between
// F32, F16, BF16 and I32: permutes such as the vision 2x2 merge, dtype conversion) and EMBEDDING (a row gather
// from an F32/F16/BF16 table into F32 rows).
#pragma once

#include "core/kernel_registry.h"

namespace autoglm::cpu {

// dst = src element by element in row-major order of each (shapes may differ when the element counts match).
// Float -> I32 truncates toward zero, saturating; NaN becomes 0. Float -> F16/BF16 rounds to nearest even.
void copy_kernel(const kernel_context& kc, const tensor& src, tensor& dst);
// out[i] = F32(table[ids[i]]); every id must be a row of the table (AG_CHECK).
void embedding_kernel(const kernel_context& kc, const tensor& table, const tensor& ids, tensor& out);

}  // namespace autoglm::cpu
