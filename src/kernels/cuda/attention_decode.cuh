// kernels/cuda/attention_decode.cuh: what the two one-launch decode kernels share (internal to kernels/cuda):
// attention_decode.cu (F32 arithmetic on exactly decoded K/V) and attention_decode_mma.cu (tensor cores, bf16 Q and
// P) read a sequence's row the same way, merge a (sequence, KV head)'s per-block partials through a thread-block
// cluster the same way, and opt their kernels into large shared memory and clusters once per device.
#pragma once

#include <atomic>
#include <cmath>
#include <cstdint>

#include <cooperative_groups.h>

#include "kernels/cuda/flash.cuh"

namespace autoglm::cuda {

constexpr int k_decode_max_group = 16;    // query heads per KV head one block takes
constexpr int k_decode_max_cluster = 16;  // blocks one cluster merges (a non-portable size over 8: opted in)

// One decode row of sequence `seq`: seq_info [n_seqs, ld_info] holds (first row, n new, n past). well_formed: the
// row exists in q (n_q_rows), its context fits the block table and the positions the grid covers (covered).
// n_new is 0 or 1: the host picked a decode kernel because rows == sequences, and more would need rows the grid
// has no room for.
struct decode_row {
  int first_row, n_new, n_past;
  bool well_formed;
};
__device__ inline decode_row read_decode_row(const int32_t* seq_info, int64_t ld_info, int seq, int64_t n_q_rows,
                                             int64_t table_positions, int64_t covered) {
  decode_row r;
  r.first_row = seq_info[seq * ld_info];
  r.n_new = seq_info[seq * ld_info + 1];
  r.n_past = seq_info[seq * ld_info + 2];
  r.well_formed = r.first_row >= 0 && r.n_new >= 0 && r.n_new <= 1 && r.n_past >= 0 &&
                  int64_t(r.first_row) + r.n_new <= n_q_rows && int64_t(r.n_past) + r.n_new <= table_positions &&
                  int64_t(r.n_past) + r.n_new <= covered;
  return r;
}

// s += w * v, lane by lane (one FMA each: the merges' arithmetic).
__device__ inline void fma4(float w, const float4& v, float4& s) {
  s.x = fmaf(w, v.x, s.x);
  s.y = fmaf(w, v.y, s.y);
  s.z = fmaf(w, v.z, s.z);
  s.w = fmaf(w, v.w, s.w);
}

// o[0..3] = s / l (0 where l is 0: no position was seen).
__device__ inline void store_normalized(float* o, const float4& s, float l) {
  const float inv = l > 0.0f ? 1.0f / l : 0.0f;
  o[0] = s.x * inv;
  o[1] = s.y * inv;
  o[2] = s.z * inv;
  o[3] = s.w * inv;
}

// The merge on sm_90 when all blocks of a (sequence, KV head) form one thread-block cluster (block rank = split):
// every block leaves its partial acc [G, HD] (unnormalized) in its shared memory at `part` and its (max, sum) per
// head in ml_s (natural-log units; max -inf for a block that saw no position); block r merges heads r, r + k, ...
// reading the other blocks' partials through distributed shared memory, weighing them exp(m_i - M) in rank order,
// and writes them normalized to out + h * HD. w_s holds k_decode_max_group x 32 floats. The cluster barrier before
// the reads publishes every partial, the one after keeps each block's shared memory alive until the others have
// read it. This replaces global partials, a fence, a counter and the last block's reads: 9.58 -> 8.44 us per call
// at context 512 on an H100 (replayed from a graph). Every block of the cluster must call it.
template <int HD>
__device__ void merge_in_cluster(const float* part, const float2* ml_s, int G, float* out, float* w_s) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
  __trap();  // clusters need sm_90: the host never launches a cluster kernel below that
#elif defined(__CUDA_ARCH__)
  namespace cg = cooperative_groups;
  cg::cluster_group cluster = cg::this_cluster();
  const int k = int(cluster.num_blocks()), rank = int(cluster.block_rank());
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, n_threads = int(blockDim.x);
  __shared__ float2 tot_s[k_decode_max_group];  // this block's heads: (max, sum of weighted sums)
  cluster.sync();
  const int mine = (G - rank + k - 1) / k;  // heads rank, rank + k, ... below G
  for (int j = warp; j < mine; j += n_threads / 32) {  // head rank + j k; lanes over the partials (k <= 32)
    const int h = rank + j * k;
    const float2 ml = lane < k ? *cluster.map_shared_rank(ml_s + h, lane) : make_float2(-INFINITY, 0.0f);
    const float mx = warp_max(ml.x);
    const float w = (lane < k && ml.x != -INFINITY) ? expf(ml.x - mx) : 0.0f;
    const float sum = warp_sum(fmaf(w, ml.y, 0.0f));
    if (lane < k) w_s[j * 32 + lane] = w;
    if (lane == 0) tot_s[j] = make_float2(mx, sum);
  }
  __syncthreads();
  constexpr int Q4 = HD / 4;
  for (int item = tid; item < mine * Q4; item += n_threads) {
    const int j = item / Q4, d4 = item - j * Q4, h = rank + j * k;
    float4 s = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    // 4 remote reads in flight, then their FMAs in rank order (the same bits as one at a time).
    for (int i0 = 0; i0 < k; i0 += 4) {
      float4 v[4];
#pragma unroll
      for (int u = 0; u < 4; ++u)
        if (i0 + u < k) v[u] = *reinterpret_cast<const float4*>(cluster.map_shared_rank(part + h * HD + 4 * d4, i0 + u));
#pragma unroll
      for (int u = 0; u < 4; ++u)
        if (i0 + u < k) fma4(w_s[j * 32 + i0 + u], v[u], s);
    }
    store_normalized(out + h * HD + 4 * d4, s, tot_s[j].y);
  }
  cluster.sync();
#endif
}

// Sets a decode kernel's dynamic shared memory limit (and, for cluster kernels, non-portable cluster sizes) once per
// (kernel, device) rather than per launch: decode steps are many small launches. `opted_in` is the kernel's own
// static bit set of devices.
template <class K>
void opt_in_once(K kernel, size_t smem, bool cluster, std::atomic<uint64_t>& opted_in, const char* what) {
  int dev = 0;
  check(cudaGetDevice(&dev), "cudaGetDevice");
  const uint64_t bit = dev < 64 ? uint64_t(1) << dev : 0;
  if (bit && (opted_in.load(std::memory_order_acquire) & bit)) return;
  check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)), what);
  if (cluster) check(cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1), what);
  opted_in.fetch_or(bit, std::memory_order_release);
}

// AUTOGLM_CUDA_DECODE_ATTENTION: which kernel takes a batch of decodes (benchmarks, bisection). mma (the default):
// attention_decode_mma.cu where it applies (BF16 cache, bf16 GEMM precision), else split; split: the F32 kernel of
// attention_decode.cu; flash: neither (the flash path of attention_paged.cu).
enum class decode_path { MMA, SPLIT, FLASH };
decode_path decode_attention_path();
// AUTOGLM_CUDA_DECODE_CLUSTER=0 keeps both decode kernels off thread-block clusters (benchmarks, bisection).
bool decode_cluster_enabled();

// attention_decode_mma.cu: the batch of decodes on tensor cores; false (nothing launched) where it does not apply.
bool launch_paged_decode_mma(const flash_args& a, dtype cache_type, int n_kv_heads, int64_t n_seqs, stream_state& s);

}  // namespace autoglm::cuda
