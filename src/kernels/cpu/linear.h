// kernels/cpu/linear.h: y = x · Wᵀ + b with W kept in its storage dtype (F32/F16/BF16), fp32 accumulation.
// Decode (1-2 rows) streams W once, converting in registers: a memory-bandwidth kernel. Prefill runs the packed,
// cache-blocked GEMM of gemm.h (W converted to fp32 once per panel, register tiles): a compute-bound kernel.
// Every output is summed in the same order whichever path runs (8 lanes over k rounded down to 8, lane sum,
// tail, bias; gemm.h), so results do not depend on the number of rows, the ISA or the threads.
#pragma once

#include <cstdint>

#include "core/kernel_registry.h"
#include "core/thread_pool.h"
#include "core/weight_view.h"

namespace autoglm::cpu {

// The registered LINEAR kernel (F32, F16 and BF16 weights): x [m, k] F32, y [m, n] F32 (row strides free),
// w.weight [n, k] rows addressed through its row stride, w.bias F32 [n] or empty.
void linear_kernel(const kernel_context& kc, const tensor& x, const linear_weight& w, tensor& y);

// Legacy entry point (model code until it runs over ops): x [m, w.cols] contiguous fp32; bias [w.rows] or
// nullptr; y [m, w.rows] with row stride y_stride (default w.rows). pool null = the default pool.
void linear(const float* x, int64_t m, const weight_view& w, const float* bias, float* y, int64_t y_stride = 0,
            thread_pool* pool = nullptr);

// Plain reference (double accumulation), for tests.
void linear_ref(const float* x, int64_t m, const weight_view& w, const float* bias, float* y);

}  // namespace autoglm::cpu
