// kernels/cuda/attention_decode.cu: ATTENTION_PAGED for a batch of decodes (one new row per sequence) in one launch,
// in F32 arithmetic: F16/F32 caches, SPLIT precision, and whatever attention_decode_mma.cu (the tensor-core kernel,
// tried first: BF16 caches at bf16 GEMM precision) does not take.
//
// Operands: q F32 [n_seqs, n_heads * HD] (row stride free; row seq_info[s][0] belongs to sequence s), the paged
// caches K, V [n_blocks, block_size, n_kv_heads, HD] in F32/F16/BF16, seq_info I32 [n_seqs, 3] (first row, n new,
// n past), block_tables I32 [n_seqs, n_table]; out F32 like q. HD is 64 or 128 and a KV head's group of query
// heads is at most 16 (GLM-4.1V: 32 heads over 2 KV heads, HD 128); other shapes take the flash path.
//
// Grid (split, KV head, sequence), 512 threads (16 warps). A block owns positions [split * split_len, ...) of one
// (sequence, KV head) for every query head of the group, so each K/V row is read from memory once for all of them.
// It walks its range in tiles of 64 positions: each thread loads its 16-byte pieces of the next tile's K and V rows
// into registers while the current tile is computed (the block ids come from the sequence's table; positions
// past n_past + 1 and rows behind a bad block id are never loaded, because slots nobody owns may hold NaN), then
// stores them decoded to F32 in shared memory. Warp w takes 4 query heads and a slice of the tile's positions
// (16 heads: 4 groups x 4 slices of 16 positions). Scores, 4 heads per K load (the lanes of a position split its
// dims and add up by shuffles), go to shared memory; warp h then runs head h's online softmax over the tile
// (running max and sum); P.V, 4 heads per V load, each lane HD/32 dims; the slices' accumulators are summed in a
// fixed order at the end. The tile is bound by shared-memory bandwidth, hence 4 heads per load.
// Arithmetic is F32 throughout on exactly decoded values: within F32 rounding of the CPU's result (a different
// summation order).
//
// Splits (GLM has 2 KV heads: one decode alone would use 2 SMs): the host picks n_splits so that about two blocks
// per SM run, at most one per tile of the longest context, fewer with more sequences. With one split a block writes
// the output itself. Otherwise each block writes its unnormalized partial (max, sum, acc[HD] per head) into the
// stream's workspace and counts itself in a per-(sequence, KV head) counter; the last block merges the partials into
// the output. Over 32 splits the merge has two levels (measured faster on the H200 from 64 splits): the last block
// of each chunk of ~sqrt(n_splits) splits merges its chunk, the last chunk-merger merges the chunks. Merges weigh
// partials in split order, so results do not depend on which block came last. Counters live in a per-stream buffer
// zeroed when the stream is made (split_counters); the last block of each counter puts it back to 0, so no launch
// needs a memset and a recorded CUDA graph replays the kernel as is. On sm_90, up to 16 splits of a (sequence, KV
// head) form a thread-block cluster instead and merge through distributed shared memory (merge_in_cluster; short
// contexts: one decode at up to 1,024 positions; AUTOGLM_CUDA_DECODE_CLUSTER=0 keeps the global merge).
//
// H200, bf16 cache, 32/2 heads, HD 128, one call replayed from a CUDA graph (cuda_perf): 1 sequence at context
// 512 / 2048 / 4096: 10.8 / 12.8 / 14.2 us; 8 sequences at 2048: 26.7 us (the flash path: 95 and 105 us). A
// fixed ~10 us of dependent latency (table, then K/V, then fence, atomic and merge reads) dominates short contexts.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include <cooperative_groups.h>

#include "kernels/cuda/attention_decode.cuh"

namespace autoglm::cuda {

namespace {

constexpr int k_dec_threads = 512;
constexpr int k_dec_warps = 16;
constexpr int k_dec_tile = 64;      // positions per tile: two per lane when scoring
constexpr int k_dec_max_group = k_decode_max_group;  // query heads per KV head: one scoring warp each
constexpr int k_dec_max_merge = 64;  // partials one merge reads, a multiple of 32
constexpr int k_dec_one_level = 32;  // splits merged in one level at most; more: chunks of ~sqrt(n_splits)
constexpr int k_dec_max_splits = 256;

struct decode_args : paged_view {
  int n_kv_heads;
  float scale;
  int n_splits;        // grid.x
  int64_t split_len;   // positions per split, whole tiles (one split: covers any context)
  int chunk;           // splits per first-level merge
  int max_chunks;      // ceil(n_splits / chunk)
  float* part_acc;     // [n_seqs * n_kv_heads, n_splits, group, HD]
  float2* part_ml;     // [n_seqs * n_kv_heads, n_splits, group]: (max, sum)
  float* chunk_acc;    // [n_seqs * n_kv_heads, max_chunks, group, HD]
  float2* chunk_ml;    // [n_seqs * n_kv_heads, max_chunks, group]
  int32_t* counters;   // [n_seqs * n_kv_heads, 1 + max_chunks]: zero between launches
};

// Shared memory of one block (floats): K [64][HD + 4] (odd 16-byte stride: lanes reading rows are conflict-free),
// V [64][HD], q [16][HD + 4 * lanes per position] (each lane's part of a row starts in other banks), scores and
// then probabilities [16][64].
constexpr size_t decode_smem_bytes(int hd, int lanes_per_pos) {
  return sizeof(float) * size_t(k_dec_tile * (hd + 4) + k_dec_tile * hd +
                                k_dec_max_group * (hd + 4 * lanes_per_pos) + k_dec_max_group * k_dec_tile);
}

// 16 bytes of a cache row as F32 (8 values of F16/BF16, 4 of F32), exact.
template <dtype T>
__device__ inline void decode_chunk(const uint4& raw, float* dst) {
  if constexpr (T == dtype::F32) {
    *reinterpret_cast<float4*>(dst) = make_float4(__uint_as_float(raw.x), __uint_as_float(raw.y),
                                                  __uint_as_float(raw.z), __uint_as_float(raw.w));
  } else {
    const uint32_t w[4] = {raw.x, raw.y, raw.z, raw.w};
    float f[8];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      if constexpr (T == dtype::BF16) {
        f[2 * i] = __uint_as_float(w[i] << 16);
        f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
      } else {
        __half2 h;
        memcpy(&h, &w[i], sizeof h);
        const float2 p = __half22float2(h);
        f[2 * i] = p.x;
        f[2 * i + 1] = p.y;
      }
    }
    *reinterpret_cast<float4*>(dst) = make_float4(f[0], f[1], f[2], f[3]);
    *reinterpret_cast<float4*>(dst + 4) = make_float4(f[4], f[5], f[6], f[7]);
  }
}

// Counts this block into *ctr; true in the block that completes `expected` (it also resets the counter). The
// writes before the call are visible device-wide before the count (fence, then the atomic), and the last block
// fences again before reading what the others wrote (with L1-bypassing loads).
__device__ inline bool arrive(int32_t* ctr, int expected, int* last_s) {
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) {
    const bool last = atomicAdd(ctr, 1) == expected - 1;
    if (last) atomicExch(ctr, 0);  // every block of the group has counted: ready for the next launch
    *last_s = last;
  }
  __syncthreads();
  const bool last = *last_s != 0;
  if (last) __threadfence();
  return last;
}

// Merges k <= k_dec_max_merge consecutive partials (src_acc [k, G, HD], src_ml [k, G]) weighted exp(m_i - M) in
// order; writes a partial (dst_acc [G, HD], dst_ml [G]) or, with out set, the normalized output (out + h * HD).
template <int HD>
__device__ void merge_partials(const float* src_acc, const float2* src_ml, int k, int G, float* dst_acc,
                               float2* dst_ml, float* out, float* w_s, float2* ml_s) {
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  if (warp < G) {  // warp h: head h's weights, lanes over the partials
    float2 ml[k_dec_max_merge / 32];
    float mx = -INFINITY;
#pragma unroll
    for (int j = 0; j < k_dec_max_merge / 32; ++j) {
      const int i = lane + 32 * j;
      ml[j] = i < k ? __ldcg(src_ml + i * G + warp) : make_float2(-INFINITY, 0.0f);
      mx = fmaxf(mx, ml[j].x);
    }
    mx = warp_max(mx);
    float sum = 0.0f;
#pragma unroll
    for (int j = 0; j < k_dec_max_merge / 32; ++j) {
      const int i = lane + 32 * j;
      // A partial that saw no position (m = -inf: all its rows behind bad block ids) weighs 0.
      const float w = (i < k && ml[j].x != -INFINITY) ? expf(ml[j].x - mx) : 0.0f;
      sum = fmaf(w, ml[j].y, sum);
      if (i < k) w_s[warp * k_dec_max_merge + i] = w;
    }
    sum = warp_sum(sum);
    if (lane == 0) ml_s[warp] = make_float2(mx, sum);
  }
  __syncthreads();
  constexpr int Q4 = HD / 4;
  for (int item = tid; item < G * Q4; item += k_dec_threads) {
    const int h = item / Q4, d4 = item - h * Q4;
    float4 s = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll 4
    for (int i = 0; i < k; ++i) {
      const float w = w_s[h * k_dec_max_merge + i];
      fma4(w, __ldcg(reinterpret_cast<const float4*>(src_acc + (int64_t(i) * G + h) * HD) + d4), s);
    }
    if (out) {
      store_normalized(out + h * HD + 4 * d4, s, ml_s[h].y);
    } else {
      __stcg(reinterpret_cast<float4*>(dst_acc + h * HD) + d4, s);
    }
  }
  if (!out && tid < G) __stcg(dst_ml + tid, ml_s[tid]);
}

// Warp w works on query heads 4 (w % SLOTS) .. + 3 and the tile's positions PPS (w / SLOTS) .. + PPS - 1, where
// SLOTS = 1, 2, 4 groups of 4 heads cover the group (G <= 4, 8, 16): scoring, then P.V. Two blocks per SM (64
// registers) except F32 caches at HD 128, whose loads in flight need more registers.
template <dtype T, int HD, int SLOTS, bool CLUSTER>
__global__ void __launch_bounds__(k_dec_threads, T == dtype::F32 && HD == 128 ? 1 : 2)
    paged_decode_kernel(const decode_args a) {
  constexpr int EPC = T == dtype::F32 ? 4 : 8;     // values per 16-byte piece
  constexpr int CPR = HD / EPC;                     // pieces per K or V row
  constexpr int RPP = k_dec_threads / CPR;          // rows one pass of the block loads
  constexpr int NPOS = k_dec_tile / RPP;            // positions each thread loads per tile
  constexpr int KST = HD + 4;
  constexpr int DPL = HD / 32;                      // dims per lane in P.V
  constexpr int PPS = 4 * SLOTS;                    // positions per warp (k_dec_warps / SLOTS slices of the tile)
  constexpr int LPP = 32 / PPS;                     // lanes per position when scoring, each a part of the dims
  constexpr int DPP = HD / LPP;                     // dims per part
  constexpr int QPS = DPP + 4, QST = LPP * QPS;     // q: part and row strides
  static_assert(k_dec_threads % CPR == 0 && k_dec_tile % RPP == 0 && NPOS >= 1, "tile / row split");
  static_assert(DPL == 2 || DPL == 4, "HD 64 or 128");
  static_assert(PPS * (k_dec_warps / SLOTS) == k_dec_tile && DPP % 4 == 0, "warps / tile split");
  extern __shared__ float4 smem4[];
  float* ks = reinterpret_cast<float*>(smem4);  // [64][KST]
  float* vs = ks + k_dec_tile * KST;            // [64][HD]
  float* qs = vs + k_dec_tile * HD;             // [16][QST]
  float* ps = qs + k_dec_max_group * QST;       // [16][64]: the tile's scores, then probabilities (head-major)
  __shared__ float corr_s[k_dec_max_group];     // each head's rescale of its accumulators for this tile
  __shared__ float2 ml_s[k_dec_max_group];
  __shared__ float w_s[k_dec_max_group * k_dec_max_merge];
  __shared__ int ok_s[k_dec_tile];              // the tile's row was loaded (in range, block id valid)
  __shared__ int last_s;

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int split = int(blockIdx.x), kvh = int(blockIdx.y), seq = int(blockIdx.z);
  const int G = a.group;

  const decode_row row = read_decode_row(a.seq_info, a.ld_info, seq, a.n_q_rows, a.n_table * a.block_size,
                                         int64_t(a.n_splits) * a.split_len);
  const int first_row = row.first_row, n_new = row.n_new, n_past = row.n_past;
  const bool well_formed = row.well_formed;
  // Every return passes pdl_wait: a later plain launch orders only against this kernel's completion.
  if (!well_formed) {
    if (tid == 0 && split == 0 && kvh == 0) flag_bad(a.flag, BAD_SEQUENCE, seq);
    pdl_wait();
    return;
  }
  if (n_new == 0) {
    pdl_wait();
    return;
  }
  const int64_t ctx = int64_t(n_past) + 1;
  const int ns = int(min(int64_t(a.n_splits), (ctx + a.split_len - 1) / a.split_len));  // splits with positions
  if (!CLUSTER && split >= ns) {  // a cluster's blocks all take part in its merge (an empty range: nothing to add)
    pdl_wait();
    return;
  }
  // Positions fit in 32 bits (a context is far below 2^31); byte offsets into the cache do not.
  const int p_begin = int(int64_t(split) * a.split_len), p_end = int(min(ctx, int64_t(p_begin) + a.split_len));

  const int h0 = 4 * (warp % SLOTS), pos0 = PPS * (warp / SLOTS);  // this warp's heads and positions

  // Loader: this thread's 16-byte piece `col` of rows r_j = tid / CPR + j * RPP of the tile, K and V.
  const int col = tid % CPR, row0 = tid / CPR;
  uint4 kreg[NPOS], vreg[NPOS];
  unsigned rok = 0;  // bit j: row j was loaded
  auto clear = [&]() {
#pragma unroll
    for (int j = 0; j < NPOS; ++j) kreg[j] = vreg[j] = make_uint4(0u, 0u, 0u, 0u);
    rok = 0;
  };
  // The rows of the tile at t0 whose positions lie in [lo, hi). Addresses are recomputed from the kernel
  // parameters at each fetch rather than kept in registers across tiles.
  auto fetch = [&](int t0, int lo, int hi) {
    const int32_t* table = a.tables + seq * a.ld_tables;
    const int64_t head_off = int64_t(kvh) * a.c_head + col * 16;
#pragma unroll
    for (int j = 0; j < NPOS; ++j) {
      const int p = t0 + row0 + j * RPP;
      if (p >= lo && p < hi) {
        const int64_t blk = table[p / a.block_size];
        if (blk < 0 || blk >= a.n_blocks) {
          if (col == 0) flag_bad(a.flag, BAD_BLOCK_ID, blk);
        } else {
          const int64_t off = blk * a.c_block + int64_t(p % a.block_size) * a.c_slot + head_off;
          kreg[j] = __ldg(reinterpret_cast<const uint4*>(a.kcache + off));
          vreg[j] = __ldg(reinterpret_cast<const uint4*>(a.vcache + off));
          rok |= 1u << j;
        }
      }
    }
  };
  auto stash = [&]() {
#pragma unroll
    for (int j = 0; j < NPOS; ++j) {
      const int r = row0 + j * RPP;
      decode_chunk<T>(kreg[j], ks + r * KST + col * EPC);
      decode_chunk<T>(vreg[j], vs + r * HD + col * EPC);
      if (col == 0) ok_s[r] = (rok >> j) & 1u;
    }
  };

  float m = -INFINITY, l_lane = 0.0f;  // softmax warp `warp`: head warp's running max, this lane's share of the sum
  float acc[4][DPL];                   // heads h0.., dims lane * DPL.., over this warp's positions
#pragma unroll
  for (int k = 0; k < 4; ++k)
#pragma unroll
    for (int i = 0; i < DPL; ++i) acc[k][i] = 0.0f;

  // Before waiting for the kernel before this one (launch_pdl): the step's tables come from host uploads made
  // before its first kernel, and the cache rows before n_past were written by earlier steps, so the first tile's
  // old rows can be on their way while that kernel (the KV store of this step's row n_past) finishes. Every
  // kernel of a step calls pdl_trigger only after its own pdl_wait, so all kernels before that one are complete
  // here. The new row and q (RoPE's output) are read after the wait.
  clear();
  fetch(p_begin, p_begin, min(p_end, n_past));
  pdl_wait();
  pdl_trigger();
  fetch(p_begin, max(p_begin, n_past), p_end);
  const float* qrow = a.q + int64_t(first_row) * a.ldq + int64_t(kvh) * G * HD;
  for (int i = tid; i < G * HD; i += k_dec_threads) {
    const int h = i / HD, d = i - h * HD;
    qs[h * QST + (d / DPP) * QPS + d % DPP] = qrow[i];
  }
  for (int i = tid; i < k_dec_max_group * k_dec_tile; i += k_dec_threads) ps[i] = 0.0f;  // heads past G stay 0
  if (tid < k_dec_max_group) corr_s[tid] = 1.0f;

  for (int t0 = p_begin; t0 < p_end; t0 += k_dec_tile) {
    __syncthreads();  // the previous tile's readers are done (first pass: q, P and corr are set)
    stash();
    if (t0 + k_dec_tile < p_end) {  // in flight while this tile is computed
      clear();
      fetch(t0 + k_dec_tile, t0 + k_dec_tile, p_end);
    }
    __syncthreads();

    // Scores: lane = position pos0 + lane % PPS, part lane / PPS of the dims; 4 heads share each K load.
    if (h0 < G) {
      const int part = lane / PPS;
      const float* kp = ks + (pos0 + lane % PPS) * KST + part * DPP;
      const float* qp = qs + h0 * QST + part * QPS;
      float dot[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll 4
      for (int d = 0; d < DPP; d += 4) {
        const float4 kv = *reinterpret_cast<const float4*>(kp + d);
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const float4 qv = *reinterpret_cast<const float4*>(qp + j * QST + d);
          dot[j] = fmaf(qv.x, kv.x, dot[j]);
          dot[j] = fmaf(qv.y, kv.y, dot[j]);
          dot[j] = fmaf(qv.z, kv.z, dot[j]);
          dot[j] = fmaf(qv.w, kv.w, dot[j]);
        }
      }
#pragma unroll
      for (int off = PPS; off < 32; off *= 2)
#pragma unroll
        for (int j = 0; j < 4; ++j) dot[j] += __shfl_xor_sync(0xffffffffu, dot[j], off);
      if (part == 0) {
#pragma unroll
        for (int j = 0; j < 4; ++j)
          if (h0 + j < G) ps[(h0 + j) * k_dec_tile + pos0 + lane] = dot[j];
      }
    }
    __syncthreads();

    // Online softmax: warp h = head h over the tile's 64 positions; probabilities replace the scores.
    if (warp < G) {
      float* sp = ps + warp * k_dec_tile;
      const float s0 = ok_s[lane] ? sp[lane] * a.scale : -INFINITY;
      const float s1 = ok_s[lane + 32] ? sp[lane + 32] * a.scale : -INFINITY;
      const float m_new = fmaxf(m, warp_max(fmaxf(s0, s1)));
      float p0 = 0.0f, p1 = 0.0f, corr = 1.0f;
      if (m_new != -INFINITY) {  // uniform across the warp
        corr = expf(m - m_new);  // 0 while m was -inf
        p0 = expf(s0 - m_new);   // 0 for rows not loaded
        p1 = expf(s1 - m_new);
      }
      l_lane = l_lane * corr + (p0 + p1);
      m = m_new;
      sp[lane] = p0;
      sp[lane + 32] = p1;
      if (lane == 0) corr_s[warp] = corr;
    }
    __syncthreads();

    // P.V: lane = dims lane * DPL..; 4 heads share each V load. Heads past G have probabilities 0 and corr 1.
    if (h0 < G) {
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const float c = corr_s[h0 + j];
#pragma unroll
        for (int i = 0; i < DPL; ++i) acc[j][i] *= c;
      }
      const float* pr = ps + h0 * k_dec_tile + pos0;
      const float* vr = vs + pos0 * HD + lane * DPL;
#pragma unroll 4
      for (int p = 0; p < PPS; p += 2) {
        float w[4][2];
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const float2 x = *reinterpret_cast<const float2*>(pr + j * k_dec_tile + p);
          w[j][0] = x.x, w[j][1] = x.y;
        }
#pragma unroll
        for (int u = 0; u < 2; ++u) {
          float v[DPL];
          if constexpr (DPL == 4) {
            const float4 x = *reinterpret_cast<const float4*>(vr + (p + u) * HD);
            v[0] = x.x, v[1] = x.y, v[2] = x.z, v[3] = x.w;
          } else {
            const float2 x = *reinterpret_cast<const float2*>(vr + (p + u) * HD);
            v[0] = x.x, v[1] = x.y;
          }
#pragma unroll
          for (int j = 0; j < 4; ++j)
#pragma unroll
            for (int i = 0; i < DPL; ++i) acc[j][i] = fmaf(w[j][u], v[i], acc[j][i]);
        }
      }
    }
  }

  if (warp < G) {
    const float l = warp_sum(l_lane);
    if (lane == 0) ml_s[warp] = make_float2(m, l);
  }
  __syncthreads();  // every tile is done: K's space holds each warp's accumulators [warp][4][HD]
  float* red = ks;
  if (h0 < G) {
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      float* r = red + (warp * 4 + j) * HD + lane * DPL;
      if constexpr (DPL == 4) *reinterpret_cast<float4*>(r) = make_float4(acc[j][0], acc[j][1], acc[j][2], acc[j][3]);
      else *reinterpret_cast<float2*>(r) = make_float2(acc[j][0], acc[j][1]);
    }
  }
  __syncthreads();

  constexpr int n_slices = k_dec_warps / SLOTS;
  const int pair_idx = seq * a.n_kv_heads + kvh;
  float* out = a.out + int64_t(first_row) * a.ldo + int64_t(kvh) * G * HD;
  // Element i (head i / HD) of the block's accumulators: its slices summed in order.
  auto slices_sum = [&](int i) {
    const int h = i / HD, d = i - h * HD;
    float v = 0.0f;
    for (int sl = 0; sl < n_slices; ++sl) v += red[(sl * 4 * SLOTS + h) * HD + d];
    return v;
  };
  if constexpr (CLUSTER) {
    // The block's partial stays in its shared memory (V's tile space, free now) for the cluster's merge.
    float* part = vs;
    for (int i = tid; i < G * HD; i += k_dec_threads) part[i] = slices_sum(i);
    merge_in_cluster<HD>(part, ml_s, G, out, w_s);
    return;
  }
  float* my_acc = a.part_acc + (int64_t(pair_idx) * a.n_splits + split) * G * HD;
  for (int i = tid; i < G * HD; i += k_dec_threads) {
    const float s = slices_sum(i);
    if (ns == 1) {
      const float l = ml_s[i / HD].y;
      out[i] = s * (l > 0.0f ? 1.0f / l : 0.0f);
    } else {
      __stcg(my_acc + i, s);
    }
  }
  if (ns == 1) return;
  if (tid < G) __stcg(a.part_ml + (int64_t(pair_idx) * a.n_splits + split) * G + tid, ml_s[tid]);

  // Merges: the last block of this split's chunk, then the last chunk-merger of the (sequence, KV head).
  int32_t* ctr = a.counters + int64_t(pair_idx) * (1 + a.max_chunks);
  const int chunk = split / a.chunk, n_chunks = (ns + a.chunk - 1) / a.chunk;
  const int in_chunk = min(a.chunk, ns - chunk * a.chunk);
  if (!arrive(ctr + 1 + chunk, in_chunk, &last_s)) return;
  const float* split_acc = a.part_acc + (int64_t(pair_idx) * a.n_splits + int64_t(chunk) * a.chunk) * G * HD;
  const float2* split_ml = a.part_ml + (int64_t(pair_idx) * a.n_splits + int64_t(chunk) * a.chunk) * G;
  if (n_chunks == 1) {
    merge_partials<HD>(split_acc, split_ml, in_chunk, G, nullptr, nullptr, out, w_s, ml_s);
    return;
  }
  const int64_t cslot = int64_t(pair_idx) * a.max_chunks;
  merge_partials<HD>(split_acc, split_ml, in_chunk, G, a.chunk_acc + (cslot + chunk) * G * HD,
                     a.chunk_ml + (cslot + chunk) * G, nullptr, w_s, ml_s);
  if (!arrive(ctr, n_chunks, &last_s)) return;
  merge_partials<HD>(a.chunk_acc + cslot * G * HD, a.chunk_ml + cslot * G, n_chunks, G, nullptr, nullptr, out, w_s,
                     ml_s);
}

template <dtype T, int HD, int SLOTS, bool CLUSTER>
void launch_decode(const decode_args& a, const dim3& grid, stream_state& s) {
  auto* kernel = paged_decode_kernel<T, HD, SLOTS, CLUSTER>;
  const size_t smem = decode_smem_bytes(HD, 8 / SLOTS);
  static std::atomic<uint64_t> opted_in{0};
  opt_in_once(kernel, smem, CLUSTER, opted_in, "attention_paged decode: shared memory / cluster size");
  // CLUSTER: one cluster per (sequence, KV head), all its splits.
  launch_pdl_ex(kernel, grid, k_dec_threads, smem, s, "attention_paged decode",
                launch_extras{CLUSTER ? grid.x : 0u, -1}, a);
}

template <dtype T, int HD, bool CLUSTER>
void launch_for_group(const decode_args& a, const dim3& grid, stream_state& s) {
  if (a.group <= 4) launch_decode<T, HD, 1, CLUSTER>(a, grid, s);
  else if (a.group <= 8) launch_decode<T, HD, 2, CLUSTER>(a, grid, s);
  else launch_decode<T, HD, 4, CLUSTER>(a, grid, s);
}

template <dtype T, int HD>
void launch_for_group(const decode_args& a, const dim3& grid, bool cluster, stream_state& s) {
  if (cluster) launch_for_group<T, HD, true>(a, grid, s);
  else launch_for_group<T, HD, false>(a, grid, s);
}

}  // namespace

decode_path decode_attention_path() {
  return decode_path(env_choice("AUTOGLM_CUDA_DECODE_ATTENTION", {"mma", "split", "flash"}));  // decode_path's order
}

bool decode_cluster_enabled() {
  static const bool on = env_integer("AUTOGLM_CUDA_DECODE_CLUSTER", 1, 0, 1) == 1;
  return on;
}

bool launch_paged_decode(const flash_args& fa, dtype cache_type, int n_kv_heads, int64_t n_seqs, stream_state& s) {
  note_decode_kernel(s, false);
  const int hd = fa.head_dim, G = fa.group;
  if (hd != 64 && hd != 128) return false;
  if (G < 1 || G > k_dec_max_group) return false;
  auto aligned = [](uint64_t v) { return v % 16 == 0; };
  if (!aligned(reinterpret_cast<uintptr_t>(fa.kcache)) || !aligned(reinterpret_cast<uintptr_t>(fa.vcache)) ||
      !aligned(uint64_t(fa.c_block)) || !aligned(uint64_t(fa.c_slot)) || !aligned(uint64_t(fa.c_head)))
    return false;
  if (n_seqs > 65535 || n_kv_heads > 65535 || decode_smem_bytes(hd, 8) > max_shared_bytes(s)) return false;
  const decode_path path = decode_attention_path();
  if (path == decode_path::FLASH) return false;
  if (path == decode_path::MMA && launch_paged_decode_mma(fa, cache_type, n_kv_heads, n_seqs, s)) {
    note_decode_kernel(s, true);  // the next q|k|v GEMV's shared-memory split (linear.cu)
    return true;
  }

  decode_args a{};
  static_cast<paged_view&>(a) = fa;
  a.n_kv_heads = n_kv_heads;
  a.scale = fa.scale;

  // Splits: about two blocks per SM over all (sequence, KV head) pairs, at most one per tile of the longest
  // context; then whole tiles per split. Over k_dec_one_level splits, chunks of ~sqrt(n) splits (at most 16
  // partials per merge, two levels).
  const int64_t pairs = n_seqs * n_kv_heads;
  const int64_t tiles = (std::max<int64_t>(fa.max_context, 1) + k_dec_tile - 1) / k_dec_tile;
  int64_t n_splits = (2 * int64_t(sm_count(s)) + pairs - 1) / pairs;
  n_splits = std::max<int64_t>(1, std::min({n_splits, tiles, int64_t(k_dec_max_splits)}));
  int64_t split_len = int64_t(1) << 40;  // one split: covers any context
  int chunk = 1, max_chunks = 1;
  if (n_splits > 1) {
    split_len = (fa.max_context + n_splits - 1) / n_splits;
    split_len = (split_len + k_dec_tile - 1) / k_dec_tile * k_dec_tile;
    n_splits = (fa.max_context + split_len - 1) / split_len;
    chunk = int(n_splits);
    if (n_splits > k_dec_one_level) {
      chunk = int(std::ceil(std::sqrt(double(n_splits))));
      while (int64_t(chunk) * chunk < n_splits) ++chunk;
    }
    max_chunks = int((n_splits + chunk - 1) / chunk);
    if (pairs * (1 + max_chunks) > int64_t(k_split_counters)) {  // far more pairs than this needs; be safe
      n_splits = 1;
      split_len = int64_t(1) << 40;
      chunk = max_chunks = 1;
    }
  }
  // On sm_90, splits that fit one cluster per (sequence, KV head) merge in it (merge_in_cluster), while the whole
  // grid has at most a block per SM. Measured on an H100: clusters of 16 over longer contexts (more splits merged
  // in two levels, or fewer splits of several tiles) and 8 sequences at context 2,048 ran slower than the global
  // merges (12.1 vs 11.4 us, 15.7 vs 13.5, 46 vs 25), so those keep them.
  // A cluster's blocks must fit one GPC at once: 16 at two blocks per SM take 8 SMs, which every Hopper GPC has;
  // F32 caches at head_dim 128 run one block per SM, so 8 there.
  const int max_cluster = cache_type == dtype::F32 && hd == 128 ? 8 : k_decode_max_cluster;
  const bool cluster = n_splits >= 2 && n_splits <= max_cluster && pairs * n_splits <= sm_count(s) &&
                       compute_major(s) >= 9 && decode_cluster_enabled();
  a.n_splits = int(n_splits);
  a.split_len = split_len;
  a.chunk = chunk;
  a.max_chunks = max_chunks;
  if (n_splits > 1 && !cluster) {
    auto round = [](size_t b) { return (b + 255) / 256 * 256; };
    const size_t acc = round(size_t(pairs) * size_t(n_splits) * size_t(G) * size_t(hd) * sizeof(float));
    const size_t ml = round(size_t(pairs) * size_t(n_splits) * size_t(G) * sizeof(float2));
    const size_t cacc = round(size_t(pairs) * size_t(max_chunks) * size_t(G) * size_t(hd) * sizeof(float));
    const size_t cml = round(size_t(pairs) * size_t(max_chunks) * size_t(G) * sizeof(float2));
    auto* ws = static_cast<uint8_t*>(workspace(s, acc + ml + cacc + cml, "attention_paged decode"));
    a.part_acc = reinterpret_cast<float*>(ws);
    a.part_ml = reinterpret_cast<float2*>(ws + acc);
    a.chunk_acc = reinterpret_cast<float*>(ws + acc + ml);
    a.chunk_ml = reinterpret_cast<float2*>(ws + acc + ml + cacc);
    a.counters = split_counters(s);
  }

  const dim3 grid{unsigned(n_splits), unsigned(n_kv_heads), unsigned(n_seqs)};
  if (hd == 128) {
    if (cache_type == dtype::F32) launch_for_group<dtype::F32, 128>(a, grid, cluster, s);
    else if (cache_type == dtype::F16) launch_for_group<dtype::F16, 128>(a, grid, cluster, s);
    else launch_for_group<dtype::BF16, 128>(a, grid, cluster, s);
  } else {
    if (cache_type == dtype::F32) launch_for_group<dtype::F32, 64>(a, grid, cluster, s);
    else if (cache_type == dtype::F16) launch_for_group<dtype::F16, 64>(a, grid, cluster, s);
    else launch_for_group<dtype::BF16, 64>(a, grid, cluster, s);
  }
  if (cudaPeekAtLastError() != cudaSuccess)
    check_launch("attention_paged decode",
                 "seqs=" + std::to_string(n_seqs) + " kv_heads=" + std::to_string(n_kv_heads) + " group=" +
                     std::to_string(G) + " head_dim=" + std::to_string(hd) + " max_context=" +
                     std::to_string(fa.max_context) + " splits=" + std::to_string(n_splits));
  return true;
}

}  // namespace autoglm::cuda
