// kernels/cpu/activations.h: element-wise ops of the MLPs and residual stream.
#pragma once

#include <cstdint>

namespace autoglm::cpu {

// gate_up: [m, 2*n] with gate in columns [0, n) and up in [n, 2n); out: [m, n] = silu(gate) * up.
void silu_mul_fused(const float* gate_up, int64_t m, int64_t n, float* out);
// out = silu(gate) * up, all [count].
void silu_mul(const float* gate, const float* up, int64_t count, float* out);
// In place: x = 0.5 x (1 + erf(x / sqrt 2)).
void gelu_erf(float* x, int64_t count);
// In place: x += y.
void add_inplace(float* x, const float* y, int64_t count);

}  // namespace autoglm::cpu
