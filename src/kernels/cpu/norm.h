// kernels/cpu/norm.h: RMSNorm and LayerNorm over rows, fp32 (weights pre-converted to fp32: they are tiny).
#pragma once

#include <cstdint>

namespace autoglm::cpu {

// out[i] = x[i] * rsqrt(mean(x[i]^2) + eps) * weight; x, out: [m, n] (may alias).
void rms_norm(const float* x, const float* weight, int64_t m, int64_t n, float eps, float* out);
// out[i] = (x[i] - mean) * rsqrt(var + eps) * weight + bias (biased variance, as torch).
void layer_norm(const float* x, const float* weight, const float* bias, int64_t m, int64_t n, float eps, float* out);

}  // namespace autoglm::cpu
