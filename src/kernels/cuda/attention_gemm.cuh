// kernels/cuda/attention_gemm.cuh (internal to kernels/cuda): what attention through cuBLAS shares
// (attention_dense_gemm.cu for images, attention_paged_gemm.cu for prefill chunks): bf16 head-major copies of
// Q/K/V and the row softmax from F32 scores to bf16 weights (causal or not).
//
// The pattern: S = scale * Q K^T in a batched bf16 GEMM with F32 output, P = softmax(S) in bf16, O = P V in a
// second batched GEMM written straight into the output's columns. Q, K, V and P are rounded to bf16 as a bf16
// model's attention rounds them; the scores, the softmax and the accumulation stay F32.
#pragma once

#include "kernels/cuda/cuda_host.h"
#include "kernels/cuda/device_util.cuh"

namespace autoglm::cuda {

namespace {

constexpr size_t k_score_budget = size_t(768) << 20;  // bytes of S (F32) + P (bf16) per chunk of query rows
constexpr int k_softmax_threads = 256;

// src: rows [0, len) of an F32 matrix (row stride ld) whose columns h * hd .. h * hd + hd - 1 are head h ->
// dst: bf16 [heads, len, hd]. Grid row_grid(len, heads * hd): 32-bit index math per element.
__global__ void heads_to_bf16_kernel(const float* src, int64_t ld, int64_t len, int heads, int hd, uint16_t* dst) {
  const int c = int(blockIdx.y) * int(blockDim.x) + int(threadIdx.x);
  if (c >= heads * hd) return;
  const int h = c / hd, d = c - h * hd;
  uint16_t* out = dst + int64_t(h) * len * hd + d;
  for (int64_t r = blockIdx.x; r < len; r += gridDim.x) out[r * hd] = f32_to_bf16_bits(src[r * ld + c]);
}

// One block per row of S (ld scores per row, rows_per_head rows per head). Row i of a head may see keys
// [0, first_key_limit + i) when causal (first_key_limit: keys visible to the chunk's first row), all ld otherwise.
// P = exp(S - max) / sum over the visible keys, rounded to bf16; invisible keys get 0.
__global__ void __launch_bounds__(k_softmax_threads) softmax_rows_kernel(const float* S, int64_t ld,
                                                                         int64_t rows_per_head, bool causal,
                                                                         int64_t first_key_limit, uint16_t* P) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  const float* s = S + row * ld;
  uint16_t* p = P + row * ld;
  const int64_t limit = causal ? min(ld, first_key_limit + row % rows_per_head) : ld;
  float m = -INFINITY;
  for (int64_t i = threadIdx.x; i < limit; i += blockDim.x) m = fmaxf(m, s[i]);
  m = block_max(m, scratch);
  float l = 0.0f;
  for (int64_t i = threadIdx.x; i < limit; i += blockDim.x) l += expf(s[i] - m);
  l = block_sum(l, scratch);
  const float inv = l > 0.0f ? 1.0f / l : 0.0f;  // l >= 1 whenever a key is visible
  for (int64_t i = threadIdx.x; i < ld; i += blockDim.x) p[i] = i < limit ? f32_to_bf16_bits(expf(s[i] - m) * inv) : 0;
}

}  // namespace

}  // namespace autoglm::cuda
