// kernels/cpu/attention.h: scaled dot-product attention in fp32.
//  - attention_paged: causal, grouped-query, keys/values read from the paged KV cache (text decoder); the
//    cache holds F32, F16, BF16 or Q8_0 (chosen by the runtime at creation; F16/BF16 halve its memory, Q8_0 with
//    head_dim a multiple of 32 takes 53% of F16, see quant_kv.h) and every
//    product is computed in F32.
//  - kv_store: writes new keys/values into their cache slots, rounding to the cache dtype.
//  - attention_dense (in attention_dense.cpp): bidirectional within segments (the vision tower).
#pragma once

#include <cstdint>

#include "core/kernel_registry.h"

namespace autoglm::cpu {

// Registered kernels (keyed by the cache dtype), signatures as kernel_sig::kv_store / attention_paged.
// kv_store: a slot < 0 is skipped (a padding row); any other slot must lie inside the cache.
void kv_store_kernel(const kernel_context& kc, const paged_kv_layer& kv, const tensor& k, const tensor& v,
                     const tensor& slots);
void attention_paged_kernel(const kernel_context& kc, const tensor& q, const paged_kv_layer& kv,
                            const paged_batch& batch, int32_t n_heads, int32_t n_kv_heads, int32_t head_dim,
                            float scale, tensor& out);
// Registered ATTENTION_DENSE kernel (F32): see kernel_sig::attention_dense. Each segment [s_i, s_{i+1}) of rows
// attends only to itself (one image frame); memory stays O(threads * q_block * segment) rather than O(n^2).
void attention_dense_kernel(const kernel_context& kc, const tensor& q, const tensor& k, const tensor& v,
                            int32_t n_heads, int32_t head_dim, const tensor& segments, float scale, tensor& out);

// ---- legacy entry points (model code until it runs over ops; default pool, F32 caches) -----------------------
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
// out: [n][n_heads*head_dim], every token attends to all n tokens. One dot product per (query, key): the
// simple form, kept for the legacy tests; attention_dense_kernel is the fast one.
void attention_dense(const float* q, const float* k, const float* v, int64_t stride, int64_t n, int64_t n_heads,
                     int64_t head_dim, float scale, float* out, int64_t out_stride);

}  // namespace autoglm::cpu
