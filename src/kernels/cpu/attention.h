// kernels/cpu/attention.h: scaled dot-product attention in fp32.
//  - attention_paged: causal, grouped-query, keys/values read from the paged KV cache (text decoder).
//  - attention_dense: bidirectional within one segment (vision tower: one image at a time).
#pragma once

#include <cstdint>

namespace autoglm::cpu {

struct paged_kv {
  const float* k_pool = nullptr;  // [n_blocks, block_size, n_kv_heads, head_dim]
  const float* v_pool = nullptr;
  int64_t block_size = 16;
  const int32_t* block_table = nullptr;  // this sequence's blocks
};

// q: [n_new rows, stride q_stride][n_heads][head_dim]; token i sits at absolute position n_past + i and attends
// to positions 0..n_past+i (already written to the cache). out: [n_new rows, stride out_stride][n_heads*head_dim].
void attention_paged(const float* q, int64_t q_stride, int64_t n_new, int64_t n_past, int64_t n_heads,
                     int64_t n_kv_heads, int64_t head_dim, float scale, const paged_kv& kv, float* out,
                     int64_t out_stride);

// q, k, v: [n rows of stride `stride`][n_heads][head_dim] (e.g. views into one fused qkv buffer);
// out: [n][n_heads*head_dim], every token attends to all n tokens.
void attention_dense(const float* q, const float* k, const float* v, int64_t stride, int64_t n, int64_t n_heads,
                     int64_t head_dim, float scale, float* out, int64_t out_stride);

}  // namespace autoglm::cpu
