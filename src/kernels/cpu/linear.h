// kernels/cpu/linear.h: y = x · Wᵀ + b with W kept in its storage dtype (F32/F16/BF16), fp32 accumulation.
// Decode (few rows) streams W once, converting in registers: a memory-bandwidth kernel. Prefill converts a
// 4-row tile of W to fp32 once and reuses it for every row of x (3 rows of x per register tile).
#pragma once

#include <cstdint>

#include "core/thread_pool.h"
#include "core/weight_view.h"

namespace autoglm::cpu {

// x: [m, w.cols] fp32; bias: [w.rows] or nullptr; y: [m, w.rows] (row stride y_stride, default w.rows).
void linear(const float* x, int64_t m, const weight_view& w, const float* bias, float* y, int64_t y_stride = 0,
            thread_pool* pool = nullptr);

// Plain reference (double accumulation), for tests.
void linear_ref(const float* x, int64_t m, const weight_view& w, const float* bias, float* y);

}  // namespace autoglm::cpu
