// kernels/cuda/sm90a/attention_dense_wgmma.cu: ATTENTION_DENSE for large images on Hopper's warpgroup MMA (wgmma),
// head_dim 128: the structure of the mma.sync flash kernel (attention_dense_mma.cu) with its two products issued by
// whole warpgroups from shared memory. Compiled for sm_90a alone (src/kernels/CMakeLists.txt); launched only on a
// compute capability 9.0 device (dense_wgmma_fits).
//
// Inputs: the bf16 head-major copies attention_dense_mma.cu makes (dense_bf16_heads: Q, K, V [heads, n, 128]). A
// block of 2 warpgroups (256 threads) owns 128 query rows of one segment and one head, 64 per warpgroup. Shared
// memory (128-byte swizzle, sm90a/wgmma.cuh): Q [128 rows][128] once, then K and V tiles of KT keys, double-buffered
// (cp.async of tile t + 1 runs while tile t is multiplied). Per tile, each warpgroup:
//   S [64][KT] = Q K^T   8 wgmma k16 steps, both operands K-major in shared memory, F32 accumulators;
//   online softmax       on S in registers, exactly as the mma.sync kernel (the wgmma D layout is its C layout per
//                        warp): scores in log2 units, each row's keys in the 4 lanes of a quad;
//   O [64][128] += P V   KT/16 wgmma k16 steps, P (bf16, rounded from S's registers) as the register A operand,
//                        V's [KT][128] tile read MN-major (transposed) straight from its row-major layout.
// Products are waited for before their results are used (no overlap inside a warpgroup; the block's two
// warpgroups and the cp.async of the next tile overlap each other). Numerics equal the mma.sync kernel's: Q, K, V
// and P rounded to bf16, scores, softmax, sums and accumulation F32.
//
// The same kernel runs causal prefill chunks (GQA; CAUSAL below), as the mma.sync kernel does.
//
// Two kernels share these steps. wgmma_attention_kernel: both warpgroups load (cp.async, double-buffered) and meet
// at one block barrier per tile, so their softmaxes run at the same time while the tensor cores idle.
// wgmma_ws_attention_kernel (the default, below): a third warpgroup loads (one thread issuing TMA tile copies, or
// the warpgroup's cp.async where the driver has no tensor maps), stages are handed over by shared-memory barriers,
// and the two computing warpgroups take turns on the tensor cores.
//
// Measured on the H200 (cuda_perf, 2026-12-04): a 1080x2400 screenshot's vision block (13,416 rows, 12 heads,
// 1.1e12 FLOP) in 2.12 ms warp-specialized with TMA (521 TFLOP/s), 2.53 with cp.async loads (437), 2.99 ms (369)
// with the block barrier, 3.28 with 64-key tiles, 4.57 ms (242) for the mma.sync kernel. Causal, 2,048 / 4,096
// tokens of the 9B model: 218 / 362 TFLOP/s (TMA), 194 / 307 (cp.async), 178 / 271 (block barrier). wgmma's dense
// bf16 peak is ~990; ncu on the cp.async kernels: tensor pipe 44% busy, issue slots 44-50%, spent on the softmax
// (exp2 on the MUFU alone and the max of the raw scores brought it from ~11 to ~6 instructions per score) and on
// the producer's copies (TMA: 4 instructions per tile instead of 32 copies per thread).
#include <cuda.h>  // CUtensorMap (the driver's encoder is reached through the runtime: no libcuda link)
#include <cudaTypedefs.h>

#include <cstdlib>
#include <string>
#include <utility>

#include "kernels/cuda/flash.cuh"
#include "kernels/cuda/flash_fragments.cuh"
#include "kernels/cuda/sm90a/wgmma.cuh"

namespace autoglm::cuda {

namespace {

constexpr int k_wg_hd = 128;                 // head dim: two 64-element swizzle columns per row
constexpr int k_wg_groups = 2;               // warpgroups per block
constexpr int k_wg_rows = 64 * k_wg_groups;  // query rows per block
constexpr int k_wg_threads = 128 * k_wg_groups;

// Shared memory of a block: Q [128 rows][128], then two K tiles and two V tiles of KT keys (bytes).
template <int KT>
struct wg_geometry {
  static constexpr int stages = 2;
  static constexpr int q_bytes = k_wg_rows * k_wg_hd * 2;
  static constexpr int kv_bytes = KT * k_wg_hd * 2;  // one K or V tile
  static constexpr size_t bytes = size_t(q_bytes + 2 * stages * kv_bytes) + 1024;  // + alignment slack
};

// The tensor-core flash kernels' operands (flash.cuh), and V's MN-major descriptor offsets (bytes). TMA tile
// coordinates of head h: x = h * head_col + 64 c, y = h * head_row + row (head-major copies [heads][rows][128]:
// head_col 0, head_row the rows; q, k, v read where they are, as row-major views of heads x 128 columns with a row
// stride (the vision tower's q|k|v buffer): head_col 128, head_row 0).
struct wg_args : tc_attention_args {
  uint32_t v_lbo, v_sbo;
  int q_head_col = 0, q_head_row = 0, kv_head_col = 0, kv_head_row = 0;
  // Where q, k, v are read in place: their row strides in bf16 elements (0: the head-major copies).
  int64_t ldq = 0, ldk = 0, ldv = 0;
};

// R rows x 128 bf16 from src (contiguous rows) into the 128-byte-swizzle tile at dst (1024-byte aligned): element
// (r, d) in column block d / 64 (R x 128 bytes each), row r, 16-byte chunk ((d % 64) / 8) ^ (r % 8). Rows from
// n_valid on are zero-filled without being read (n_valid >= 1). 16 consecutive threads copy one 256-byte row.
// THREADS threads share the copy; tid is this thread's index among them.
template <int R, int THREADS = k_wg_threads>
__device__ inline void load_swizzled(uint8_t* dst, const uint16_t* src, int n_valid, int tid = threadIdx.x) {
  for (int c = tid; c < R * 16; c += THREADS) {
    const int r = c >> 4, ch = c & 15;
    const bool ok = r < n_valid;
    uint8_t* d = dst + (ch >> 3) * (R * 128) + r * 128 + (((ch & 7) ^ (r & 7)) << 4);
    cp_async_16(d, src + int64_t(ok ? r : 0) * k_wg_hd + ch * 8, ok);
  }
}

// Causal blocks in launch order (x fastest, then z: the order the hardware hands blocks out) take the query heads
// fastest and the row tiles from the last one (the longest key range) down: every head's longest tile starts in
// the first wave and the shortest ones fill the tail (longest processing time first). With the grid's own order,
// x = row tiles within each head, the last heads' longest tiles started in the last wave.
// The grid stays (row tiles, 1, heads): the launch index L = x + X z is split as (tile rank L / Z, head L % Z).
__device__ inline int64_t causal_launch_index() { return int64_t(blockIdx.x) + int64_t(gridDim.x) * blockIdx.z; }
template <bool CAUSAL>
__device__ inline int block_head() {
  if constexpr (CAUSAL) return int(causal_launch_index() % gridDim.z);
  else return int(blockIdx.z);
}

// The rows of this block (blockIdx): segment start s0 and length len (causal: the chunk, s0 = 0), first row r0 of
// its 128, keys len_k it reads. False when it has none (then every thread of the block returns).
template <bool CAUSAL>
__device__ inline bool block_rows(const wg_args& a, int64_t& s0, int64_t& len, int64_t& r0, int64_t& len_k) {
  s0 = 0, len = a.q_rows;
  if constexpr (CAUSAL) {
    r0 = (int64_t(gridDim.x) - 1 - causal_launch_index() / gridDim.z) * k_wg_rows;
    if (r0 >= len) return false;
    len_k = min(a.kv_rows, a.n_past + min(r0 + k_wg_rows, len));
  } else {
    const int seg = blockIdx.y;
    s0 = a.segments[seg];
    const int64_t s1 = a.segments[seg + 1];
    if (s0 < 0 || s1 < s0 || s1 > a.q_rows) {
      if (threadIdx.x == 0 && blockIdx.x == 0 && blockIdx.z == 0) flag_bad(a.flag, BAD_SEGMENT, seg);
      return false;
    }
    len = len_k = s1 - s0;
    r0 = int64_t(blockIdx.x) * k_wg_rows;
    if (r0 >= len) return false;
  }
  return true;
}

// S [64][KT] = Q K^T, issued (not committed or waited for): this warpgroup's 64 Q rows at q_wg (column blocks
// k_wg_rows x 128 bytes apart), a K tile of KT keys at kt; k16 step kk reads head dims 16 kk .. 16 kk + 15, column
// block kk / 4, +32 bytes per step in it. s: the flat view of the [KT / 8][4] fragments.
template <int KT>
__device__ inline void issue_qk(float (&s)[KT / 2], const uint8_t* q_wg, const uint8_t* kt) {
#pragma unroll
  for (int kk = 0; kk < k_wg_hd / 16; ++kk) {
    const uint64_t da = wgmma_desc(q_wg + (kk >> 2) * (k_wg_rows * 128) + (kk & 3) * 32, 16, 1024);
    const uint64_t db = wgmma_desc(kt + (kk >> 2) * (KT * 128) + (kk & 3) * 32, 16, 1024);
    if constexpr (KT == 64) wgmma_ss_n64(s, da, db, kk > 0);
    else wgmma_ss_n128(s, da, db, kk > 0);
  }
}

// O [64][128] += P V, issued: the A fragment of keys 16 kk .. 16 kk + 15 is S's blocks 2 kk and 2 kk + 1 (packed by
// pack_p), V's rows 16 kk .. are 16 rows (2048 bytes) into its tile at vt, read MN-major (a.v_lbo / a.v_sbo).
template <int KT>
__device__ inline void issue_pv(float (&o)[64], const uint32_t (&pa)[KT / 16][4], const uint8_t* vt,
                                const wg_args& a) {
#pragma unroll
  for (int kk = 0; kk < KT / 16; ++kk) wgmma_rs_n128_mn(o, pa[kk], wgmma_desc(vt + kk * 2048, a.v_lbo, a.v_sbo));
}

// Zeroed accumulators: O [64][128] and S [64][KT] of a warpgroup as the flat arrays the wgmma wrappers take.
template <int KT>
__device__ inline void zero_accumulators(float (&o)[64], float (&s)[KT / 2]) {
#pragma unroll
  for (int i = 0; i < 64; ++i) o[i] = 0.0f;
#pragma unroll
  for (int i = 0; i < KT / 2; ++i) s[i] = 0.0f;
}

// CAUSAL = false: blockIdx.y is a segment of the rows (an image frame); every row sees the segment's keys.
// CAUSAL = true: one sequence's prefill chunk (GQA); row tiles run longest key range first across all heads
// (block_head) and a block reads keys up to its last row's position; tiles crossing a warp's diagonal mask per key.
// Per tile: S = Q K^T, wait, softmax, O += P V, wait. (Issuing the next tile's S before this tile's softmax, with
// three stages and 64-key tiles, measured slower on the H200: 313 against 367 TFLOP/s for 128-key tiles.)
template <int KT, bool CAUSAL>
__global__ void __launch_bounds__(k_wg_threads, 1) wgmma_attention_kernel(const wg_args a) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using G = wg_geometry<KT>;
  constexpr int STAGES = G::stages;
  constexpr int n_kb = KT / 8;  // 8-key blocks of S
  extern __shared__ uint8_t smem_raw[];
  uint8_t* const sq = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));
  uint8_t* const sk = sq + G::q_bytes;            // [STAGES][kv_bytes]
  uint8_t* const sv = sk + STAGES * G::kv_bytes;  // [STAGES][kv_bytes]

  const int wg = threadIdx.x >> 7, warp = (threadIdx.x >> 5) & 3;
  const int head = block_head<CAUSAL>();
  int64_t s0, len, r0, len_k;
  if (!block_rows<CAUSAL>(a, s0, len, r0, len_k)) return;
  const int64_t q_base = (int64_t(head) * a.q_rows + s0) * k_wg_hd;
  const int64_t kv_base = (int64_t(head / a.group) * a.kv_rows + s0) * k_wg_hd;
  const uint16_t* kh = a.k + kv_base;
  const uint16_t* vh = a.v + kv_base;
  const int n_tiles = int((len_k + KT - 1) / KT);
  // Causal: the position of this warp's first row; tiles ending past it need the per-key mask.
  const int64_t warp_pos = a.n_past + r0 + wg * 64 + warp * 16;
  // This warpgroup's 64 Q rows: column block c at sq + c * (128 rows x 128 bytes) + wg * (64 x 128 bytes).
  const uint8_t* const q_wg = sq + wg * 64 * 128;

  auto load_tile = [&](int tile) {  // K and V of `tile` into stage tile % STAGES, one cp.async group
    const int64_t t0 = int64_t(tile) * KT;
    const int nk = rows_left(KT, len_k - t0);
    load_swizzled<KT>(sk + (tile % STAGES) * G::kv_bytes, kh + t0 * k_wg_hd, nk);
    load_swizzled<KT>(sv + (tile % STAGES) * G::kv_bytes, vh + t0 * k_wg_hd, nk);
    cp_async_commit();
  };
  load_swizzled<k_wg_rows>(sq, a.q + q_base + r0 * k_wg_hd, rows_left(k_wg_rows, len - r0));
  load_tile(0);  // with Q: one group

  // O [64][128] and S [64][KT] of this warpgroup: per warp the C layout of flash_fragments.cuh, block j = columns
  // 8j .. 8j+7 (the wgmma D layout), and the same registers as the flat arrays the wgmma wrappers take.
  float o[16][4], s[n_kb][4];
  float(&o_flat)[64] = *reinterpret_cast<float(*)[64]>(&o[0][0]);
  float(&s_flat)[KT / 2] = *reinterpret_cast<float(*)[KT / 2]>(&s[0][0]);
  zero_accumulators<KT>(o_flat, s_flat);
  softmax_rows rows;  // this warp's rows g and g + 8

  for (int tile = 0; tile < n_tiles; ++tile) {
    // This tile must have landed: cp.async wrote it through the generic proxy and wgmma reads through the async
    // one (the fence); the barrier also means every thread is done with the stage the next load overwrites.
    cp_async_wait<0>();
    fence_proxy_async();
    __syncthreads();
    if (tile + STAGES - 1 < n_tiles) load_tile(tile + STAGES - 1);
    wgmma_fence();
    issue_qk<KT>(s_flat, q_wg, sk + (tile % STAGES) * G::kv_bytes);
    wgmma_commit();
    wgmma_wait<0>();
    fence_registers(s_flat);

    // Online softmax in log2 units (flash_fragments.cuh). Causal, on tiles crossing this warp's diagonal, key
    // key0 + i is masked for the warp's row r when i > warp_pos - key0 + r.
    const int64_t key0 = int64_t(tile) * KT;
    const int nk = rows_left(KT, len_k - key0);
    const bool diagonal = CAUSAL && key0 + KT - 1 > warp_pos;
    rescale_rows(o, online_softmax<n_kb, CAUSAL>(s, rows, nk, diagonal, warp_pos - key0, a.scale_log2));

    // O += P V. All of P is packed before the first product: registers written between products would need fences.
    uint32_t pa[KT / 16][4];
#pragma unroll
    for (int kk = 0; kk < KT / 16; ++kk) pack_p(s, kk, pa[kk]);
    wgmma_fence();  // o and the P registers were written by ordinary instructions
    issue_pv<KT>(o_flat, pa, sv + (tile % STAGES) * G::kv_bytes, a);
    wgmma_commit();
    wgmma_wait<0>();
    fence_registers(o_flat);
  }

  const int64_t first = r0 + wg * 64 + warp * 16;
  store_rows(o, rows, first, len, a.out, a.ldo, s0 + first, int64_t(head) * k_wg_hd, a.out_bf16);
#endif
}

// Warp-specialized variant (WS128): 3 warpgroups. Warpgroup 0 only loads (cp.async of Q and of K/V tiles into
// STAGES stages; it gives its registers to the others); warpgroups 1 and 2 compute as above, 64 query rows each.
// Instead of one block barrier per tile, each stage has two shared-memory barriers: `full` (the producer's 128
// threads arrive once their copies of the tile have landed and passed the proxy fence; they signal tile t - 1
// after issuing tile t, so loads stay in flight) and `empty` (the 256 consumer threads arrive once their products
// on the stage are done; the producer waits for it before refilling). The consumers then drift apart, and a pair of
// named barriers makes them take turns issuing S = Q K^T (ping-pong): one warpgroup's softmax runs while the
// other's products occupy the tensor cores, where the single-barrier kernel had both warpgroups in softmax at once.
template <int KT, int STAGES>
struct ws_geometry {
  static constexpr int q_bytes = k_wg_rows * k_wg_hd * 2;
  static constexpr int kv_bytes = KT * k_wg_hd * 2;
  static constexpr size_t bars = size_t(q_bytes + 2 * STAGES * kv_bytes);  // barriers after the tiles
  static constexpr size_t bytes = bars + 2 * STAGES * sizeof(uint64_t) + 1024;
};
constexpr int k_ws_threads = 3 * 128;

// TMA = true: one thread of the producer copies each tile with the tensor memory accelerator (2 copies of 64
// columns per operand; maps of Q, K and V as [rows, 128] bf16 with the 128-byte swizzle, rows past the tensor read as
// zeros, rows of the next segment or head read as they are and masked like any key past nk); false: the producer's
// 128 threads copy with cp.async.
template <int KT, int STAGES, bool TMA, bool CAUSAL>
__global__ void __launch_bounds__(k_ws_threads, 1)
    wgmma_ws_attention_kernel(const wg_args a, const __grid_constant__ CUtensorMap map_q,
                              const __grid_constant__ CUtensorMap map_k, const __grid_constant__ CUtensorMap map_v) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using G = ws_geometry<KT, STAGES>;
  constexpr int n_kb = KT / 8;
  extern __shared__ uint8_t smem_raw[];
  uint8_t* const sq = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));
  uint8_t* const sk = sq + G::q_bytes;            // [STAGES][kv_bytes]
  uint8_t* const sv = sk + STAGES * G::kv_bytes;  // [STAGES][kv_bytes]
  uint64_t* const full = reinterpret_cast<uint64_t*>(sq + G::bars);
  uint64_t* const empty = full + STAGES;

  const int head = block_head<CAUSAL>();
  int64_t s0, len, r0, len_k;
  if (!block_rows<CAUSAL>(a, s0, len, r0, len_k)) return;
  const int64_t kv_base = (int64_t(head / a.group) * a.kv_rows + s0) * k_wg_hd;
  const int n_tiles = int((len_k + KT - 1) / KT);
  if (threadIdx.x == 0) {
    for (int i = 0; i < STAGES; ++i) {
      mbar_init(full + i, TMA ? 1 : 128);
      mbar_init(empty + i, 256);
    }
  }
  __syncthreads();

  const int wg = threadIdx.x >> 7;
  if (wg == 0) {  // the producer
    regs_dec<40>();
    if constexpr (TMA) {
      if (threadIdx.x != 0) return;
      const int kvh = head / a.group;
      const int q_x = head * a.q_head_col, q_y = int(int64_t(head) * a.q_head_row + s0 + r0);
      const int kv_x = kvh * a.kv_head_col, kv_y = int(int64_t(kvh) * a.kv_head_row + s0);
      for (int tile = 0; tile < n_tiles; ++tile) {
        const int stage = tile % STAGES;
        if (tile >= STAGES) mbar_wait(empty + stage, uint32_t(tile / STAGES - 1) & 1u);
        mbar_arrive_expect_tx(full + stage, uint32_t(2 * G::kv_bytes + (tile == 0 ? G::q_bytes : 0)));
        if (tile == 0)
          for (int c = 0; c < 2; ++c) tma_load_2d(sq + c * (k_wg_rows * 128), &map_q, q_x + 64 * c, q_y, full);
        for (int c = 0; c < 2; ++c) {
          tma_load_2d(sk + stage * G::kv_bytes + c * (KT * 128), &map_k, kv_x + 64 * c, kv_y + tile * KT,
                      full + stage);
          tma_load_2d(sv + stage * G::kv_bytes + c * (KT * 128), &map_v, kv_x + 64 * c, kv_y + tile * KT,
                      full + stage);
        }
      }
      return;
    }
    const int tid = threadIdx.x;
    for (int tile = 0; tile < n_tiles; ++tile) {
      const int stage = tile % STAGES;
      if (tile >= STAGES) mbar_wait(empty + stage, uint32_t(tile / STAGES - 1) & 1u);
      if (tile == 0)
        load_swizzled<k_wg_rows, 128>(sq, a.q + (int64_t(head) * a.q_rows + s0 + r0) * k_wg_hd,
                                      rows_left(k_wg_rows, len - r0), tid);
      const int64_t t0 = int64_t(tile) * KT;
      const int nk = rows_left(KT, len_k - t0);
      load_swizzled<KT, 128>(sk + stage * G::kv_bytes, a.k + kv_base + t0 * k_wg_hd, nk, tid);
      load_swizzled<KT, 128>(sv + stage * G::kv_bytes, a.v + kv_base + t0 * k_wg_hd, nk, tid);
      cp_async_commit();
      if (tile > 0) {  // tile - 1 has landed: through the proxy fence, then visible to the consumers' wgmma
        cp_async_wait<1>();
        fence_proxy_async();
        mbar_arrive(full + (tile - 1) % STAGES);
      }
    }
    cp_async_wait<0>();
    fence_proxy_async();
    mbar_arrive(full + (n_tiles - 1) % STAGES);
    return;
  }
  regs_inc<232>();
  const int cw = wg - 1, warp = (threadIdx.x >> 5) & 3;  // consumer warpgroup 0 / 1, warp in it
  const int64_t warp_pos = a.n_past + r0 + cw * 64 + warp * 16;
  const uint8_t* const q_wg = sq + cw * 64 * 128;

  float o[16][4], s[n_kb][4];
  float(&o_flat)[64] = *reinterpret_cast<float(*)[64]>(&o[0][0]);
  float(&s_flat)[KT / 2] = *reinterpret_cast<float(*)[KT / 2]>(&s[0][0]);
  zero_accumulators<KT>(o_flat, s_flat);
  softmax_rows rows;

  // Ping-pong: consumer c waits at barrier 1 + c before issuing its products and then releases the other's barrier;
  // consumer 1 releases consumer 0 once up front, and consumer 0 takes the last release at the end (every arrive
  // is matched, so the barriers end the kernel empty).
  if (cw == 1) named_arrive(1, 256);
  // Per tile: S, wait, softmax, O += P V, wait. (Issuing the next tile's S before this tile's softmax, as
  // FlashAttention-3 does, measured slower here: 401 against 450 TFLOP/s on the vision block, H200, 2026-12-04.)
  for (int tile = 0; tile < n_tiles; ++tile) {
    const int stage = tile % STAGES;
    mbar_wait(full + stage, uint32_t(tile / STAGES) & 1u);
    named_sync(1 + cw, 256);
    wgmma_fence();  // s was last written by the softmax
    issue_qk<KT>(s_flat, q_wg, sk + stage * G::kv_bytes);
    wgmma_commit();
    named_arrive(2 - cw, 256);
    wgmma_wait<0>();
    fence_registers(s_flat);
    const int64_t key0 = int64_t(tile) * KT;
    const bool diagonal = CAUSAL && key0 + KT - 1 > warp_pos;
    rescale_rows(o, online_softmax<n_kb, CAUSAL>(s, rows, rows_left(KT, len_k - key0), diagonal, warp_pos - key0,
                                                 a.scale_log2));
    uint32_t pa[KT / 16][4];
#pragma unroll
    for (int kk = 0; kk < KT / 16; ++kk) pack_p(s, kk, pa[kk]);
    wgmma_fence();  // o and the P registers were written by ordinary instructions
    issue_pv<KT>(o_flat, pa, sv + stage * G::kv_bytes, a);
    wgmma_commit();
    wgmma_wait<0>();
    fence_registers(o_flat);
    mbar_arrive(empty + stage);  // this thread's products on the stage are done
  }
  if (cw == 0) named_sync(1, 256);

  const int64_t first = r0 + cw * 64 + warp * 16;
  store_rows(o, rows, first, len, a.out, a.ldo, s0 + first, int64_t(head) * k_wg_hd, a.out_bf16);
#endif
}

template <int KT, bool CAUSAL>
void launch(const wg_args& w, dim3 grid, const stream_state& s, const std::string& sizes) {
  constexpr size_t smem = wg_geometry<KT>::bytes;
  auto* kernel = wgmma_attention_kernel<KT, CAUSAL>;
  const char* what = CAUSAL ? "attention_paged (wgmma)" : "attention_dense (wgmma)";
  check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)), what);
  kernel<<<grid, k_wg_threads, smem, stream_of(s)>>>(w);
  check_launch(what, sizes);
}

constexpr int k_ws_stages = 3;  // 3 x 64 KB of K/V + 32 KB of Q: the most of the 227 KB a block may have

// cuTensorMapEncodeTiled from the driver, through the runtime (null when the driver lacks it).
PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder() {
  static const PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* p = nullptr;
    cudaDriverEntryPointQueryResult q{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault, &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess)
      return PFN_cuTensorMapEncodeTiled_v12000(nullptr);
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(p);
  }();
  return fn;
}

// A map of `rows` bf16 rows of `cols` columns, ld elements apart, read as boxes of 64 columns x box_rows, 128-byte
// swizzle (cols = 128, ld = 128: the head-major copies; cols = heads x 128 and the buffer's ld: q, k or v in place).
CUtensorMap rows_map(const uint16_t* base, int64_t rows, int box_rows, const char* what, int64_t cols = k_wg_hd,
                     int64_t ld = k_wg_hd) {
  CUtensorMap m{};
  const cuuint64_t dims[2] = {cuuint64_t(cols), cuuint64_t(rows)};
  const cuuint64_t strides[1] = {cuuint64_t(ld) * 2};
  const cuuint32_t box[2] = {64, cuuint32_t(box_rows)};
  const cuuint32_t steps[2] = {1, 1};
  const CUresult r = tensor_map_encoder()(&m, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, const_cast<uint16_t*>(base), dims,
                                          strides, box, steps, CU_TENSOR_MAP_INTERLEAVE_NONE,
                                          CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                                          CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  AG_CHECK(r == CUDA_SUCCESS, std::string(what) + ": cuTensorMapEncodeTiled failed (" + std::to_string(int(r)) + ")");
  return m;
}

template <int KT, int STAGES, bool TMA, bool CAUSAL>
void launch_ws(const wg_args& w, dim3 grid, const stream_state& s, const std::string& sizes) {
  constexpr size_t smem = ws_geometry<KT, STAGES>::bytes;
  auto* kernel = wgmma_ws_attention_kernel<KT, STAGES, TMA, CAUSAL>;
  const char* what = CAUSAL ? "attention_paged (wgmma, warp-specialized)" : "attention_dense (wgmma, warp-specialized)";
  CUtensorMap mq{}, mk{}, mv{};
  if constexpr (TMA) {
    const int64_t heads = grid.z, kv_heads = heads / w.group;  // grid.z = query heads
    AG_CHECK(heads * w.q_rows < (int64_t(1) << 31) && kv_heads * w.kv_rows < (int64_t(1) << 31),
             std::string(what) + ": rows exceed the tensor maps' int32 coordinates");
    if (w.ldq) {  // in place: heads x 128 columns of each
      mq = rows_map(w.q, w.q_rows, k_wg_rows, what, heads * k_wg_hd, w.ldq);
      mk = rows_map(w.k, w.kv_rows, KT, what, kv_heads * k_wg_hd, w.ldk);
      mv = rows_map(w.v, w.kv_rows, KT, what, kv_heads * k_wg_hd, w.ldv);
    } else {
      mq = rows_map(w.q, heads * w.q_rows, k_wg_rows, what);
      mk = rows_map(w.k, kv_heads * w.kv_rows, KT, what);
      mv = rows_map(w.v, kv_heads * w.kv_rows, KT, what);
    }
  }
  check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)), what);
  kernel<<<grid, k_ws_threads, smem, stream_of(s)>>>(w, mq, mk, mv);
  check_launch(what, sizes);
}

template <bool CAUSAL>
void launch_variant(const wg_args& w, wgmma_variant v, dim3 grid, const stream_state& s, const std::string& sizes) {
  if (v == wgmma_variant::WS128_TMA && !tensor_map_encoder()) v = wgmma_variant::WS128;  // a driver without TMA maps
  switch (v) {
    case wgmma_variant::K128: return launch<128, CAUSAL>(w, grid, s, sizes);
    case wgmma_variant::K64: return launch<64, CAUSAL>(w, grid, s, sizes);
    case wgmma_variant::WS128: return launch_ws<128, k_ws_stages, false, CAUSAL>(w, grid, s, sizes);
    case wgmma_variant::WS128_TMA: return launch_ws<128, k_ws_stages, true, CAUSAL>(w, grid, s, sizes);
  }
}

int key_tile_of(wgmma_variant v) { return v == wgmma_variant::K64 ? 64 : 128; }

size_t shared_bytes_of(wgmma_variant v) {
  if (v == wgmma_variant::K128) return wg_geometry<128>::bytes;
  if (v == wgmma_variant::K64) return wg_geometry<64>::bytes;
  return ws_geometry<128, k_ws_stages>::bytes;
}

// V [KT keys][128] read MN-major: the two 64-element column blocks are KT x 128 bytes apart (LBO), 8 keys to the
// next 8 are 1024 bytes (SBO). AUTOGLM_CUDA_WGMMA_V_SWAP=1 swaps the two (a bisection switch for the layout).
void set_v_layout(wg_args& w, int key_tile) {
  w.v_lbo = uint32_t(key_tile * 128);
  w.v_sbo = 1024;
  if (const char* e = std::getenv("AUTOGLM_CUDA_WGMMA_V_SWAP"); e && std::string(e) == "1")
    std::swap(w.v_lbo, w.v_sbo);
}

}  // namespace

bool dense_wgmma_fits(int head_dim, wgmma_variant v, const stream_state& s) {
  if (head_dim != k_wg_hd) return false;
  int dev = 0, major = 0, minor = 0;
  check(cudaGetDevice(&dev), "cudaGetDevice");
  check(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev), "compute capability");
  check(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev), "compute capability");
  if (major != 9 || minor != 0) return false;  // sm_90a code runs on compute capability 9.0 only
  return shared_bytes_of(v) <= max_shared_bytes(s);
}

void launch_dense_wgmma(const flash_args& a, int64_t n_seg, wgmma_variant v, stream_state& s,
                        const std::string& sizes) {
  // BF16 q, k, v whose rows TMA can read where they are (16-byte aligned starts and row strides): no head-major
  // copies (about 0.08 ms per vision block of a 1080x2400 screenshot). AUTOGLM_CUDA_WGMMA_COPY_HEADS=1 copies anyway.
  static const bool force_copy = [] {
    const char* e = std::getenv("AUTOGLM_CUDA_WGMMA_COPY_HEADS");
    return e && std::string(e) == "1";
  }();
  const auto aligned = [](const float* p, int64_t ld) {
    return reinterpret_cast<uintptr_t>(p) % 16 == 0 && ld % 8 == 0;
  };
  if (v == wgmma_variant::WS128_TMA && tensor_map_encoder() && a.qkv_type == dtype::BF16 && !force_copy &&
      aligned(a.q, a.ldq) && aligned(a.k, a.ldk) && aligned(a.v, a.ldv)) {
    wg_args w{dense_tc_args(a, reinterpret_cast<const uint16_t*>(a.q)), 0, 0};
    w.q = reinterpret_cast<const uint16_t*>(a.q);
    w.k = reinterpret_cast<const uint16_t*>(a.k);
    w.v = reinterpret_cast<const uint16_t*>(a.v);
    w.ldq = a.ldq, w.ldk = a.ldk, w.ldv = a.ldv;
    w.q_head_col = w.kv_head_col = k_wg_hd;
    set_v_layout(w, key_tile_of(v));
    launch_variant<false>(w, v, dim3(blocks_for(a.n_q_rows, k_wg_rows), unsigned(n_seg), unsigned(a.n_heads)), s,
                          sizes);
    return;
  }
  wg_args w{dense_tc_args(a, dense_bf16_heads(a, s, sizes)), 0, 0};
  w.q_head_row = int(a.n_q_rows), w.kv_head_row = int(a.n_q_rows);  // rows < 2^31 (checked with the maps)
  set_v_layout(w, key_tile_of(v));
  launch_variant<false>(w, v, dim3(blocks_for(a.n_q_rows, k_wg_rows), unsigned(n_seg), unsigned(a.n_heads)), s,
                        sizes);
}

void launch_causal_wgmma(const causal_mma_args& c, wgmma_variant v, stream_state& s, const std::string& sizes) {
  AG_CHECK(c.head_dim == k_wg_hd, "attention_paged (wgmma): head_dim 128 only");
  wg_args w{causal_tc_args(c, "attention_paged (wgmma)"), 0, 0};
  w.q_head_row = int(c.q_rows), w.kv_head_row = int(c.kv_rows);  // head-major copies (rows < 2^31: checked)
  set_v_layout(w, key_tile_of(v));
  launch_variant<true>(w, v, dim3(blocks_for(c.q_rows, k_wg_rows), 1, unsigned(c.heads)), s, sizes);
}

}  // namespace autoglm::cuda
