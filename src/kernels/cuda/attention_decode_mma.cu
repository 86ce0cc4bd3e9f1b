// kernels/cuda/attention_decode_mma.cu: a batch of decodes (one new row per sequence) over a BF16 paged cache on
// tensor cores, in one launch: the default for BF16 caches at bf16 GEMM precision from
// AUTOGLM_CUDA_DECODE_MMA_MIN_CONTEXT positions (2,048); attention_decode.cu's F32 kernel takes shorter batches,
// F16/F32 caches, SPLIT precision, and AUTOGLM_CUDA_DECODE_ATTENTION=split.
//
// Why: GLM-4.1V has 16 query heads per KV head, exactly the 16 rows of an m16n8k16 mma, so a warp computes all of a
// KV head's heads against a 64-key tile of K and V with 128 mma instructions (S = Q K^T, then P.V) where the F32
// kernel spends a whole block of 16 warps and four barriers. A block of W warps can then work on W tiles at once,
// each warp with its own online softmax, and a (sequence, KV head) needs only ~ctx / (64 W) blocks: at the
// phone-agent step's ~4,900 positions 16 blocks of 5 warps, one thread-block cluster, merged through distributed
// shared memory, where the F32 kernel runs 77 one-tile blocks merged in two global levels. H100, one call replayed
// from a graph (cuda_perf, 2026-12-07): 9.05 against 17.0 us at 4,900 positions, 7.97 / 11.39 at 2,048, 20.6 / 28.4
// at 16,384, 8.74 / 8.58 at 512; in the model the phone-agent step's decode 6.80 -> 6.66 ms per token (6.62 with the
// GEMV before it in the largest shared-memory split, smem_carveout), but decode at 512 positions 152.9 -> 150.8
// tokens/s, hence the threshold below.
//
// Grid (block, KV head, sequence); block b owns positions [b split_len, (b + 1) split_len) (whole 64-key tiles), warp
// w its tiles w, w + W, ... Per warp tile, through cp.async into the warp's own shared-memory tile (rows padded by 16
// bytes: conflict-free ldmatrix): positions past the context, or behind a bad block id (flagged), are zero-filled
// and masked to -inf. Rows before n_past were written by earlier steps and their block ids by host uploads before
// this step's first kernel, so the first tile's old rows are requested before the programmatic-dependent wait
// (pdl_wait); the new row (KV store) and q (RoPE) after it. Q (the group's heads, rows past G zero) is rounded to bf16
// once per block and kept as A fragments; S, the online softmax in log2 units, P rounded to bf16, P.V: the fragment
// code of the dense mma flash kernel (flash_fragments.cuh). Each warp leaves (max, sum, O) in its tile space; the
// block merges its warps in warp order, then the cluster merges its blocks in rank order (merge_in_cluster), so the
// bits do not depend on timing. Q, K, V and P are bf16, everything else F32: the precision of every tensor-core
// attention path here (tests: a bf16 bound against the CPU).
#include <algorithm>
#include <atomic>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

#include "kernels/cuda/attention_decode.cuh"
#include "kernels/cuda/flash_fragments.cuh"
#include "kernels/cuda/mma.cuh"
#include "kernels/cuda/register.h"

namespace autoglm::cuda {

namespace {

constexpr int k_md_keys = 64;         // keys per warp tile
constexpr int k_md_rows = 16;         // the mma's rows: query heads of a KV head (rows past G are zero)
constexpr int k_md_max_passes = 4;    // tiles one warp walks at most; longer contexts take the F32 kernel
constexpr int k_md_max_threads = 256;

struct mma_decode_args : paged_view {
  float scale_log2;   // scale * log2(e)
  int64_t split_len;  // positions per block (whole tiles); grid.x blocks per (sequence, KV head)
};

// Shared memory (bf16 elements): Q [16][LD], then per warp K [64][LD] and V [64][LD]. After its last tile a warp's
// K/V space holds its partial: O [16][HD] F32 and (max, sum) [16]; warp 0's also the block's merged O [16][HD] after
// that (a cluster's blocks read it from there).
template <int HD>
struct md_geometry {
  static constexpr int ld = HD + 8;
  static constexpr int q_elems = k_md_rows * ld;
  static constexpr int tile_elems = 2 * k_md_keys * ld;
  static constexpr int max_warps = HD == 128 ? 6 : 8;  // 213 KB at HD 128
  static constexpr size_t part_bytes = size_t(k_md_rows) * HD * sizeof(float);
  static constexpr size_t bytes(int warps) { return size_t(q_elems + warps * tile_elems) * 2; }
  static_assert(2 * part_bytes + k_md_rows * sizeof(float2) <= size_t(tile_elems) * 2, "partials fit a warp tile");
};

// The 64 rows of the tile at p0 as this lane sees them: rows lane and lane + 32, their byte offsets of the KV head's
// row in the caches (-1: zero-filled, not read), and the tile's loaded rows as a mask (bit r: row r).
struct tile_rows {
  int64_t off[2];
  uint64_t mask;
};
__device__ inline tile_rows locate_rows(const mma_decode_args& a, int seq, int kvh, int p0, int p_end) {
  const int lane = threadIdx.x & 31;
  const int32_t* table = a.tables + seq * a.ld_tables;
  tile_rows t;
  bool ok[2];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int p = p0 + lane + 32 * i;
    t.off[i] = -1;
    ok[i] = false;
    if (p < p_end) {
      const int64_t blk = table[p / a.block_size];
      if (blk < 0 || blk >= a.n_blocks) {
        flag_bad(a.flag, BAD_BLOCK_ID, blk);
      } else {
        t.off[i] = blk * a.c_block + int64_t(p % a.block_size) * a.c_slot + int64_t(kvh) * a.c_head;
        ok[i] = true;
      }
    }
  }
  t.mask = uint64_t(__ballot_sync(0xffffffffu, ok[0])) | uint64_t(__ballot_sync(0xffffffffu, ok[1])) << 32;
  return t;
}

// cp.async of the tile's rows r with p0 + r in [lo, hi) into sk / sv (row stride LD): rows with an offset are read,
// the others zero-filled. Each row is written by exactly one call (the old rows before pdl_wait, the rest after).
template <int HD>
__device__ inline void issue_rows(const mma_decode_args& a, const tile_rows& t, int p0, int lo, int hi, uint16_t* sk,
                                  uint16_t* sv) {
  constexpr int CPR = HD / 8;  // 16-byte pieces per row
  constexpr int LD = md_geometry<HD>::ld;
  const int lane = threadIdx.x & 31;
#pragma unroll 4
  for (int i = 0; i < k_md_keys * CPR / 32; ++i) {
    const int c = lane + 32 * i, r = c / CPR, col = c - r * CPR;
    // r < 32 for the first half of the iterations, whatever the lane: the half is uniform across the warp.
    const int64_t off = __shfl_sync(0xffffffffu, i < CPR ? t.off[0] : t.off[1], r & 31);
    const int p = p0 + r;
    if (p >= lo && p < hi) {
      const bool load = off >= 0;
      const int64_t o = (load ? off : 0) + col * 16;
      cp_async_16(sk + r * LD + col * 8, a.kcache + o, load);
      cp_async_16(sv + r * LD + col * 8, a.vcache + o, load);
    }
  }
}

template <int HD, bool CLUSTER>
__global__ void __launch_bounds__(k_md_max_threads, 1) paged_decode_mma_kernel(const mma_decode_args a) {
  using GEO = md_geometry<HD>;
  constexpr int LD = GEO::ld;
  constexpr int n_kb = k_md_keys / 8;  // 8-key blocks of S
  constexpr int n_db = HD / 8;         // 8-column blocks of O
  extern __shared__ __align__(128) uint8_t smem_raw[];
  __shared__ float2 ml_s[k_md_rows];                // the block's (max, sum) per head, natural-log units
  __shared__ float w_s[k_decode_max_group * 32];    // warp weights [warp][head], then the cluster merge's
  uint16_t* sq = reinterpret_cast<uint16_t*>(smem_raw);

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, n_warps = int(blockDim.x) >> 5;
  const int split = int(blockIdx.x), kvh = int(blockIdx.y), seq = int(blockIdx.z);
  const int G = a.group;
  uint16_t* sk = sq + GEO::q_elems + warp * GEO::tile_elems;
  uint16_t* sv = sk + k_md_keys * LD;

  const decode_row row = read_decode_row(a.seq_info, a.ld_info, seq, a.n_q_rows, a.n_table * a.block_size,
                                         int64_t(gridDim.x) * a.split_len);
  // Every return passes pdl_wait: a later plain launch orders only against this kernel's completion. A sequence's
  // blocks (a cluster) all return here or none does.
  if (!row.well_formed) {
    if (tid == 0 && split == 0 && kvh == 0) flag_bad(a.flag, BAD_SEQUENCE, seq);
    pdl_wait();
    return;
  }
  if (row.n_new == 0) {
    pdl_wait();
    return;
  }
  const int ctx = row.n_past + 1;
  const int p_begin = int(int64_t(split) * a.split_len);
  const int p_end = int(min(int64_t(ctx), int64_t(p_begin) + a.split_len));  // <= p_begin: nothing here
  const int n_tiles = p_end > p_begin ? (p_end - p_begin + k_md_keys - 1) / k_md_keys : 0;

  // This warp's first tile: old rows now, the rest after the wait.
  tile_rows rows_now{};
  if (warp < n_tiles) {
    const int p0 = p_begin + warp * k_md_keys;
    rows_now = locate_rows(a, seq, kvh, p0, p_end);
    issue_rows<HD>(a, rows_now, p0, p0, min(row.n_past, p_end), sk, sv);
  }
  pdl_wait();
  pdl_trigger();
  if (warp < n_tiles) {
    const int p0 = p_begin + warp * k_md_keys;
    issue_rows<HD>(a, rows_now, p0, max(p0, min(row.n_past, p_end)), p0 + k_md_keys, sk, sv);
  }
  cp_async_commit();
  // Q: the group's heads (contiguous in the row) rounded to bf16, rows G.. zero. Each thread has up to 16 float4
  // loads in flight at once (a one-warp block's whole share of 16 x 128 heads): q was just written and sits in L2,
  // but each dependent round trip costs ~0.2 us (one pair at a time, one-warp blocks, 32 pairs per thread, took 13.5
  // us per call at 512 positions on an H100, eight pairs at a time 10.2, sixteen float4s 8.7, the F32 kernel 8.6).
  const float* qrow = a.q + int64_t(row.first_row) * a.ldq + int64_t(kvh) * G * HD;
  const int n_threads = int(blockDim.x), n_quads = G * HD / 4;
  constexpr int QB = 16;  // float4s per thread per batch
  for (int base = tid; base < n_quads; base += QB * n_threads) {
    float4 v[QB];
#pragma unroll
    for (int u = 0; u < QB; ++u) {
      const int i = base + u * n_threads;
      v[u] = i < n_quads ? reinterpret_cast<const float4*>(qrow)[i] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    }
#pragma unroll
    for (int u = 0; u < QB; ++u) {
      const int i = base + u * n_threads;
      if (i < n_quads)
        *reinterpret_cast<uint2*>(sq + (4 * i / HD) * LD + 4 * i % HD) =
            make_uint2(pack_bf16x2(v[u].x, v[u].y), pack_bf16x2(v[u].z, v[u].w));
    }
  }
  const int n_pairs = G * HD / 2;
  for (int i = n_pairs + tid; i < k_md_rows * HD / 2; i += n_threads)
    *reinterpret_cast<uint32_t*>(sq + (2 * i / HD) * LD + 2 * i % HD) = 0u;
  __syncthreads();
  uint32_t qa[HD / 16][4];  // Q as A fragments, one per 16 head dims
#pragma unroll
  for (int kk = 0; kk < HD / 16; ++kk) ldmatrix_x4(qa[kk], sq + (lane & 15) * LD + kk * 16 + (lane >> 4) * 8);

  float o[n_db][4];
#pragma unroll
  for (int j = 0; j < n_db; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
  softmax_rows sm;  // heads g and g + 8
  for (int tile = warp; tile < n_tiles; tile += n_warps) {
    const int p0 = p_begin + tile * k_md_keys;
    if (tile != warp) {  // a later pass: the warp's tile space is free again (__syncwarp at the end of the last)
      rows_now = locate_rows(a, seq, kvh, p0, p_end);
      issue_rows<HD>(a, rows_now, p0, p0, p0 + k_md_keys, sk, sv);
      cp_async_commit();
    }
    cp_async_wait<0>();
    __syncwarp();

    // S [16][64] = Q K^T (flash_fragments.cuh).
    float s[n_kb][4];
    scores_tile<HD, n_kb, LD>(s, qa, sk);
    if (rows_now.mask != ~uint64_t(0)) {  // rows not loaded (past the context, bad block ids) weigh nothing
      const int t = lane & 3;
#pragma unroll
      for (int j = 0; j < n_kb; ++j)
#pragma unroll
        for (int c = 0; c < 4; ++c)
          if (!((rows_now.mask >> (8 * j + 2 * t + (c & 1))) & 1u)) s[j][c] = -INFINITY;
    }
    rescale_rows(o, online_softmax<n_kb, false>(s, sm, k_md_keys, false, 0, a.scale_log2));

    // O [16][HD] += P [16][64] . V [64][HD] (flash_fragments.cuh).
    pv_tile<HD, n_kb, LD>(o, s, sv);
    __syncwarp();  // the tile space is read before the next pass (or the partial) overwrites it
  }

  // The warp's partial into its tile space: O [16][HD] unnormalized, (max in log2 units, sum) per head.
  float* part_w = reinterpret_cast<float*>(sk);
  float2* ml_w = reinterpret_cast<float2*>(part_w + k_md_rows * HD);
  {
    const int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int j = 0; j < n_db; ++j) {
      *reinterpret_cast<float2*>(part_w + g * HD + 8 * j + 2 * t) = make_float2(o[j][0], o[j][1]);
      *reinterpret_cast<float2*>(part_w + (g + 8) * HD + 8 * j + 2 * t) = make_float2(o[j][2], o[j][3]);
    }
    float l0 = sm.l0, l1 = sm.l1;
    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    if (t == 0) {
      ml_w[g] = make_float2(sm.m0, l0);
      ml_w[g + 8] = make_float2(sm.m1, l1);
    }
  }
  __syncthreads();

  // The block's merge of its warps, in warp order: weights 2^(m_w - M) per head.
  auto warp_part = [&](int w) {
    return reinterpret_cast<const float*>(sq + GEO::q_elems + w * GEO::tile_elems);
  };
  if (tid < G) {
    float mx = -INFINITY;
    for (int w = 0; w < n_warps; ++w) mx = fmaxf(mx, reinterpret_cast<const float2*>(warp_part(w) + k_md_rows * HD)[tid].x);
    float sum = 0.0f;
    for (int w = 0; w < n_warps; ++w) {
      const float2 ml = reinterpret_cast<const float2*>(warp_part(w) + k_md_rows * HD)[tid];
      const float wt = ml.x == -INFINITY ? 0.0f : exp2f(ml.x - mx);
      sum = fmaf(wt, ml.y, sum);
      w_s[w * k_decode_max_group + tid] = wt;
    }
    ml_s[tid] = make_float2(mx == -INFINITY ? -INFINITY : mx * 0.69314718055994531f, sum);
  }
  __syncthreads();
  float* out = a.out + int64_t(row.first_row) * a.ldo + int64_t(kvh) * G * HD;
  float* part = reinterpret_cast<float*>(sq + GEO::q_elems) + k_md_rows * HD + 2 * k_md_rows;  // warp 0's, after its own
  constexpr int Q4 = HD / 4;
  for (int item = tid; item < G * Q4; item += int(blockDim.x)) {
    const int h = item / Q4, d4 = item - h * Q4;
    float4 s = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    for (int w = 0; w < n_warps; ++w)
      fma4(w_s[w * k_decode_max_group + h], reinterpret_cast<const float4*>(warp_part(w) + h * HD)[d4], s);
    if constexpr (CLUSTER) reinterpret_cast<float4*>(part + h * HD)[d4] = s;
    else store_normalized(out + h * HD + 4 * d4, s, ml_s[h].y);
  }
  if constexpr (CLUSTER) {
    __syncthreads();  // w_s is the cluster merge's now
    merge_in_cluster<HD>(part, ml_s, G, out, w_s);
  }
}

// The kernel, its shared-memory limit (the most warps') and cluster opt-in set once per device.
template <int HD, bool CLUSTER>
auto* md_kernel() {
  auto* kernel = paged_decode_mma_kernel<HD, CLUSTER>;
  static std::atomic<uint64_t> opted_in{0};
  opt_in_once(kernel, md_geometry<HD>::bytes(md_geometry<HD>::max_warps), CLUSTER, opted_in,
              "attention_paged decode (mma): shared memory / cluster size");
  return kernel;
}

// Whether a cluster of `cluster` blocks of `warps` warps (one block per SM: its shared memory) can be resident at
// all (cudaOccupancyMaxActiveClusters), asked once per (device, head_dim, cluster, warps).
template <int HD>
bool cluster_fits(int cluster, int warps, const stream_state& s) {
  static std::mutex mu;
  static std::map<std::tuple<int, int, int>, bool> known;
  int dev = 0;
  check(cudaGetDevice(&dev), "cudaGetDevice");
  const auto key = std::make_tuple(dev, cluster, warps);
  {
    std::lock_guard<std::mutex> lock(mu);
    if (auto it = known.find(key); it != known.end()) return it->second;
  }
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(unsigned(cluster), 1, 1);
  cfg.blockDim = dim3(unsigned(32 * warps), 1, 1);
  cfg.dynamicSmemBytes = md_geometry<HD>::bytes(warps);
  cfg.stream = stream_of(s);
  cudaLaunchAttribute attr;
  attr.id = cudaLaunchAttributeClusterDimension;
  attr.val.clusterDim.x = unsigned(cluster);
  attr.val.clusterDim.y = attr.val.clusterDim.z = 1;
  cfg.attrs = &attr;
  cfg.numAttrs = 1;
  int n = 0;
  if (cudaOccupancyMaxActiveClusters(&n, md_kernel<HD, true>(), &cfg) != cudaSuccess) {
    (void)cudaGetLastError();  // a refused query leaves no error behind for the next check, and is asked again
    return false;
  }
  std::lock_guard<std::mutex> lock(mu);
  known[key] = n >= 1;
  return n >= 1;
}

// Blocks per (sequence, KV head) and warps per block for `tiles` 64-key tiles: as many blocks as a cluster holds
// and the SMs allow (one per SM), then as few warps as cover a block's tiles in one pass, the most warps beyond.
struct md_plan {
  int blocks = 0, warps = 0;
  int64_t per_block = 0;  // tiles
};
md_plan plan_for(int64_t tiles, int64_t blocks, int max_warps) {
  md_plan p;
  p.per_block = (tiles + blocks - 1) / blocks;
  p.blocks = int((tiles + p.per_block - 1) / p.per_block);
  p.warps = int(std::min<int64_t>(max_warps, p.per_block));
  return p;
}

template <int HD>
bool launch_for(const mma_decode_args& a, int64_t tiles, int64_t pairs, int n_kv_heads, int64_t n_seqs,
                stream_state& s) {
  constexpr int max_warps = md_geometry<HD>::max_warps;
  if (md_geometry<HD>::bytes(max_warps) + 4096 > max_shared_bytes(s)) return false;  // + the static arrays
  const bool clusters = compute_major(s) >= 9 && decode_cluster_enabled();
  // Without clusters one block per (sequence, KV head) leaves most SMs idle unless the batch is large: the F32
  // kernel splits positions over the whole GPU instead.
  if (!clusters && pairs * 4 < sm_count(s)) return false;
  const int64_t by_sms = std::max<int64_t>(1, sm_count(s) / pairs);
  md_plan p = plan_for(tiles, clusters ? std::min<int64_t>({k_decode_max_cluster, tiles, by_sms}) : 1, max_warps);
  if (p.blocks > 8 && !cluster_fits<HD>(p.blocks, p.warps, s)) p = plan_for(tiles, 8, max_warps);
  if (p.blocks > 1 && !cluster_fits<HD>(p.blocks, p.warps, s)) return false;
  if ((p.per_block + p.warps - 1) / p.warps > k_md_max_passes) return false;

  mma_decode_args m = a;
  m.split_len = p.per_block * k_md_keys;
  const dim3 grid(unsigned(p.blocks), unsigned(n_kv_heads), unsigned(n_seqs));
  const size_t smem = md_geometry<HD>::bytes(p.warps);
  // The largest shared-memory split, as the q|k|v GEMV before it asks for (see smem_carveout in cuda_host.h).
  const int carveout = smem_carveout(100);
  if (p.blocks > 1)
    launch_pdl_ex(md_kernel<HD, true>(), grid, dim3(32 * p.warps), smem, s, "attention_paged decode (mma)",
                  launch_extras{grid.x, carveout}, m);
  else
    launch_pdl_ex(md_kernel<HD, false>(), grid, dim3(32 * p.warps), smem, s, "attention_paged decode (mma)",
                  launch_extras{0, carveout}, m);
  return true;
}

// AUTOGLM_CUDA_DECODE_MMA_MIN_CONTEXT: the longest context of a batch from which it takes this kernel (default
// 2,048). Shorter batches keep the F32 split kernel: alone the two are even there (H100: 8.74 / 8.58 us per call at
// 512 positions), but in the model's decode step the F32 kernel measured faster (152.9 against 150.8 tokens/s at
// 512; 2,048: 151.5 either way).
int64_t mma_min_context() {
  return env_integer("AUTOGLM_CUDA_DECODE_MMA_MIN_CONTEXT", 2048, 0, INT32_MAX);
}

}  // namespace

bool launch_paged_decode_mma(const flash_args& fa, dtype cache_type, int n_kv_heads, int64_t n_seqs,
                             stream_state& s) {
  const int hd = fa.head_dim, G = fa.group;
  if (cache_type != dtype::BF16 || get_cuda_gemm_precision() != cuda_gemm_precision::ROUNDED) return false;
  if ((hd != 64 && hd != 128) || G < 1 || G > k_md_rows || n_seqs < 1) return false;
  if (fa.max_context < mma_min_context()) return false;
  // The softmax takes the max of the raw scores, which is the max of the scaled ones only for a positive scale.
  if (!(fa.scale > 0.0f) || compute_major(s) < 8) return false;
  // q is read as float4s (a head's G * HD values start on a 16-byte boundary).
  if (reinterpret_cast<uintptr_t>(fa.q) % 16 != 0 || fa.ldq % 4 != 0) return false;
  // The caller checked 16-byte aligned cache rows and the grid's y / z limits.
  mma_decode_args a{};
  static_cast<paged_view&>(a) = fa;
  a.scale_log2 = fa.scale * 1.4426950408889634f;
  const int64_t pairs = n_seqs * n_kv_heads;
  const int64_t tiles = (std::max<int64_t>(fa.max_context, 1) + k_md_keys - 1) / k_md_keys;
  const bool launched = hd == 128 ? launch_for<128>(a, tiles, pairs, n_kv_heads, n_seqs, s)
                                  : launch_for<64>(a, tiles, pairs, n_kv_heads, n_seqs, s);
  if (launched && cudaPeekAtLastError() != cudaSuccess)
    check_launch("attention_paged decode (mma)",
                 "seqs=" + std::to_string(n_seqs) + " kv_heads=" + std::to_string(n_kv_heads) + " group=" +
                     std::to_string(G) + " head_dim=" + std::to_string(hd) + " max_context=" +
                     std::to_string(fa.max_context));
  return launched;
}

}  // namespace autoglm::cuda
