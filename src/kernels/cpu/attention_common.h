// kernels/cpu/attention_common.h: what the attention files share (internal to kernels/cpu): the cache as byte
// strides, a sequence of the batch, and the per-head arithmetic of the original kernels (dot * scale, softmax
// with a double sum, P.V in position order) that every attention path must reproduce bit for bit.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "core/thread_pool.h"

namespace autoglm::cpu::attn {

// One layer's K or V cache as byte strides: [n_blocks, block_size, n_kv_heads, head_dim] in `type`.
struct cache_view {
  dtype type = dtype::F32;
  uint8_t* base = nullptr;
  int64_t block_stride = 0, slot_stride = 0, head_stride = 0;
  int64_t n_blocks = 0;
  int32_t block_size = 0;
  uint8_t* at(int64_t block, int64_t offset, int64_t head) const {
    return base + block * block_stride + offset * slot_stride + head * head_stride;
  }
};
cache_view view_of(const tensor& c, const char* what);

// One sequence of the batch: its new rows of q/out, its history length and its block table.
struct seq_desc {
  int64_t first_row = 0, n_new = 0, n_past = 0;
  const int32_t* table = nullptr;
  int64_t n_table = 0;
};

// Every new token of the batch: (sequence, index among its new tokens), sequences in order.
struct row_ref {
  int32_t seq;
  int64_t i;
};

// The block id holding position p of a sequence (checked against the cache).
int64_t block_of(const seq_desc& d, const cache_view& c, int64_t p);

// q . k over n elements (AVX2: two 8-lane accumulators, then the lane sum, then the tail; NEON: the same sums).
float fast_dot(const float* a, const float* b, int64_t n);
// out[h * q_stride + p] = fast_dot(q[h], k[p], n) * scale for nq query rows and nk key rows: the same bits,
// computed 2 x 2 at a time where fast_dot is dot_avx2 and n is a multiple of 16 (each load serves two dots).
void scaled_dots(const float* const* q, int nq, const float* const* k, int nk, int64_t n, float scale, float* out,
                 int64_t q_stride);
// Key runs of 16 on AVX-512 (key_runs16_usable(n): AVX-512F and n % 16 == 0). transpose_keys16 lays out nk (1-16)
// key rows of n floats as kt[n][16] (64-byte aligned; lane j = key j, lanes past nk zero); scaled_dots_keys16
// then gives out[h * q_stride + p] = fast_dot(q[h], k[p], n) * scale for p < nk, the same bits as scaled_dots, with
// one zmm per partial sum and no per-dot lane reduction (fast_dot's tree runs across 16 keys at once).
bool key_runs16_usable(int64_t n);
void transpose_keys16(const float* const* k, int nk, int64_t n, float* kt);
void scaled_dots_keys16(const float* const* q, int nq, const float* kt, int nk, int64_t n, float scale, float* out,
                        int64_t q_stride);
// y += w * x over n elements (AVX2 / NEON: one FMA per lane, the tail as explicit FMAs).
void axpy(float w, const float* x, float* y, int64_t n);
// scores[0..n) = softmax(scores) in place: fp32 max and exp, double sum, multiply by float(1 / sum).
void softmax(float* scores, int64_t n);
// A row of K or V as F32: the cache row itself for F32, else converted into buf.
const float* f32_row(const cache_view& c, const uint8_t* p, float* buf, int64_t n);
// f32_row of position p of sequence d, KV head `head` (through its block table, checked against the cache).
inline const float* position_row(const cache_view& c, const seq_desc& d, int64_t p, int64_t head, float* buf,
                                 int64_t n) {
  return f32_row(c, c.at(block_of(d, c, p), p % c.block_size, head), buf, n);
}

// New rows of one sequence from which its causal prefill takes a bf16 path (AMX tiles, attention_amx.h; AVX-512
// BF16 dots, attention_avx512bf16.h) under the ROUNDED precision; fewer (decode steps) keep the F32 kernel.
constexpr int64_t k_bf16_prefill_min_rows = 64;

// Causal attention of `rows` (attention_paged.cpp): three passes (scores over position blocks, softmax per head,
// P.V over head and dimension blocks), each split over the threads.
void paged_attention_split(thread_pool* pool, const float* q, int64_t qs, const cache_view& kc, const cache_view& vc,
                           const std::vector<seq_desc>& seqs, const std::vector<row_ref>& rows, int64_t n_heads,
                           int64_t n_kv_heads, int64_t hd, float scale, float* out, int64_t os);

}  // namespace autoglm::cpu::attn
