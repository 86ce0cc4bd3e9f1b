// model/glm4v/vision_attention.h: bidirectional fp32 attention over one image frame of the vision tower, blocked
// so that memory stays O(threads * q_block * n) rather than O(n^2), with AVX2 microkernels for both products.
#pragma once

#include <cstdint>

namespace autoglm::glm4v::detail {

// qkv: [n rows of stride qkv_stride][q | k | v], each [n_heads][head_dim] (q and k already rotated);
// out: [n rows of stride out_stride][n_heads*head_dim] = softmax(q·kᵀ / sqrt(head_dim)) · v per head, every token
// attending to all n tokens. Uses the default thread pool.
void vision_attention(const float* qkv, int64_t qkv_stride, int64_t n, int64_t n_heads, int64_t head_dim, float* out,
                      int64_t out_stride);

// Plain reference of the same (double accumulation, one row at a time), for tests.
void vision_attention_ref(const float* qkv, int64_t qkv_stride, int64_t n, int64_t n_heads, int64_t head_dim,
                          float* out, int64_t out_stride);

}  // namespace autoglm::glm4v::detail
