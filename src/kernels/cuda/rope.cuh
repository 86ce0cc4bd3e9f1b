// kernels/cuda/rope.cuh: the text M-RoPE's arithmetic, shared by ROPE_MROPE / ROPE_KV_STORE (rope.cu) and the decode
// GEMV that rotates q and k as it writes them (LINEAR_ROPE_KV_STORE, linear.cu), so both give the same bits.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

namespace autoglm::cuda {

constexpr int k_rope_max_pairs = 256;  // rotated pairs per head (head_dim up to 512)

// The inverse frequencies, computed on the host exactly as the CPU kernel does (fp32 pow, as HF builds inv_freq).
inline std::vector<float> rope_inverse_frequencies(int64_t dim, float theta) {
  std::vector<float> inv(size_t(dim / 2));
  for (int64_t i = 0; i < dim / 2; ++i) inv[size_t(i)] = 1.0f / std::pow(theta, float(2 * i) / float(dim));
  return inv;
}

// Pair i (dims 2i, 2i + 1) of a head at M-RoPE positions (pt, ph, pw), rotated: pairs [0, sec0) take t, [sec0, sec0 +
// sec1) h, the rest w. The angle is the fp32 product float(p) * inv[i]; sincosf is CUDA's accurate version; the
// products and sums are rounded one by one (no contraction into FMAs, which the compiler could choose differently in
// different kernels).
__device__ inline float2 mrope_rotate(float x0, float x1, int i, int sec0, int sec1, int32_t pt, int32_t ph,
                                      int32_t pw, const float* inv) {
  const int32_t p = i < sec0 ? pt : (i < sec0 + sec1 ? ph : pw);
  float s, c;
  sincosf(__fmul_rn(float(p), inv[i]), &s, &c);
  return make_float2(__fsub_rn(__fmul_rn(x0, c), __fmul_rn(x1, s)), __fadd_rn(__fmul_rn(x1, c), __fmul_rn(x0, s)));
}

}  // namespace autoglm::cuda
