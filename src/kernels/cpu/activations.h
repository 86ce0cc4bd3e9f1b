// kernels/cpu/activations.h: element-wise ops of the MLPs and the residual stream, and row softmax (fp32).
#pragma once

#include <cstdint>

#include "core/kernel_registry.h"

namespace autoglm::cpu {

// Registered kernels (F32), signatures as in kernel_sig; every operand may have a free row stride.
// out = silu(gate) * up; gate, up, out [m, n] (gate/up may be column views of one fused gate_up buffer).
void silu_mul_kernel(const kernel_context& kc, const tensor& gate, const tensor& up, tensor& out);
// x = 0.5 x (1 + erf(x / sqrt 2)), in place.
void gelu_kernel(const kernel_context& kc, tensor& x);
// x += y.
void add_kernel(const kernel_context& kc, tensor& x, const tensor& y);
// x += alpha * y (one rounding: an FMA), the residual of a gated block (alpha = tanh(gate)).
void add_scaled_kernel(const kernel_context& kc, tensor& x, const tensor& y, float alpha);
// Each row in place: softmax(x * scale), max-subtracted, sum in double.
void softmax_kernel(const kernel_context& kc, tensor& x, float scale);

// Legacy entry points on the default pool.
// gate_up: [m, 2*n] with gate in columns [0, n) and up in [n, 2n); out: [m, n] = silu(gate) * up.
void silu_mul_fused(const float* gate_up, int64_t m, int64_t n, float* out);
// out = silu(gate) * up, all [count].
void silu_mul(const float* gate, const float* up, int64_t count, float* out);
// In place: x = 0.5 x (1 + erf(x / sqrt 2)).
void gelu_erf(float* x, int64_t count);
// In place: x += y.
void add_inplace(float* x, const float* y, int64_t count);

}  // namespace autoglm::cpu
