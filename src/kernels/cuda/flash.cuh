// kernels/cuda/flash.cuh: the flash-style attention tile both attention ops run (internal to kernels/cuda).
//
// A block of 4 warps owns 16 query vectors: `br` consecutive new rows of one sequence (or image segment) times
// `bh` query heads of one KV head's group (decode with GLM's 16 heads per KV head: 1 row x 16 heads; MHA: 16 rows
// x 1 head), and one range of key positions (a split). It walks that range in tiles of 32 positions: the tile's
// K and V rows are decoded to F32 in shared memory once and serve all 16 vectors; each lane scores one position
// per vector, the warp keeps a running max / sum per vector (online softmax) and accumulates P.V with each lane
// owning head dims lane + 32c. Arithmetic is F32 throughout (exact decode of F16/BF16 caches), so results are
// within F32 rounding of the CPU's (a different summation order, not a different precision).
//
// Causal (paged): the row at new-token index i of a sequence with n_past cached tokens sees positions
// [0, n_past + i]. Dense: every row of a segment sees the whole segment. Positions past what a tile's rows may
// see are never loaded (a cache slot no sequence owns may hold anything, NaN included).
//
// Splits (decode over long contexts, GLM-4.1V has only 2 KV heads): with n_splits > 1 each block writes its
// unnormalized partial (max, sum, acc) per (row, head, split) and combine_splits merges them.
#pragma once

#include <string>
#include <vector>

#include "kernels/cuda/device_util.cuh"

namespace autoglm::cuda {

constexpr int k_fa_threads = 128;
constexpr int k_fa_warps = 4;
constexpr int k_fa_vecs = 16;   // query vectors per block
constexpr int k_fa_vpw = 4;     // per warp
constexpr int k_fa_keys = 32;   // positions per tile: one per lane when scoring
constexpr int k_fa_max_splits = 64;

// The rows an attention call reads and writes, and (paged) its batch: q F32 rows and the out rows, the query heads
// per KV head, the bad-index flag; seq_info I32 [n_seqs, ld_info] (first row, n new, n past), block tables I32
// [n_seqs, ld_tables] (n_table entries used), both caches with their byte strides. The decode kernels
// (attention_decode*.cu) take this part of flash_args as it is.
struct paged_view {
  const float* q;
  int64_t ldq;
  float* out;
  int64_t ldo;
  int64_t n_q_rows;  // rows of q and out
  int group;         // query heads per KV head
  int32_t* flag;
  const int32_t* seq_info;
  int64_t ld_info;
  const int32_t* tables;
  int64_t ld_tables, n_table;
  const uint8_t* kcache;
  const uint8_t* vcache;
  int64_t c_block, c_slot, c_head;  // byte strides of both caches
  int64_t n_blocks;
  int block_size;
};

struct flash_args : paged_view {
  int n_heads, head_dim, bh, br, n_head_tiles;
  float scale;
  int n_splits;
  int64_t split_len;   // positions per split (n_splits == 1: covers any context)
  int64_t max_context;  // host's bound on n_past + n_new (splits only cover this far)
  float* part_o;        // [n_q_rows, n_heads, n_splits, HDP] when n_splits > 1
  float* part_ml;       // [n_q_rows, n_heads, n_splits, 2]
  // Dense: q/k/v rows; segments I32 [n_seg + 1]. qkv_type BF16: q, k and v point at BF16 rows (only the tensor-core
  // kernels, through dense_bf16_heads, take those; ld* are then in BF16 elements).
  dtype qkv_type = dtype::F32;
  // Dense, tensor-core kernels only (tc_attention_args): out points at BF16 rows, ldo in BF16 elements.
  bool out_bf16 = false;
  const float* k;
  int64_t ldk;
  const float* v;
  int64_t ldv;
  const int32_t* segments;
};

// Shared memory of one block for NCH chunks of 32 head dims.
inline size_t flash_smem_bytes(int nch) {
  const size_t hdp = size_t(nch) * 32;
  return sizeof(float) * (k_fa_vecs * hdp + k_fa_keys * (hdp + 1) + k_fa_keys * hdp);
}

// The sequence (or segment) a block works on; false when it is malformed (flagged) or has nothing for this block.
template <bool PAGED>
__device__ inline bool flash_sequence(const flash_args& a, int seq, int64_t& first_row, int64_t& n_new,
                                      int64_t& n_past) {
  if constexpr (PAGED) {
    first_row = a.seq_info[seq * a.ld_info];
    n_new = a.seq_info[seq * a.ld_info + 1];
    n_past = a.seq_info[seq * a.ld_info + 2];
    const bool ok = first_row >= 0 && n_new >= 0 && n_past >= 0 && first_row + n_new <= a.n_q_rows &&
                    n_past + n_new <= a.n_table * a.block_size &&
                    (a.n_splits == 1 || n_past + n_new <= a.max_context);
    if (!ok) {
      if (threadIdx.x == 0 && blockIdx.x == 0 && blockIdx.z == 0) flag_bad(a.flag, BAD_SEQUENCE, seq);
      return false;
    }
  } else {
    const int64_t s0 = a.segments[seq], s1 = a.segments[seq + 1];
    if (s0 < 0 || s1 < s0 || s1 > a.n_q_rows) {
      if (threadIdx.x == 0 && blockIdx.x == 0 && blockIdx.z == 0) flag_bad(a.flag, BAD_SEGMENT, seq);
      return false;
    }
    first_row = s0;
    n_new = s1 - s0;
    n_past = 0;
  }
  return true;
}

// grid: x = row tiles of `br` rows, y = sequence / segment, z = (KV head, head tile, split).
template <bool PAGED, dtype T, int NCH>
__global__ void __launch_bounds__(k_fa_threads) flash_tile_kernel(const flash_args a) {
  constexpr int HDP = NCH * 32;
  extern __shared__ float smem[];
  float* qs = smem;                        // [16][HDP] query vectors (zero past head_dim)
  float* ks = qs + k_fa_vecs * HDP;        // [32][HDP + 1] keys (odd stride: lanes read columns conflict-free)
  float* vs = ks + k_fa_keys * (HDP + 1);  // [32][HDP] values
  __shared__ int64_t koff[k_fa_keys], voff[k_fa_keys];  // byte offsets of the tile's rows; -1: not loaded

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int seq = blockIdx.y;
  const int split = int(blockIdx.z) % a.n_splits;
  const int ht = (int(blockIdx.z) / a.n_splits) % a.n_head_tiles;
  const int kvh = int(blockIdx.z) / (a.n_splits * a.n_head_tiles);

  int64_t first_row, n_new, n_past;
  if (!flash_sequence<PAGED>(a, seq, first_row, n_new, n_past)) return;
  const int64_t row0 = int64_t(blockIdx.x) * a.br;
  if (row0 >= n_new) return;
  const int nr = int(min(int64_t(a.br), n_new - row0));
  const int64_t kv_len = PAGED ? n_past + row0 + nr : n_new;  // positions any row of this tile may see
  const int64_t p_begin = int64_t(split) * a.split_len;
  const int64_t p_end = min(kv_len, p_begin + a.split_len);
  if (p_begin >= p_end) return;

  const int h_first = kvh * a.group + ht * a.bh;
  const int h_count = min(a.bh, a.group - ht * a.bh);
  for (int idx = tid; idx < k_fa_vecs * HDP; idx += k_fa_threads) {
    const int vv = idx / HDP, d = idx - vv * HDP;
    const int ri = vv / a.bh, hi = vv - ri * a.bh;
    float val = 0.0f;
    if (ri < nr && hi < h_count && d < a.head_dim)
      val = a.q[(first_row + row0 + ri) * a.ldq + int64_t(h_first + hi) * a.head_dim + d];
    qs[idx] = val;
  }

  // This warp's vectors: v_j = warp + 4 j.
  float m[k_fa_vpw], l[k_fa_vpw], acc[k_fa_vpw][NCH];
  int64_t limit[k_fa_vpw];  // exclusive end of the positions vector j may see (0: not a real vector)
#pragma unroll
  for (int j = 0; j < k_fa_vpw; ++j) {
    const int vv = warp + k_fa_warps * j, ri = vv / a.bh, hi = vv - ri * a.bh;
    const bool valid = ri < nr && hi < h_count;
    limit[j] = !valid ? 0 : (PAGED ? n_past + row0 + ri + 1 : n_new);
    m[j] = -INFINITY;
    l[j] = 0.0f;
#pragma unroll
    for (int c = 0; c < NCH; ++c) acc[j][c] = 0.0f;
  }

  for (int64_t t0 = p_begin; t0 < p_end; t0 += k_fa_keys) {
    const int nk = int(min(int64_t(k_fa_keys), p_end - t0));
    __syncthreads();  // the previous tile's readers are done (and qs is complete on the first pass)
    if (tid < k_fa_keys) {
      int64_t ko = -1, vo = -1;
      if (tid < nk) {
        const int64_t p = t0 + tid;
        if constexpr (PAGED) {
          const int64_t blk = a.tables[seq * a.ld_tables + p / a.block_size];
          if (blk < 0 || blk >= a.n_blocks) {
            flag_bad(a.flag, BAD_BLOCK_ID, blk);
          } else {
            ko = blk * a.c_block + (p % a.block_size) * a.c_slot + int64_t(kvh) * a.c_head;
            vo = ko;
          }
        } else {
          ko = ((first_row + p) * a.ldk + int64_t(kvh) * a.head_dim) * int64_t(sizeof(float));
          vo = ((first_row + p) * a.ldv + int64_t(kvh) * a.head_dim) * int64_t(sizeof(float));
        }
      }
      koff[tid] = ko;
      voff[tid] = vo;
    }
    __syncthreads();
    const uint8_t* kb = PAGED ? a.kcache : reinterpret_cast<const uint8_t*>(a.k);
    const uint8_t* vb = PAGED ? a.vcache : reinterpret_cast<const uint8_t*>(a.v);
    for (int idx = tid; idx < k_fa_keys * HDP; idx += k_fa_threads) {
      const int p = idx / HDP, d = idx - p * HDP;
      float kv = 0.0f, vv = 0.0f;
      if (koff[p] >= 0 && d < a.head_dim) {
        kv = load_elem<T>(kb + koff[p], d);
        vv = load_elem<T>(vb + voff[p], d);
      }
      ks[p * (HDP + 1) + d] = kv;
      vs[p * HDP + d] = vv;
    }
    __syncthreads();

    // Scores: lane = position t0 + lane, every vector of this warp.
    float s[k_fa_vpw];
#pragma unroll
    for (int j = 0; j < k_fa_vpw; ++j) s[j] = 0.0f;
    const float* krow = ks + lane * (HDP + 1);
    for (int d = 0; d < HDP; ++d) {
      const float kd = krow[d];
#pragma unroll
      for (int j = 0; j < k_fa_vpw; ++j) s[j] = fmaf(qs[(warp + k_fa_warps * j) * HDP + d], kd, s[j]);
    }
    float prob[k_fa_vpw];
#pragma unroll
    for (int j = 0; j < k_fa_vpw; ++j) {
      const int64_t pos = t0 + lane;
      const bool ok = lane < nk && pos < limit[j] && koff[lane] >= 0;
      const float sc = ok ? s[j] * a.scale : -INFINITY;
      const float m_new = fmaxf(m[j], warp_max(sc));
      float p = 0.0f, corr = 1.0f;
      if (m_new != -INFINITY) {  // uniform across the warp
        corr = expf(m[j] - m_new);  // 0 when m was -inf
        p = expf(sc - m_new);       // 0 for masked positions
      }
      l[j] = l[j] * corr + warp_sum(p);
      m[j] = m_new;
#pragma unroll
      for (int c = 0; c < NCH; ++c) acc[j][c] *= corr;
      prob[j] = p;
    }
    // P.V: position by position, the probability broadcast from the lane that scored it.
    for (int p = 0; p < nk; ++p) {
      float vv[NCH];
#pragma unroll
      for (int c = 0; c < NCH; ++c) vv[c] = vs[p * HDP + lane + 32 * c];
#pragma unroll
      for (int j = 0; j < k_fa_vpw; ++j) {
        const float pj = __shfl_sync(0xffffffffu, prob[j], p);
#pragma unroll
        for (int c = 0; c < NCH; ++c) acc[j][c] = fmaf(pj, vv[c], acc[j][c]);
      }
    }
  }

#pragma unroll
  for (int j = 0; j < k_fa_vpw; ++j) {
    if (limit[j] == 0) continue;
    const int vv = warp + k_fa_warps * j, ri = vv / a.bh, hi = vv - ri * a.bh;
    const int64_t row = first_row + row0 + ri;
    const int head = h_first + hi;
    if (a.n_splits == 1) {
      const float inv = l[j] > 0.0f ? 1.0f / l[j] : 0.0f;
      float* o = a.out + row * a.ldo + int64_t(head) * a.head_dim;
#pragma unroll
      for (int c = 0; c < NCH; ++c) {
        const int d = lane + 32 * c;
        if (d < a.head_dim) o[d] = acc[j][c] * inv;
      }
    } else {
      const int64_t slot = (row * a.n_heads + head) * a.n_splits + split;
#pragma unroll
      for (int c = 0; c < NCH; ++c) a.part_o[slot * HDP + lane + 32 * c] = acc[j][c];
      if (lane == 0) {
        a.part_ml[2 * slot] = m[j];
        a.part_ml[2 * slot + 1] = l[j];
      }
    }
  }
}

// attention_dense_tc.cu: the tensor-core dense kernel (bf16 products, F32 accumulation) for head_dim 32, 64, 96 or
// 128 when the device has the shared memory for its tiles; grid over 64-row tiles x segments x heads.
bool dense_tensor_cores_fit(int head_dim, const stream_state& s);
void launch_dense_tensor_cores(const flash_args& a, const stream_state& s, int64_t n_seg, const std::string& sizes);
// attention_dense_mma.cu: the fused mma.sync flash kernel (bf16 Q, K, V, P; F32 scores, softmax and accumulation)
// for head_dim 64 or 128, blocks of `warps` (4 or 8) warps of 16 query rows; grid over row tiles x segments x heads.
bool dense_mma_fits(int head_dim, int warps, const stream_state& s);
void launch_dense_mma(const flash_args& a, int64_t n_seg, int warps, stream_state& s, const std::string& sizes);
// The same kernel, causal, for one sequence's prefill chunk over bf16 head-major copies (attention_paged_gemm.cu
// makes them): query row r (position n_past + r) sees keys 0 .. n_past + r; query head h reads K/V head
// h / (heads / kv_heads). head_dim 64 or 128 (dense_mma_fits).
struct causal_mma_args {
  const uint16_t* q;  // bf16 [heads, q_rows, head_dim]
  const uint16_t* k;  // bf16 [kv_heads, kv_rows, head_dim] each, kv_rows >= n_past + q_rows
  const uint16_t* v;
  int64_t q_rows, kv_rows, n_past;
  int heads, kv_heads, head_dim;
  float scale;
  float* out;  // F32 rows (stride ldo), head h at columns h * head_dim ..
  int64_t ldo;
  int32_t* flag;
};
void launch_causal_mma(const causal_mma_args& c, int warps, stream_state& s, const std::string& sizes);
// The bf16 head-major copies both tensor-core dense kernels read: Q, K, V [heads, n, head_dim] one after the other
// in the stream's workspace (head_dim 64 or 128).
const uint16_t* dense_bf16_heads(const flash_args& a, stream_state& s, const std::string& sizes);
// What the tensor-core flash kernels (mma.sync and wgmma) take, dense or causal, and how both fill it: dense from
// the F32 operands' flash_args and their bf16 copies (dense_bf16_heads), causal from causal_mma_args (which must have
// heads a multiple of kv_heads: checked, `what` names the caller).
struct tc_attention_args {
  const uint16_t* q;  // bf16 [heads, q_rows, head_dim]
  const uint16_t* k;  // bf16 [heads / group, kv_rows, head_dim] each
  const uint16_t* v;
  int64_t q_rows, kv_rows;
  int group;  // query heads per K/V head
  float* out;
  int64_t ldo;
  bool out_bf16;            // out points at BF16 rows (ldo in BF16 elements): dense attention into a GEMM's input
  const int32_t* segments;  // dense: I32 [n_seg + 1] over rows (q_rows == kv_rows); causal: unused
  int64_t n_past;           // causal: query row r sits at position n_past + r and sees keys 0 .. n_past + r
  float scale_log2;         // scale * log2(e): scores in log2 units, so exp2 replaces exp
  int32_t* flag;
};
tc_attention_args dense_tc_args(const flash_args& a, const uint16_t* qkv);
tc_attention_args causal_tc_args(const causal_mma_args& c, const char* what);
// sm90a/attention_dense_wgmma.cu: the dense and causal attention above on Hopper's wgmma (head_dim 128), for compute
// capability 9.0 devices only, with key tiles of 128 or 64, or warp-specialized (a loading warpgroup, two computing
// ones taking turns; 128-key tiles), its loads by cp.async or by the tensor memory accelerator (TMA).
enum class wgmma_variant { K128, K64, WS128, WS128_TMA };
bool dense_wgmma_fits(int head_dim, wgmma_variant v, const stream_state& s);
void launch_dense_wgmma(const flash_args& a, int64_t n_seg, wgmma_variant v, stream_state& s,
                        const std::string& sizes);
void launch_causal_wgmma(const causal_mma_args& c, wgmma_variant v, stream_state& s, const std::string& sizes);
// attention_paged_gemm.cu: the sequences of a paged batch with at least k_gemm_min_rows new rows (prefill chunks),
// causal attention on tensor cores (bf16 Q, K, V, P; F32 scores and softmax): with `wgmma` set, that variant of the
// causal wgmma kernel where the device and head dim allow, else the causal mma kernel with blocks of `mma_warps`
// warps (4 or 8) where the head dim allows, else (or mma_warps 0) through cuBLAS. Returns the batch's seq_info as
// the host read it, with those sequences' new rows set to 0 (what the flash kernel must still do); *n_done counts
// them.
constexpr int64_t k_gemm_min_rows = 128;
std::vector<int32_t> paged_prefill_gemm(const flash_args& a, dtype cache_type, int n_kv_heads, int64_t n_seqs,
                                        int mma_warps, const wgmma_variant* wgmma, stream_state& s,
                                        const std::string& sizes, int64_t* n_done);
// attention_decode.cu: a batch whose sequences each have one new row (the caller knows rows == sequences) in one
// launch: on tensor cores over a BF16 cache at bf16 GEMM precision (attention_decode_mma.cu), else split-K over
// positions in F32, all query heads of a KV head per block, the last block merging. Returns false,
// launching nothing, for shapes it does not take (head_dim other than 64/128, more than 16 query heads per KV head,
// cache rows not 16-byte aligned, AUTOGLM_CUDA_DECODE_ATTENTION=flash); the flash path runs those.
bool launch_paged_decode(const flash_args& a, dtype cache_type, int n_kv_heads, int64_t n_seqs, stream_state& s);
// attention_dense_gemm.cu: the same through cuBLAS (bf16 Q, K, V, P; F32 scores and softmax), segment by segment.
void launch_dense_gemm(const flash_args& a, const int32_t* segments_dev, int64_t n_seg, stream_state& s,
                       const std::string& sizes);

// Launches flash_tile_kernel for head_dim's chunk count; throws naming `op` and `sizes` on a launch error.
template <bool PAGED, dtype T>
void launch_flash(const flash_args& a, dim3 grid, const stream_state& s, const char* op, const std::string& sizes) {
  const int nch = (a.head_dim + 31) / 32;
  AG_CHECK(nch >= 1 && nch <= 8, std::string(op) + ": head_dim " + std::to_string(a.head_dim) +
                                     " over the CUDA kernels' limit of 256");
  const int use = nch <= 4 ? nch : 8;
  const size_t smem = flash_smem_bytes(use);
  AG_CHECK(smem <= max_shared_bytes(s), std::string(op) + ": head_dim " + std::to_string(a.head_dim) +
                                             " needs more shared memory than the device has");
  auto run = [&](auto kernel) {
    if (smem > 48 * 1024)
      check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)), op);
    kernel<<<grid, k_fa_threads, smem, stream_of(s)>>>(a);
  };
  switch (use) {
    case 1: run(flash_tile_kernel<PAGED, T, 1>); break;
    case 2: run(flash_tile_kernel<PAGED, T, 2>); break;
    case 3: run(flash_tile_kernel<PAGED, T, 3>); break;
    case 4: run(flash_tile_kernel<PAGED, T, 4>); break;
    default: run(flash_tile_kernel<PAGED, T, 8>); break;
  }
  check_launch(op, sizes);
}

}  // namespace autoglm::cuda
