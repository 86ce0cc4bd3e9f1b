// kernels/cpu/attention_avx512bf16.h: ATTENTION_DENSE (the vision tower's per-frame attention) on AVX-512 BF16 dot
// products (vdpbf16ps: Zen 4 and later, Cooper Lake) for CPUs without AMX tiles, and the causal prefill of the text
// decoder's paged attention on the same products (internal to kernels/cpu; attention_dense.cpp and attention.cpp
// take these paths where the predicates below say so).
//
// The contract of the AMX path (attention_amx.h), on the bf16 GEMM's register tile (gemm_bf16.h, bf16_detail):
// Q, K, V and the softmax weights rounded to bf16, each score one f32 chain over the head's dim pairs, an f32
// softmax per row over all its keys (softmax_row_bf16: the row sum adds the rounded weights), each output one f32
// chain over the key pairs, divided by the row sum. Only the order inside the products differs from the AMX tiles
// (vdpbf16ps's order, gemm_bf16.h). Every output row depends only on its own query row and the segment's keys:
// not on the blocking or the threads.
#pragma once

#include <cstdint>

#include "core/thread_pool.h"
#include "kernels/cpu/attention_common.h"
#include "kernels/cpu/kernel_util.h"

namespace autoglm::cpu {

// A segment of n rows with head_dim hd runs here: the AMX path does not take it, the precision is ROUNDED
// (gemm_bf16.h; EXACT keeps F32 attention), the CPU has AVX-512 BF16 (bf16_gemm_available) and its vdpbf16ps
// outruns its F32 FMAs (bf16_dots_outrun_fma: AMD yes, Intel no), n >= 1024 (the AMX
// path's and the CUDA tensor-core kernels' threshold) and hd % 32 == 0.
bool attention_dense_uses_avx512bf16(int64_t n, int64_t head_dim);

// out[r0 + i] = softmax(q_i . K^T * scale) . V over rows [r0, r0 + n), every head, under the contract above.
// Requires bf16_gemm_available() and hd % 32 == 0 (any n >= 1).
void attention_dense_segment_avx512bf16(thread_pool* pool, rows_of<const float> q, rows_of<const float> k,
                                        rows_of<const float> v, int64_t r0, int64_t n, int64_t n_heads,
                                        int64_t head_dim, float scale, rows_of<float> out);

// Causal prefill (attention_paged): a sequence's n_new >= 64 new rows take this path when the AMX path does not
// (attention_prefill_uses_amx), the precision is ROUNDED, the CPU has AVX-512 BF16 (and bf16_dots_outrun_fma) and
// head_dim % 32 == 0; fewer rows (decode steps) keep the F32 kernel of attention_common.h. The same contract per
// row over keys [0, n_past + i], the cache rows decoded to f32 and rounded to bf16; the K and V of each KV head are
// packed once for its group of query heads.
bool attention_prefill_uses_avx512bf16(int64_t n_new, int64_t head_dim);
void attention_prefill_avx512bf16(thread_pool* pool, const float* q, int64_t qs, const attn::cache_view& kc,
                                  const attn::cache_view& vc, const attn::seq_desc& d, int64_t n_heads,
                                  int64_t n_kv_heads, int64_t head_dim, float scale, float* out, int64_t os);

}  // namespace autoglm::cpu
