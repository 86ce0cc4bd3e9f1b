// kernels/cpu/norm.h: RMSNorm and LayerNorm over rows, fp32 (weights pre-converted to fp32: they are tiny).
// Sums of squares and means accumulate in double, as the parity tests were tuned against.
#pragma once

#include <cstdint>

#include "core/kernel_registry.h"

namespace autoglm::cpu {

// Registered kernels (F32 x): x, y [m, n] with free row strides (y may be x); weight (and bias) F32 [n].
void rms_norm_kernel(const kernel_context& kc, const tensor& x, const tensor& weight, float eps, tensor& y);
// x += rms_norm(y) * w_post, then h = rms_norm(x) * w_next (w_next empty: x only), row by row: the same arithmetic
// as rms_norm, add and rms_norm one after another.
void residual_rms_norm_kernel(const kernel_context& kc, tensor& x, const tensor& y, const tensor& w_post,
                              const tensor& w_next, float eps, tensor& h);
void layer_norm_kernel(const kernel_context& kc, const tensor& x, const tensor& weight, const tensor& bias, float eps,
                       tensor& y);

// Legacy entry points on the default pool. out[i] = x[i] * rsqrt(mean(x[i]^2) + eps) * weight; x, out: [m, n]
// (may alias).
void rms_norm(const float* x, const float* weight, int64_t m, int64_t n, float eps, float* out);
// out[i] = (x[i] - mean) * rsqrt(var + eps) * weight + bias (biased variance, as torch).
void layer_norm(const float* x, const float* weight, const float* bias, int64_t m, int64_t n, float eps, float* out);

}  // namespace autoglm::cpu
