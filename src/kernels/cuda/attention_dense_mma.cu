// kernels/cuda/attention_dense_mma.cu: ATTENTION_DENSE for large images as one fused flash-attention kernel on
// mma.sync tensor-core instructions (FlashAttention-2's structure; attention_dense.cu says when it runs). head_dim
// 64 or 128; other head dims take the cuBLAS path.
//
// First Q, K and V (F32 column views of the fused qkv rows) are rounded to bf16 head-major copies [heads, n, hd]
// (one launch, about 3 x n x heads x hd x 6 bytes of traffic: ~0.1 ms for a 1080x2400 screenshot), so every tile
// is one contiguous run of global memory that cp.async moves in 16-byte pieces. Then a block of WARPS warps owns
// 16 x WARPS query rows of one segment and one head; each warp owns 16 of them. Per tile of 64 keys (K and V
// double-buffered in shared memory: the next tile's cp.async runs while this one is multiplied):
//   S = Q K^T        16 x 64 per warp in registers (mma m16n8k16, Q's A fragments kept in registers all along),
//   online softmax   per row in registers: each row's 64 scores sit in the 4 lanes of one quad, so the running max
//                    and the row sums need two xor-shuffles; scores are in log2 units (scale * log2 e folded in),
//   P                exp2(S - m) rounded to bf16 straight from the S accumulator layout into the A operand of the
//                    P.V mma (the C layout of two adjacent 8-key blocks is the A layout of one 16-key step),
//   O += P V         16 x hd per warp in registers, rescaled per row by exp2(m_old - m_new) first.
// At the end O / l is stored as F32 rows; query rows past the segment are never written, keys past it are
// zero-filled by cp.async and masked to -inf. Q, K, V and P are rounded to bf16 (as the cuBLAS path and a bf16
// model's attention round them); scores, softmax, sums and accumulation are F32. Against the F32 reference that is
// a normalized error of a few 1e-3 (tests hold it to 2e-2, the bound of every tensor-core attention path here).
//
// Cost and limits (a 1080x2400 screenshot: 13,416 rows, 12 heads of 128): 4 n^2 hd heads = 1.1e12 FLOP per vision
// block, 2.2e9 exponentials. Shared memory holds Q [16 WARPS][hd + 8] and K, V [2][64][hd + 8] bf16 (rows padded by
// 16 bytes so ldmatrix's 8 row addresses fall in 8 different bank groups): 104 KB at hd 128 with 8 warps (186
// registers per thread: one block per SM), 80 KB with 4 warps (175 registers: two blocks per SM); ptxas reports no
// spills for sm_90 (Q fragments 32 registers, O 64, S 32 at hd 128). Per 64-key tile a block reads 2 x 64 x hd x 2
// bytes from L2 for 4 x 16 WARPS x 64 x hd FLOPs: 64 FLOP/byte with 4 warps, 128 with 8, so 8 warps halve the L2
// traffic (8.7 GB per vision block at hd 128); yet 4 warps (two blocks per SM) measured 2-8% faster on the H200 and
// are the default where this kernel runs (attention_dense.cu, attention_paged.cu: GPUs other than compute
// capability 9.0, which take sm90a/attention_dense_wgmma.cu). Each warp reads its K and V tiles through ldmatrix: 16
// FLOP per byte of shared memory, about 500 TFLOP/s of shared-memory bandwidth on an H200, above what mma.sync
// sustains. mma.sync (not Hopper's wgmma) and the F32 softmax between the two products limit it: FlashAttention-2
// reaches 300-350 TFLOP/s on an H100 with this structure; measured 236 TFLOP/s here (4.64 ms per vision block)
// against cuBLAS's 65 (S round trip); causal prefill chunks 127 TFLOP/s at 2,048 tokens, 172 at 4,096 (the diagonal
// tiles' waste and the shorter rows of the first blocks).
#include <string>

#include "kernels/cuda/flash.cuh"
#include "kernels/cuda/flash_fragments.cuh"
#include "kernels/cuda/mma.cuh"

namespace autoglm::cuda {

namespace {

constexpr int k_mma_keys = 64;  // keys per K/V tile

// Shared-memory geometry for head_dim HD and WARPS warps (bf16 elements).
template <int HD, int WARPS>
struct mma_geometry {
  static constexpr int rows = 16 * WARPS;  // query rows per block
  static constexpr int ld = HD + 8;        // +16 bytes per row: conflict-free ldmatrix, rows stay 16-byte aligned
  static constexpr int q_elems = rows * ld;
  static constexpr int kv_elems = k_mma_keys * ld;
  static constexpr size_t bytes = size_t(q_elems + 4 * kv_elems) * 2;  // Q, K[2], V[2]
};


// rows x HD bf16 from `src` (contiguous rows of HD) into a shared tile with row stride LD, by cp.async; rows from
// n_valid on are zero-filled without being read (row 0 always exists: n_valid >= 1).
template <int HD, int LD, int THREADS>
__device__ inline void load_tile(uint16_t* dst, const uint16_t* src, int rows, int n_valid) {
  constexpr int chunks = HD / 8;  // 16-byte pieces per row
  for (int c = threadIdx.x; c < rows * chunks; c += THREADS) {
    const int r = c / chunks, col = (c - r * chunks) * 8;
    const bool ok = r < n_valid;
    cp_async_16(dst + r * LD + col, src + int64_t(ok ? r : 0) * HD + col, ok);
  }
}

// CAUSAL = false: blockIdx.y is a segment of the rows (an image frame); every row sees the segment's keys.
// CAUSAL = true: one sequence's prefill chunk; the row tiles run in reverse order (the longest key ranges start
// first, so the short ones fill the tail of the grid) and a block reads keys up to its last row's position only.
template <int HD, int WARPS, bool CAUSAL>
__global__ void __launch_bounds__(32 * WARPS) mma_attention_kernel(const tc_attention_args a) {
  using G = mma_geometry<HD, WARPS>;
  constexpr int threads = 32 * WARPS;
  constexpr int n_kb = k_mma_keys / 8;  // 8-key blocks of S per tile
  constexpr int n_db = HD / 8;          // 8-column blocks of O
  extern __shared__ __align__(128) uint8_t smem_raw[];
  uint16_t* sq = reinterpret_cast<uint16_t*>(smem_raw);
  uint16_t* sk = sq + G::q_elems;       // two buffers of kv_elems
  uint16_t* sv = sk + 2 * G::kv_elems;  // two buffers

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int head = blockIdx.z;
  int64_t s0 = 0, len = a.q_rows, r0, len_k;
  if constexpr (CAUSAL) {
    r0 = int64_t(gridDim.x - 1 - blockIdx.x) * G::rows;
    if (r0 >= len) return;
    len_k = min(a.kv_rows, a.n_past + min(r0 + G::rows, len));
  } else {
    const int seg = blockIdx.y;
    s0 = a.segments[seg];
    const int64_t s1 = a.segments[seg + 1];
    if (s0 < 0 || s1 < s0 || s1 > a.q_rows) {
      if (threadIdx.x == 0 && blockIdx.x == 0 && head == 0) flag_bad(a.flag, BAD_SEGMENT, seg);
      return;
    }
    len = len_k = s1 - s0;
    r0 = int64_t(blockIdx.x) * G::rows;
    if (r0 >= len) return;
  }
  const int64_t q_base = (int64_t(head) * a.q_rows + s0) * HD;
  const int64_t kv_base = (int64_t(head / a.group) * a.kv_rows + s0) * HD;
  const uint16_t* kh = a.k + kv_base;
  const uint16_t* vh = a.v + kv_base;
  const int n_tiles = int((len_k + k_mma_keys - 1) / k_mma_keys);
  // Causal: positions of this warp's first row; tiles ending past it need the per-key mask.
  const int64_t warp_pos = a.n_past + r0 + warp * 16;

  // Prologue: Q and the first K/V tile in one cp.async group.
  load_tile<HD, G::ld, threads>(sq, a.q + q_base + r0 * HD, G::rows, rows_left(G::rows, len - r0));
  const int nk0 = rows_left(k_mma_keys, len_k);
  load_tile<HD, G::ld, threads>(sk, kh, k_mma_keys, nk0);
  load_tile<HD, G::ld, threads>(sv, vh, k_mma_keys, nk0);
  cp_async_commit();

  uint32_t qa[HD / 16][4];  // this warp's 16 Q rows as A fragments, one per 16 head dims
  float o[n_db][4];         // O [16][HD] in C layout: o[j] covers columns 8j .. 8j+7
#pragma unroll
  for (int j = 0; j < n_db; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
  softmax_rows rows;  // rows g and g + 8 of the warp's 16 (flash_fragments.cuh)

  for (int tile = 0; tile < n_tiles; ++tile) {
    const int buf = tile & 1;
    if (tile + 1 < n_tiles) {
      // The other buffer was last read in the previous iteration, which ended with __syncthreads.
      const int64_t t1 = int64_t(tile + 1) * k_mma_keys;
      const int nk1 = rows_left(k_mma_keys, len_k - t1);
      load_tile<HD, G::ld, threads>(sk + (buf ^ 1) * G::kv_elems, kh + t1 * HD, k_mma_keys, nk1);
      load_tile<HD, G::ld, threads>(sv + (buf ^ 1) * G::kv_elems, vh + t1 * HD, k_mma_keys, nk1);
      cp_async_commit();
      cp_async_wait<1>();  // everything but the tile just issued has landed
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    if (tile == 0) {
      // A fragments of Q: matrices (rows 0-7 | 8-15) x (dims 0-7 | 8-15) of each 16-dim step are a[0..3]: lane L
      // addresses row L % 16, dims 8 (L / 16).
#pragma unroll
      for (int kk = 0; kk < HD / 16; ++kk)
        ldmatrix_x4(qa[kk], sq + (warp * 16 + (lane & 15)) * G::ld + kk * 16 + (lane >> 4) * 8);
    }
    const uint16_t* kt = sk + buf * G::kv_elems;
    const uint16_t* vt = sv + buf * G::kv_elems;

    // S [16][64] = Q K^T (flash_fragments.cuh).
    float s[n_kb][4];
    scores_tile<HD, n_kb, G::ld>(s, qa, kt);

    // Online softmax in log2 units (flash_fragments.cuh). Causal, on tiles crossing this warp's diagonal: key
    // key0 + i is masked for row r when key0 + i > n_past + r, i.e. i > lim + r (r the row within the warp). Other
    // tiles are wholly visible (or the warp's rows are past the chunk: nothing of theirs is stored).
    const int64_t key0 = int64_t(tile) * k_mma_keys;
    const int nk = rows_left(k_mma_keys, len_k - key0);
    const bool diagonal = CAUSAL && key0 + k_mma_keys - 1 > warp_pos;
    rescale_rows(o, online_softmax<n_kb, CAUSAL>(s, rows, nk, diagonal, warp_pos - key0, a.scale_log2));

    // O [16][HD] += P [16][64] . V [64][HD] (flash_fragments.cuh).
    pv_tile<HD, n_kb, G::ld>(o, s, vt);
    __syncthreads();  // this buffer is refilled by the next iteration's cp.async
  }

  const int64_t first = r0 + warp * 16;
  store_rows(o, rows, first, len, a.out, a.ldo, s0 + first, int64_t(head) * HD, a.out_bf16);
}

// Rows [0, n) of q, k and v (blockIdx.y picks which; type S = F32 or BF16, row strides ld* in elements, head h at
// columns h HD .. h HD + HD - 1) -> bf16 [3][heads][n][HD], rounded to nearest even as core's f32_to_bf16 (BF16
// rows are copied as they are). One row per block iteration: no 64-bit division per element, coalesced reads along
// the row, HD-long contiguous runs written.
template <int HD, dtype S>
__global__ void qkv_to_bf16_heads_kernel(const void* q, int64_t ldq, const void* k, int64_t ldk, const void* v,
                                         int64_t ldv, int64_t n, int heads, uint16_t* dst) {
  const char* src = static_cast<const char*>(blockIdx.y == 0 ? q : blockIdx.y == 1 ? k : v);
  const int64_t ld = blockIdx.y == 0 ? ldq : blockIdx.y == 1 ? ldk : ldv;
  uint16_t* d = dst + int64_t(blockIdx.y) * heads * n * HD;
  const int width = heads * HD;
  for (int64_t r = blockIdx.x; r < n; r += gridDim.x) {
    const char* row = src + r * ld * elem_bytes<S>();
    for (int c = threadIdx.x; c < width; c += blockDim.x) {
      const int h = c / HD, dd = c - h * HD;
      if constexpr (S == dtype::BF16) d[(int64_t(h) * n + r) * HD + dd] = reinterpret_cast<const uint16_t*>(row)[c];
      else d[(int64_t(h) * n + r) * HD + dd] = f32_to_bf16_bits(reinterpret_cast<const float*>(row)[c]);
    }
  }
}

template <int HD, int WARPS, bool CAUSAL>
void launch(const tc_attention_args& m, dim3 grid, const stream_state& s, const std::string& sizes) {
  constexpr size_t smem = mma_geometry<HD, WARPS>::bytes;
  auto* kernel = mma_attention_kernel<HD, WARPS, CAUSAL>;
  if (smem > 48 * 1024)
    check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)),
          "attention (mma): shared memory");
  kernel<<<grid, 32 * WARPS, smem, stream_of(s)>>>(m);
  check_launch(CAUSAL ? "attention_paged (mma)" : "attention_dense (mma)", sizes);
}

template <bool CAUSAL>
void launch_for(const tc_attention_args& m, int head_dim, int warps, dim3 grid, const stream_state& s,
                const std::string& sizes) {
  if (head_dim == 64) {
    if (warps == 8) launch<64, 8, CAUSAL>(m, grid, s, sizes);
    else launch<64, 4, CAUSAL>(m, grid, s, sizes);
  } else {
    if (warps == 8) launch<128, 8, CAUSAL>(m, grid, s, sizes);
    else launch<128, 4, CAUSAL>(m, grid, s, sizes);
  }
}

size_t smem_bytes(int head_dim, int warps) {
  if (head_dim == 64) return warps == 8 ? mma_geometry<64, 8>::bytes : mma_geometry<64, 4>::bytes;
  return warps == 8 ? mma_geometry<128, 8>::bytes : mma_geometry<128, 4>::bytes;
}

}  // namespace

bool dense_mma_fits(int head_dim, int warps, const stream_state& s) {
  if ((head_dim != 64 && head_dim != 128) || (warps != 4 && warps != 8)) return false;
  return smem_bytes(head_dim, warps) <= max_shared_bytes(s);
}

const uint16_t* dense_bf16_heads(const flash_args& a, stream_state& s, const std::string& sizes) {
  const int hd = a.head_dim, heads = a.n_heads;
  const int64_t n = a.n_q_rows;
  AG_CHECK(hd == 64 || hd == 128, "attention_dense: bf16 head copies take head_dim 64 or 128");
  const size_t per = size_t(heads) * size_t(n) * size_t(hd);
  auto* qkv = static_cast<uint16_t*>(workspace(s, 3 * per * sizeof(uint16_t), "attention_dense (tensor cores)"));
  const cudaStream_t st = stream_of(s);
  const dim3 cgrid(unsigned(std::min<int64_t>(n, int64_t(sm_count(s)) * 16)), 3);
  const bool bf = a.qkv_type == dtype::BF16;
  auto kernel = hd == 64 ? (bf ? qkv_to_bf16_heads_kernel<64, dtype::BF16> : qkv_to_bf16_heads_kernel<64, dtype::F32>)
                         : (bf ? qkv_to_bf16_heads_kernel<128, dtype::BF16> : qkv_to_bf16_heads_kernel<128, dtype::F32>);
  kernel<<<cgrid, 256, 0, st>>>(a.q, a.ldq, a.k, a.ldk, a.v, a.ldv, n, heads, qkv);
  check_launch("attention_dense bf16 copies", sizes);
  return qkv;
}

tc_attention_args dense_tc_args(const flash_args& a, const uint16_t* qkv) {
  const size_t per = size_t(a.n_heads) * size_t(a.n_q_rows) * size_t(a.head_dim);
  tc_attention_args m{};
  m.q = qkv;
  m.k = qkv + per;
  m.v = qkv + 2 * per;
  m.q_rows = m.kv_rows = a.n_q_rows;
  m.group = 1;
  m.out = a.out;
  m.ldo = a.ldo;
  m.out_bf16 = a.out_bf16;
  m.segments = a.segments;
  m.scale_log2 = a.scale * 1.4426950408889634f;
  m.flag = a.flag;
  return m;
}

tc_attention_args causal_tc_args(const causal_mma_args& c, const char* what) {
  AG_CHECK(c.heads % c.kv_heads == 0, std::string(what) + ": heads not a multiple of KV heads");
  tc_attention_args m{};
  m.q = c.q;
  m.k = c.k;
  m.v = c.v;
  m.q_rows = c.q_rows;
  m.kv_rows = c.kv_rows;
  m.group = c.heads / c.kv_heads;
  m.out = c.out;
  m.ldo = c.ldo;
  m.n_past = c.n_past;
  m.scale_log2 = c.scale * 1.4426950408889634f;
  m.flag = c.flag;
  return m;
}

void launch_dense_mma(const flash_args& a, int64_t n_seg, int warps, stream_state& s, const std::string& sizes) {
  const tc_attention_args m = dense_tc_args(a, dense_bf16_heads(a, s, sizes));
  // Any segment has at most n rows: row tiles past a segment's end return at once.
  const dim3 grid(blocks_for(a.n_q_rows, 16 * warps), unsigned(n_seg), unsigned(a.n_heads));
  launch_for<false>(m, a.head_dim, warps, grid, s, sizes);
}

void launch_causal_mma(const causal_mma_args& c, int warps, stream_state& s, const std::string& sizes) {
  const tc_attention_args m = causal_tc_args(c, "attention_paged (mma)");
  const dim3 grid(blocks_for(c.q_rows, 16 * warps), 1, unsigned(c.heads));
  launch_for<true>(m, c.head_dim, warps, grid, s, sizes);
}

}  // namespace autoglm::cuda
