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
// Cost (a 1080x2400 screenshot: 13,416 rows, 12 heads): 1.1e12 FLOP per vision block; the mma.sync kernel reaches
// 236 TFLOP/s on the H200, wgmma's dense bf16 peak is ~990.
#include <cstdlib>
#include <string>
#include <utility>

#include "kernels/cuda/flash.cuh"
#include "kernels/cuda/sm90a/wgmma.cuh"

namespace autoglm::cuda {

namespace {

constexpr int k_wg_hd = 128;                 // head dim: two 64-element swizzle columns per row
constexpr int k_wg_groups = 2;               // warpgroups per block
constexpr int k_wg_rows = 64 * k_wg_groups;  // query rows per block
constexpr int k_wg_threads = 128 * k_wg_groups;

template <int KT>
struct wg_geometry {
  static constexpr int q_bytes = k_wg_rows * k_wg_hd * 2;
  static constexpr int kv_bytes = KT * k_wg_hd * 2;                     // one K or V tile
  static constexpr size_t bytes = size_t(q_bytes + 4 * kv_bytes) + 1024;  // Q, K[2], V[2], alignment slack
};

struct wg_args {
  const uint16_t* q;  // bf16 [heads, rows, 128]
  const uint16_t* k;
  const uint16_t* v;
  int64_t rows;
  float* out;
  int64_t ldo;
  const int32_t* segments;  // I32 [n_seg + 1]
  float scale_log2;         // scale * log2(e)
  uint32_t v_lbo, v_sbo;    // V's MN-major descriptor offsets (bytes)
  int32_t* flag;
};

// R rows x 128 bf16 from src (contiguous rows) into the 128-byte-swizzle tile at dst (1024-byte aligned): element
// (r, d) in column block d / 64 (R x 128 bytes each), row r, 16-byte chunk ((d % 64) / 8) ^ (r % 8). Rows from
// n_valid on are zero-filled without being read (n_valid >= 1). 16 consecutive threads copy one 256-byte row.
template <int R>
__device__ inline void load_swizzled(uint8_t* dst, const uint16_t* src, int n_valid) {
  for (int c = threadIdx.x; c < R * 16; c += k_wg_threads) {
    const int r = c >> 4, ch = c & 15;
    const bool ok = r < n_valid;
    uint8_t* d = dst + (ch >> 3) * (R * 128) + r * 128 + (((ch & 7) ^ (r & 7)) << 4);
    cp_async_16(d, src + int64_t(ok ? r : 0) * k_wg_hd + ch * 8, ok);
  }
}

// min(cap, remaining) as an int (remaining > 0).
__device__ inline int rows_up_to(int cap, int64_t remaining) { return remaining < cap ? int(remaining) : cap; }

template <int KT>
__global__ void __launch_bounds__(k_wg_threads, 1) wgmma_attention_kernel(const wg_args a) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using G = wg_geometry<KT>;
  constexpr int n_kb = KT / 8;  // 8-key blocks of S
  extern __shared__ uint8_t smem_raw[];
  uint8_t* const sq = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));
  uint8_t* const sk = sq + G::q_bytes;      // [2][kv_bytes]
  uint8_t* const sv = sk + 2 * G::kv_bytes;  // [2][kv_bytes]

  const int wg = threadIdx.x >> 7, warp = (threadIdx.x >> 5) & 3, lane = threadIdx.x & 31;
  const int g = lane >> 2, t = lane & 3;
  const int head = blockIdx.z, seg = blockIdx.y;
  const int64_t s0 = a.segments[seg], s1 = a.segments[seg + 1];
  if (s0 < 0 || s1 < s0 || s1 > a.rows) {
    if (threadIdx.x == 0 && blockIdx.x == 0 && head == 0) flag_bad(a.flag, BAD_SEGMENT, seg);
    return;
  }
  const int64_t len = s1 - s0, r0 = int64_t(blockIdx.x) * k_wg_rows;
  if (r0 >= len) return;
  const int64_t base = (int64_t(head) * a.rows + s0) * k_wg_hd;
  const uint16_t* kh = a.k + base;
  const uint16_t* vh = a.v + base;
  const int n_tiles = int((len + KT - 1) / KT);

  load_swizzled<k_wg_rows>(sq, a.q + base + r0 * k_wg_hd, rows_up_to(k_wg_rows, len - r0));
  const int nk0 = rows_up_to(KT, len);
  load_swizzled<KT>(sk, kh, nk0);
  load_swizzled<KT>(sv, vh, nk0);
  cp_async_commit();

  float o[64];  // O [64][128] of this warpgroup in the D layout: o[4j..4j+3] covers columns 8j .. 8j+7
#pragma unroll
  for (int i = 0; i < 64; ++i) o[i] = 0.0f;
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;  // rows g and g + 8 of this warp, as the mma kernel
  // This warpgroup's 64 Q rows: column block c at sq + c * (128 rows x 128 bytes) + wg * (64 x 128 bytes).
  const uint8_t* const q_wg = sq + wg * 64 * 128;

  for (int tile = 0; tile < n_tiles; ++tile) {
    const int buf = tile & 1;
    cp_async_wait<0>();   // this tile (the only group in flight)
    fence_proxy_async();  // cp.async wrote it through the generic proxy; wgmma reads through the async one
    __syncthreads();      // ... for every thread's part; and everyone is done with the other buffer (tile - 1)
    if (tile + 1 < n_tiles) {
      const int64_t t1 = int64_t(tile + 1) * KT;
      const int nk1 = rows_up_to(KT, len - t1);
      load_swizzled<KT>(sk + (buf ^ 1) * G::kv_bytes, kh + t1 * k_wg_hd, nk1);
      load_swizzled<KT>(sv + (buf ^ 1) * G::kv_bytes, vh + t1 * k_wg_hd, nk1);
      cp_async_commit();
    }
    const uint8_t* const kt = sk + buf * G::kv_bytes;
    const uint8_t* const vt = sv + buf * G::kv_bytes;

    // S = Q K^T: k16 step kk reads head dims 16 kk .. 16 kk + 15: column block kk / 4, +32 bytes per step in it.
    float s[KT / 2];
#pragma unroll
    for (int i = 0; i < KT / 2; ++i) s[i] = 0.0f;
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < k_wg_hd / 16; ++kk) {
      const uint64_t da = wgmma_desc(q_wg + (kk >> 2) * (k_wg_rows * 128) + (kk & 3) * 32, 16, 1024);
      const uint64_t db = wgmma_desc(kt + (kk >> 2) * (KT * 128) + (kk & 3) * 32, 16, 1024);
      if constexpr (KT == 64) wgmma_ss_n64(s, da, db, kk > 0);
      else wgmma_ss_n128(s, da, db, kk > 0);
    }
    wgmma_commit();
    wgmma_wait<0>();
    fence_registers(s);

    // Online softmax in log2 units (attention_dense_mma.cu): s[4j], s[4j+1] are row g's keys 8j + 2t, +1;
    // s[4j+2], s[4j+3] row g + 8's. Keys past the segment (zero-filled tiles) are masked.
    const int64_t key0 = int64_t(tile) * KT;
    const int nk = rows_up_to(KT, len - key0);
    float mx0 = m0, mx1 = m1;
#pragma unroll
    for (int j = 0; j < n_kb; ++j) {
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int key = 8 * j + 2 * t + (c & 1);
        s[4 * j + c] = (nk < KT && key >= nk) ? -INFINITY : s[4 * j + c] * a.scale_log2;
      }
      mx0 = fmaxf(mx0, fmaxf(s[4 * j], s[4 * j + 1]));
      mx1 = fmaxf(mx1, fmaxf(s[4 * j + 2], s[4 * j + 3]));
    }
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
    const float b0 = mx0 == -INFINITY ? 0.0f : mx0, b1 = mx1 == -INFINITY ? 0.0f : mx1;
    const float corr0 = exp2f(m0 - b0), corr1 = exp2f(m1 - b1);  // 0 on the first tile (m = -inf)
    m0 = mx0;
    m1 = mx1;
    float sum0 = 0.0f, sum1 = 0.0f;
#pragma unroll
    for (int j = 0; j < n_kb; ++j) {
      s[4 * j] = exp2f(s[4 * j] - b0);
      s[4 * j + 1] = exp2f(s[4 * j + 1] - b0);
      s[4 * j + 2] = exp2f(s[4 * j + 2] - b1);
      s[4 * j + 3] = exp2f(s[4 * j + 3] - b1);
      sum0 += s[4 * j] + s[4 * j + 1];
      sum1 += s[4 * j + 2] + s[4 * j + 3];
    }
    l0 = l0 * corr0 + sum0;
    l1 = l1 * corr1 + sum1;
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      o[4 * j] *= corr0;
      o[4 * j + 1] *= corr0;
      o[4 * j + 2] *= corr1;
      o[4 * j + 3] *= corr1;
    }

    // O += P V: the A fragment of keys 16 kk .. 16 kk + 15 is S's blocks 2 kk and 2 kk + 1 (the mma kernel's
    // packing); V's rows 16 kk .. are 16 rows (2048 bytes) into its tile.
    // All of P is packed before the first product: registers written between products would need fences.
    uint32_t pa[KT / 16][4];
#pragma unroll
    for (int kk = 0; kk < KT / 16; ++kk) {
      pa[kk][0] = pack_bf16x2(s[8 * kk], s[8 * kk + 1]);
      pa[kk][1] = pack_bf16x2(s[8 * kk + 2], s[8 * kk + 3]);
      pa[kk][2] = pack_bf16x2(s[8 * kk + 4], s[8 * kk + 5]);
      pa[kk][3] = pack_bf16x2(s[8 * kk + 6], s[8 * kk + 7]);
    }
    wgmma_fence();  // o and the P registers were written by ordinary instructions
#pragma unroll
    for (int kk = 0; kk < KT / 16; ++kk) wgmma_rs_n128_mn(o, pa[kk], wgmma_desc(vt + kk * 2048, a.v_lbo, a.v_sbo));
    wgmma_commit();
    wgmma_wait<0>();
    fence_registers(o);
  }

  l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
  l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
  const float inv0 = l0 > 0.0f ? 1.0f / l0 : 0.0f, inv1 = l1 > 0.0f ? 1.0f / l1 : 0.0f;
  const int64_t row0 = r0 + wg * 64 + warp * 16 + g, row1 = row0 + 8;
  // Scalar stores: the output view may start at any float.
  if (row0 < len) {
    float* dst = a.out + (s0 + row0) * a.ldo + int64_t(head) * k_wg_hd + 2 * t;
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      dst[8 * j] = o[4 * j] * inv0;
      dst[8 * j + 1] = o[4 * j + 1] * inv0;
    }
  }
  if (row1 < len) {
    float* dst = a.out + (s0 + row1) * a.ldo + int64_t(head) * k_wg_hd + 2 * t;
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      dst[8 * j] = o[4 * j + 2] * inv1;
      dst[8 * j + 1] = o[4 * j + 3] * inv1;
    }
  }
#endif
}

template <int KT>
void launch(const wg_args& w, dim3 grid, const stream_state& s, const std::string& sizes) {
  constexpr size_t smem = wg_geometry<KT>::bytes;
  check(cudaFuncSetAttribute(wgmma_attention_kernel<KT>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)),
        "attention_dense (wgmma): shared memory");
  wgmma_attention_kernel<KT><<<grid, k_wg_threads, smem, stream_of(s)>>>(w);
  check_launch("attention_dense (wgmma)", sizes);
}

}  // namespace

bool dense_wgmma_fits(int head_dim, int key_tile, const stream_state& s) {
  if (head_dim != k_wg_hd || (key_tile != 64 && key_tile != 128)) return false;
  int dev = 0, major = 0, minor = 0;
  check(cudaGetDevice(&dev), "cudaGetDevice");
  check(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev), "compute capability");
  check(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev), "compute capability");
  if (major != 9 || minor != 0) return false;  // sm_90a code runs on compute capability 9.0 only
  const size_t need = key_tile == 64 ? wg_geometry<64>::bytes : wg_geometry<128>::bytes;
  return need <= max_shared_bytes(s);
}

void launch_dense_wgmma(const flash_args& a, int64_t n_seg, int key_tile, stream_state& s, const std::string& sizes) {
  const int64_t n = a.n_q_rows;
  const size_t per = size_t(a.n_heads) * size_t(n) * k_wg_hd;
  const uint16_t* qkv = dense_bf16_heads(a, s, sizes);
  wg_args w{};
  w.q = qkv;
  w.k = qkv + per;
  w.v = qkv + 2 * per;
  w.rows = n;
  w.out = a.out;
  w.ldo = a.ldo;
  w.segments = a.segments;
  w.scale_log2 = a.scale * 1.4426950408889634f;
  // V [KT keys][128] read MN-major: the two 64-element column blocks are KT x 128 bytes apart (LBO), 8 keys to the
  // next 8 are 1024 bytes (SBO). AUTOGLM_CUDA_WGMMA_V_SWAP=1 swaps the two (a bisection switch for the layout).
  w.v_lbo = uint32_t(key_tile * 128);
  w.v_sbo = 1024;
  if (const char* e = std::getenv("AUTOGLM_CUDA_WGMMA_V_SWAP"); e && std::string(e) == "1")
    std::swap(w.v_lbo, w.v_sbo);
  w.flag = a.flag;
  const dim3 grid(blocks_for(n, k_wg_rows), unsigned(n_seg), unsigned(a.n_heads));
  if (key_tile == 64) launch<64>(w, grid, s, sizes);
  else launch<128>(w, grid, s, sizes);
}

}  // namespace autoglm::cuda
