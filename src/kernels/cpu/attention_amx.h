// kernels/cpu/attention_amx.h: ATTENTION_DENSE (the vision tower's per-frame attention) and the text decoder's causal
// prefill over the paged cache on AMX tiles (internal to kernels/cpu; attention_dense.cpp and attention.cpp take
// these paths where attention_dense_uses_amx / attention_prefill_uses_amx say so).
#pragma once

#include <cstdint>

#include "core/thread_pool.h"
#include "kernels/cpu/attention_common.h"
#include "kernels/cpu/kernel_util.h"

namespace autoglm::cpu {

// A segment of n rows with head_dim hd runs on AMX: the tiles are usable (amx_bf16_usable: on unless
// AUTOGLM_CPU_AMX=0), the precision is ROUNDED (gemm_bf16.h; EXACT keeps F32 attention), n >= 1024 (frames of the
// vision tower; the CUDA backend switches to bf16 tensor cores from the same size) and hd % 32 == 0.
bool attention_dense_uses_amx(int64_t n, int64_t head_dim);

// out[r0 + i] = softmax(q_i . K^T * scale) . V over rows [r0, r0 + n), every head; Q, K, V and the softmax weights
// rounded to bf16 (round to nearest even), products accumulated in f32 on the tiles, the softmax in f32 (its row
// sum adds the rounded weights, so they sum to 1 after the division). hd % 32 == 0.
void attention_dense_segment_amx(thread_pool* pool, rows_of<const float> q, rows_of<const float> k,
                                 rows_of<const float> v, int64_t r0, int64_t n, int64_t n_heads, int64_t head_dim,
                                 float scale, rows_of<float> out);
// p[j] = bf16(exp(s[j] * scale - max_j s[j] * scale)) for j < n (s may be overwritten), rounded to nearest even;
// returns the sum of the rounded weights (in double, then f32). The softmax of both bf16 dense-attention paths (AMX
// here, AVX-512 BF16 dots in attention_avx512bf16.h).
float softmax_row_bf16(float* s, int64_t n, float scale, uint16_t* p);
// Its second half on scores already scaled, mx their maximum: the same weights and sum.
float softmax_scaled_row_bf16(const float* s, int64_t n, float mx, uint16_t* p);

// Causal prefill (attention_paged): a sequence's n_new >= 64 new rows take the tiles when they are usable, the
// precision is ROUNDED and head_dim % 32 == 0 (before the AVX-512 BF16 path of attention_avx512bf16.h); fewer rows
// (decode steps) keep the F32 kernel. The contract above per row over keys [0, n_past + i], the cache rows decoded
// to f32 and rounded to bf16; each KV head's keys are packed once for its group of query heads.
bool attention_prefill_uses_amx(int64_t n_new, int64_t head_dim);
void attention_prefill_amx(thread_pool* pool, const float* q, int64_t qs, const attn::cache_view& kc,
                           const attn::cache_view& vc, const attn::seq_desc& d, int64_t n_heads, int64_t n_kv_heads,
                           int64_t head_dim, float scale, float* out, int64_t os);
void attention_prefill_amx_emulated(thread_pool* pool, const float* q, int64_t qs, const attn::cache_view& kc,
                                    const attn::cache_view& vc, const attn::seq_desc& d, int64_t n_heads,
                                    int64_t n_kv_heads, int64_t head_dim, float scale, float* out, int64_t os);

// The same code over amx_emulated (amx.h): for tests of the layouts on machines without AMX. Any n >= 1.
void attention_dense_segment_amx_emulated(thread_pool* pool, rows_of<const float> q, rows_of<const float> k,
                                          rows_of<const float> v, int64_t r0, int64_t n, int64_t n_heads,
                                          int64_t head_dim, float scale, rows_of<float> out);

}  // namespace autoglm::cpu
