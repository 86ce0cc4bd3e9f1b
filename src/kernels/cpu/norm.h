// kernels/cpu/norm.h: RMSNorm and LayerNorm over rows, fp32 (weights pre-converted to fp32: they are tiny).
// Sums of squares and means accumulate in double, as the parity tests were tuned against.
#pragma once

#include <cstdint>

#include "core/kernel_registry.h"

namespace autoglm::cpu {

// Registered kernels (F32 x): x, y [m, n] with free row strides (y may be x); weight (and bias) F32 [n].
void rms_norm_kernel(const kernel_context& kc, const tensor& x, const tensor& weight, float eps, tensor& y);
void layer_norm_kernel(const kernel_context& kc, const tensor& x, const tensor& weight, const tensor& bias, float eps,
                       tensor& y);

// Legacy entry points on the default pool. out[i] = x[i] * rsqrt(mean(x[i]^2) + eps) * weight; x, out: [m, n]
// (may alias).
void rms_norm(const float* x, const float* weight, int64_t m, int64_t n, float eps, float* out);
// out[i] = (x[i] - mean) * rsqrt(var + eps) * weight + bias (biased variance, as torch).
void layer_norm(const float* x, const float* weight, const float* bias, int64_t m, int64_t n, float eps, float* out);

}  // namespace autoglm::cpu
