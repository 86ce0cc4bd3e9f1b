// kernels/cuda/linear.cu: LINEAR on the GPU (see kernels.h): y[m, n] = x[m, k] . W[n, k]^T (+ bias).
//  - m <= k_gemv_max_rows (decode): a GEMV that streams W once at the memory bandwidth. A block owns 4 rows of W
//    and its 8 warps split k; each thread loads 16 bytes of each row per step (8 BF16/F16 or 4 F32 weights),
//    decodes them exactly and accumulates against up to 8 rows of x in F32; warp shuffles, then one fixed-order
//    sum over the warps in shared memory (deterministic), then bias. Unaligned rows take a scalar path.
//  - more rows (prefill, vision): cuBLAS. BF16/F16 weights multiply x rounded to the weight's type on tensor
//    cores with F32 accumulation and F32 output (torch's bf16 linear), or, with cuda_gemm_precision::SPLIT
//    (register.h), x as hi + lo parts in two GEMMs (near F32); F32 weights run a plain SGEMM. The bias is written
//    into y first and the GEMM adds to it (beta = 1). LINEAR_ADD on these rows adds the product to an F32 y the same
//    way (beta = 1: the residual add of a vision block without its product written and read back).
//  - x and y may be BF16 (ops::gemm_input_type): a BF16 x goes into a BF16 GEMM as it is (no rounding pass), a BF16
//    y is the GEMM's output rounded once (cuBLAS writes it); other combinations (a BF16 operand of the GEMV, of an
//    F32 or F16 weight, a BF16 y with a bias) convert through F32 or F16 copies in the stream's workspace (COPY's
//    kernel, copy.cu, with its rounding).
#include <cublas_v2.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdlib>
#include <string>
#include <type_traits>

#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/kernels.h"
#include "kernels/cuda/register.h"
#include "kernels/cuda/rope.cuh"

namespace autoglm::cuda {

namespace {

constexpr int k_gemv_threads = 256;
constexpr int k_gemv_warps = k_gemv_threads / 32;
constexpr int k_gemv_rows = 4;  // rows of W per block
constexpr int k_gemv_l2_default_mb = 0;  // AUTOGLM_CUDA_GEMV_L2_MB's default (gemv_l2_prefetch_bytes)

struct gemv_args {
  const float* x;
  int64_t ldx;  // elements
  int m;
  const uint8_t* w;
  int64_t ldw;  // bytes
  // Outputs per row and inputs. SWIGLU (LINEAR_SWIGLU): W holds 2n rows, gate rows [0, n) then up rows [n, 2n),
  // y[i, j] = silu(gate_j) * up_j, and a block owns output columns 2b, 2b + 1 (its 4 W rows: those two gate rows
  // and their up rows).
  int64_t n, k;
  int64_t n_vec;  // 16-byte chunks per W row taken vectorized (0: W rows not 16-byte aligned)
  bool x_vec;     // x rows 16-byte aligned: float4 loads
  const float* bias;
  float* y;
  int64_t ldy;
  // L2 prefetch before waiting for the kernel before this one (see l2_prefetch_slice): blocks [0, l2_blocks) each
  // ask for their share of l2_bytes from l2_base[0] (and as much from l2_base[1]: SWIGLU's up rows); 0: none.
  const uint8_t* l2_base[2];
  int64_t l2_bytes;
  int l2_blocks;
};

// What the GEMV does with its sums besides writing y: nothing, or (LINEAR_ROPE_KV_STORE) rotate the q and k
// columns of a stacked q|k|v output by M-RoPE and store the k and v columns into the paged cache of type C. A block's
// 4 rows are 2 whole rotation pairs (2i, 2i + 1) of one head: the host takes this path only when head_dim and n are
// multiples of 4.
struct no_epilogue {};
template <dtype C>
struct rope_store_epilogue {
  float inv[k_rope_max_pairs];
  int head_dim, n_pairs, sec0, sec1;
  int64_t q_cols, kv_cols;  // y's q columns (n_q_heads * head_dim); its k columns, and its v columns, each
  const int32_t* pos;       // [3, ldp]: t, h, w planes; column i is x's row i
  int64_t ldp;
  kv_slots dst;             // row i's cache slot (a padding row's k and v are rotated, not stored)
};

template <dtype W>
__host__ __device__ constexpr int per16() {
  return W == dtype::F32 ? 4 : 8;
}

// 16 bytes of W as floats, exactly.
template <dtype W>
__device__ inline void unpack16(const uint4& u, float* f) {
  const uint32_t words[4] = {u.x, u.y, u.z, u.w};
  if constexpr (W == dtype::F32) {
#pragma unroll
    for (int i = 0; i < 4; ++i) f[i] = __uint_as_float(words[i]);
  } else {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      if constexpr (W == dtype::BF16) {
        f[2 * i] = __uint_as_float(words[i] << 16);
        f[2 * i + 1] = __uint_as_float(words[i] & 0xffff0000u);
      } else {
        // The hardware conversion: exact for every number (a NaN weight's payload does not matter here).
        f[2 * i] = __half2float(__ushort_as_half(uint16_t(words[i] & 0xffffu)));
        f[2 * i + 1] = __half2float(__ushort_as_half(uint16_t(words[i] >> 16)));
      }
    }
  }
}

// Block b's share of the L2 prefetch of a.l2_bytes from each of a.l2_base: the weights do not depend on the kernel
// before this one, so the blocks resident while that kernel still runs (a decode step's attention, a norm: latency
// bound, the memory idle) start the matrix on its way into L2; the GEMV's own loads then hit L2 for those rows. The
// register prefetch below covers only the resident wave's rows (about a third of a 4096-wide matrix).
__device__ inline void l2_prefetch_slice(const gemv_args& a) {
  if (a.l2_bytes <= 0 || int(blockIdx.x) >= a.l2_blocks) return;
  const int64_t share = (a.l2_bytes / a.l2_blocks + 15) & ~int64_t(15);
  const int64_t lo = int64_t(blockIdx.x) * share, hi = min(a.l2_bytes, lo + share);
  if (lo >= hi) return;
#pragma unroll
  for (int part = 0; part < 2; ++part) {
    const uint8_t* base = a.l2_base[part];
    if (!base) continue;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    // Warp 0's lanes each issue one bulk prefetch (the TMA unit fetches it; the sizes are multiples of 16).
    constexpr int64_t piece_max = 64 * 1024;
    for (int64_t off = lo + int64_t(threadIdx.x) * piece_max; threadIdx.x < 32 && off < hi; off += 32 * piece_max) {
      const uint32_t bytes = uint32_t(min(piece_max, hi - off));
      asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(base + off), "r"(bytes) : "memory");
    }
#elif defined(__CUDA_ARCH__)
    for (int64_t off = lo + int64_t(threadIdx.x) * 128; off < hi; off += int64_t(blockDim.x) * 128)
      asm volatile("prefetch.global.L2 [%0];" ::"l"(base + off));
#endif
  }
}

__device__ inline float silu_f32(float g) { return g / (1.0f + expf(-g)); }

// Writes the sums (v0, v1) of output columns col, col + 1 of x's row i as the epilogue asks: rotated when they are a
// pair of a q or k head's first 2 n_pairs dims; k and v columns also into the row's cache slot (rounded as KV_STORE).
template <dtype C>
__device__ inline void rope_store_pair(const rope_store_epilogue<C>& e, float* yrow, int i, int64_t col, float v0,
                                       float v1) {
  const int64_t rot_cols = e.q_cols + e.kv_cols;  // q and k heads
  const int d = int(col % e.head_dim);
  if (col < rot_cols && d < 2 * e.n_pairs) {
    const float2 r = mrope_rotate(v0, v1, d / 2, e.sec0, e.sec1, e.pos[i], e.pos[e.ldp + i], e.pos[2 * e.ldp + i],
                                  e.inv);
    v0 = r.x;
    v1 = r.y;
  }
  yrow[col] = v0;
  yrow[col + 1] = v1;
  if (col < e.q_cols) return;
  const kv_slots& cache = e.dst;
  const int64_t slot = cache.slots[i];
  if (slot >= cache.capacity) {
    flag_bad(cache.flag, BAD_KV_SLOT, slot);
    return;
  }
  if (slot < 0) return;
  const bool is_v = col >= rot_cols;
  const int64_t c = col - (is_v ? rot_cols : e.q_cols);
  uint8_t* dst = (is_v ? cache.vc : cache.kc) + cache.row_offset(slot) + (c / e.head_dim) * cache.c_head;
  store_elem<C>(dst, c % e.head_dim, v0);
  store_elem<C>(dst, c % e.head_dim + 1, v1);
}

template <dtype W, int M, bool SWIGLU, int PF, class EPI>
__global__ void __launch_bounds__(k_gemv_threads) gemv_kernel(gemv_args a, EPI e) {
  constexpr bool ROPE = !std::is_same_v<EPI, no_epilogue>;
  constexpr int E = per16<W>();
  constexpr int pairs = k_gemv_rows / 2;  // SWIGLU: output columns per block
  const int tid = threadIdx.x;
  const int64_t row0 = int64_t(blockIdx.x) * (SWIGLU ? pairs : k_gemv_rows);
  // Rows past n read row0 again (always valid) and are dropped at the end: no divergence inside the loop.
  const uint8_t* wrow[k_gemv_rows];
#pragma unroll
  for (int r = 0; r < k_gemv_rows; ++r) {
    if constexpr (SWIGLU) {
      const int64_t j = row0 + r % pairs < a.n ? row0 + r % pairs : row0;
      wrow[r] = a.w + (r < pairs ? j : a.n + j) * a.ldw;
    } else {
      wrow[r] = a.w + (row0 + r < a.n ? row0 + r : row0) * a.ldw;
    }
  }

  float acc[M][k_gemv_rows];
#pragma unroll
  for (int i = 0; i < M; ++i)
#pragma unroll
    for (int r = 0; r < k_gemv_rows; ++r) acc[i][r] = 0.0f;

  // acc += x[:, chunk c] . the block's rows' chunk c (u: their 16-byte pieces).
  auto accumulate = [&](int64_t c, const uint4 (&u)[k_gemv_rows]) {
    float wv[k_gemv_rows][E];
#pragma unroll
    for (int r = 0; r < k_gemv_rows; ++r) unpack16<W>(u[r], wv[r]);
#pragma unroll
    for (int i = 0; i < M; ++i) {
      if (i >= a.m) break;
      const float* xr = a.x + i * a.ldx + c * E;
      float xv[E];
      if (a.x_vec) {
#pragma unroll
        for (int q = 0; q < E / 4; ++q) {
          const float4 f = __ldg(reinterpret_cast<const float4*>(xr) + q);
          xv[4 * q] = f.x;
          xv[4 * q + 1] = f.y;
          xv[4 * q + 2] = f.z;
          xv[4 * q + 3] = f.w;
        }
      } else {
#pragma unroll
        for (int e = 0; e < E; ++e) xv[e] = __ldg(xr + e);
      }
#pragma unroll
      for (int r = 0; r < k_gemv_rows; ++r)
#pragma unroll
        for (int e = 0; e < E; ++e) acc[i][r] = fmaf(xv[e], wv[r][e], acc[i][r]);
    }
  };

  // The weights never depend on the kernel before this one, x does: the block's first PF chunks of each row are
  // on their way before waiting for that kernel (launched as a programmatic dependent, this overlaps its tail; a
  // 4096-wide BF16 row is 2 chunks per thread, so PF = 2 has the whole of such a matrix in flight early).
  l2_prefetch_slice(a);
  uint4 early[PF][k_gemv_rows] = {};
#pragma unroll
  for (int f = 0; f < PF; ++f) {
    const int64_t c = tid + int64_t(f) * k_gemv_threads;
    if (c < a.n_vec)
#pragma unroll
      for (int r = 0; r < k_gemv_rows; ++r) early[f][r] = __ldg(reinterpret_cast<const uint4*>(wrow[r]) + c);
  }
  pdl_wait();
  pdl_trigger();

#pragma unroll
  for (int f = 0; f < PF; ++f) {
    const int64_t c = tid + int64_t(f) * k_gemv_threads;
    if (c < a.n_vec) accumulate(c, early[f]);
  }
  for (int64_t c = tid + int64_t(PF) * k_gemv_threads; c < a.n_vec; c += k_gemv_threads) {
    uint4 u[k_gemv_rows];
#pragma unroll
    for (int r = 0; r < k_gemv_rows; ++r) u[r] = __ldg(reinterpret_cast<const uint4*>(wrow[r]) + c);
    accumulate(c, u);
  }
  // The elements past the last whole 16-byte chunk (or every element when W is unaligned).
  for (int64_t j = a.n_vec * E + tid; j < a.k; j += k_gemv_threads) {
    float wv[k_gemv_rows];
#pragma unroll
    for (int r = 0; r < k_gemv_rows; ++r) wv[r] = load_elem<W>(wrow[r], j);
#pragma unroll
    for (int i = 0; i < M; ++i) {
      if (i >= a.m) break;
      const float xv = __ldg(a.x + i * a.ldx + j);
#pragma unroll
      for (int r = 0; r < k_gemv_rows; ++r) acc[i][r] = fmaf(xv, wv[r], acc[i][r]);
    }
  }

  __shared__ float partial[k_gemv_warps][M * k_gemv_rows];
  const int lane = tid & 31, warp = tid >> 5;
#pragma unroll
  for (int i = 0; i < M; ++i)
#pragma unroll
    for (int r = 0; r < k_gemv_rows; ++r) {
      const float v = warp_sum(acc[i][r]);
      if (lane == 0) partial[warp][i * k_gemv_rows + r] = v;
    }
  __syncthreads();
  if constexpr (SWIGLU) {
    if (tid < M * pairs) {
      const int i = tid / pairs, p = tid % pairs;
      const int64_t col = row0 + p;
      if (i < a.m && col < a.n) {
        float g = 0.0f, u = 0.0f;
#pragma unroll
        for (int wi = 0; wi < k_gemv_warps; ++wi) {
          g += partial[wi][i * k_gemv_rows + p];
          u += partial[wi][i * k_gemv_rows + pairs + p];
        }
        if (a.bias) {
          g += a.bias[col];
          u += a.bias[a.n + col];
        }
        a.y[i * a.ldy + col] = silu_f32(g) * u;
      }
    }
    return;
  }
  if constexpr (ROPE) {
    // Thread (i, p): x's row i, the block's pair p (rows row0 + 2p, + 1), summed as below (same order, same bias
    // add), then rotated and stored.
    if (tid < M * pairs) {
      const int i = tid / pairs, p = tid % pairs;
      const int64_t col = row0 + 2 * p;
      if (i < a.m && col < a.n) {
        float s0 = 0.0f, s1 = 0.0f;
#pragma unroll
        for (int wi = 0; wi < k_gemv_warps; ++wi) {
          s0 += partial[wi][i * k_gemv_rows + 2 * p];
          s1 += partial[wi][i * k_gemv_rows + 2 * p + 1];
        }
        rope_store_pair(e, a.y + i * a.ldy, i, col, s0 + (a.bias ? a.bias[col] : 0.0f),
                        s1 + (a.bias ? a.bias[col + 1] : 0.0f));
      }
    }
    return;
  }
  if (tid < M * k_gemv_rows) {
    const int i = tid / k_gemv_rows, r = tid % k_gemv_rows;
    const int64_t row = row0 + r;
    if (i < a.m && row < a.n) {
      float s = 0.0f;
#pragma unroll
      for (int wi = 0; wi < k_gemv_warps; ++wi) s += partial[wi][tid];
      a.y[i * a.ldy + row] = s + (a.bias ? a.bias[row] : 0.0f);
    }
  }
}

// AUTOGLM_CUDA_GEMV_PREFETCH=1, 2 or 4: 16-byte chunks per weight row and thread that a one-row GEMV requests
// before waiting for the kernel before it (default 2; benchmarks compare them).
int gemv_prefetch() {
  static const int pf = [] {
    const int64_t v = env_integer("AUTOGLM_CUDA_GEMV_PREFETCH", 2, 1, 4);
    if (v == 3) throw error("AUTOGLM_CUDA_GEMV_PREFETCH is '3': use 1, 2 or 4");
    return int(v);
  }();
  return pf;
}

// AUTOGLM_CUDA_GEMV_L2_MB: how many MB of a one-row GEMV's weights (from the start of its rows; SWIGLU: as many of
// its gate and of its up rows) its first blocks ask into L2 before waiting for the kernel before it (0: none).
// Measured on an H100 (2026-12-05, 9B dims, 2 rounds interleaved): 0 / 24 / 48 / 96 MB decode 149.5 / 149.7 /
// 144.5 / 131.8 tokens/s at context 512: the register prefetch already covers the wave resident early, and bulk L2
// requests compete with the kernel before for bandwidth; hence off by default.
int64_t gemv_l2_prefetch_bytes() {
  static const int64_t bytes = env_integer("AUTOGLM_CUDA_GEMV_L2_MB", k_gemv_l2_default_mb, 0, 4096) << 20;
  return bytes;
}

template <dtype W, bool SWIGLU = false, class EPI = no_epilogue>
void launch_gemv(gemv_args a, const stream_state& s, const EPI& e = {}) {
  const unsigned grid = blocks_for(a.n, SWIGLU ? k_gemv_rows / 2 : k_gemv_rows);
  // One decoding sequence (the latency case) takes the prefetch depth gemv_prefetch() asks for; batches 1.
  const int pf = gemv_prefetch();
  if (a.m <= 1 && a.n_vec > 0 && a.ldw == a.k * (16 / per16<W>())) {
    // Contiguous rows: the first min(cap, all) bytes of the matrix (SWIGLU: of each half, n rows), over one block
    // per SM (those are resident first).
    const int64_t cap = gemv_l2_prefetch_bytes() / (SWIGLU ? 2 : 1);
    a.l2_bytes = std::min(cap, a.n * a.ldw);
    a.l2_base[0] = a.w;
    a.l2_base[1] = SWIGLU ? a.w + a.n * a.ldw : nullptr;
    a.l2_blocks = int(std::min<int64_t>(grid, sm_count(s)));
  }
  void (*kernel)(gemv_args, EPI) = a.m <= 1   ? (pf >= 4   ? gemv_kernel<W, 1, SWIGLU, 4, EPI>
                                                 : pf == 2 ? gemv_kernel<W, 1, SWIGLU, 2, EPI>
                                                           : gemv_kernel<W, 1, SWIGLU, 1, EPI>)
                                   : a.m <= 2 ? gemv_kernel<W, 2, SWIGLU, 1, EPI>
                                   : a.m <= 4 ? gemv_kernel<W, 4, SWIGLU, 1, EPI>
                                              : gemv_kernel<W, 8, SWIGLU, 1, EPI>;
  // A programmatic dependent of the kernel before it (see gemv_kernel): scheduled while that one finishes.
  // The q|k|v GEMV (the RoPE epilogue) precedes decode attention: the largest shared-memory split when that will
  // be the tensor-core kernel (see smem_carveout in cuda_host.h).
  launch_extras ex;
  if constexpr (!std::is_same_v<EPI, no_epilogue>)
    ex.smem_carveout = smem_carveout(last_decode_on_tensor_cores(s) ? 100 : -1);
  launch_pdl_ex(kernel, grid, k_gemv_threads, 0, s, "linear gemv", ex, a, e);
}

std::atomic<int> g_precision{int(cuda_gemm_precision::ROUNDED)};

template <dtype T>
__device__ inline uint16_t round_to(float v) {
  return T == dtype::BF16 ? f32_to_bf16_bits(v) : f32_to_f16_bits(v);
}
template <dtype T>
__device__ inline float value_of(uint16_t h) {
  return T == dtype::BF16 ? bf16_bits_to_f32(h) : f16_bits_to_f32(h);
}

// x [m, k] F32 (row stride ldx) -> hi [m, k] contiguous BF16 or F16 (round to nearest even, as torch's .to()) and,
// when lo is set, lo [m, k] = the rounding of what hi missed (x - hi), so hi + lo carries about 16 bits of x.
template <dtype T>
__global__ void round_rows_kernel(const float* x, int64_t ldx, int64_t m, int64_t k, uint16_t* hi, uint16_t* lo) {
  const int64_t total = m * k;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = e / k, j = e - i * k;
    const float v = x[i * ldx + j];
    const uint16_t h = round_to<T>(v);
    hi[e] = h;
    if (lo) lo[e] = round_to<T>(v - value_of<T>(h));
  }
}

// The same over 4 columns per thread (k % 4 == 0, x rows 16-byte aligned): float4 loads, 8-byte stores; grid
// row_grid(m, k / 4).
template <dtype T>
__global__ void round_rows_vec4(const float* x, int64_t ldx, int64_t m, int64_t k4, uint16_t* hi, uint16_t* lo) {
  const int64_t c = int64_t(blockIdx.y) * blockDim.x + threadIdx.x;
  if (c >= k4) return;
  for (int64_t i = blockIdx.x; i < m; i += gridDim.x) {
    const float4 v = reinterpret_cast<const float4*>(x + i * ldx)[c];
    const uint16_t h0 = round_to<T>(v.x), h1 = round_to<T>(v.y), h2 = round_to<T>(v.z), h3 = round_to<T>(v.w);
    reinterpret_cast<uint2*>(hi + i * k4 * 4)[c] = make_uint2(h0 | uint32_t(h1) << 16, h2 | uint32_t(h3) << 16);
    if (lo) {
      const uint16_t l0 = round_to<T>(v.x - value_of<T>(h0)), l1 = round_to<T>(v.y - value_of<T>(h1)),
                     l2 = round_to<T>(v.z - value_of<T>(h2)), l3 = round_to<T>(v.w - value_of<T>(h3));
      reinterpret_cast<uint2*>(lo + i * k4 * 4)[c] = make_uint2(l0 | uint32_t(l1) << 16, l2 | uint32_t(l3) << 16);
    }
  }
}

template <dtype T>
void round_rows(const mat<float>& x, uint16_t* hi, uint16_t* lo, const stream_state& s) {
  const int64_t m = x.rows, k = x.cols;
  const cudaStream_t st = stream_of(s);
  if (k % 4 == 0 && x.ld % 4 == 0 && reinterpret_cast<uintptr_t>(x.p) % 16 == 0)
    round_rows_vec4<T><<<row_grid(m, k / 4, 256, s), 256, 0, st>>>(x.p, x.ld, m, k / 4, hi, lo);
  else
    round_rows_kernel<T><<<stride_grid(m * k, 256, s), 256, 0, st>>>(x.p, x.ld, m, k, hi, lo);
}

// An operand's memory as a tensor view on `dev`, for COPY (copy.cu) to convert between dtypes and row strides.
tensor view_of(const act_mat& a, const device& dev) {
  const int64_t es = int64_t(dtype_size(a.type));
  return tensor::strided(a.p, a.type, {a.rows, a.cols}, {a.ld * es, es}, dev);
}

// y[i, j] = bias[j]: the GEMM then adds its product (beta = 1). Grid row_grid(m, n).
__global__ void fill_bias_kernel(float* y, int64_t ldy, int64_t m, int64_t n, const float* bias) {
  const int64_t j = int64_t(blockIdx.y) * blockDim.x + threadIdx.x;
  if (j >= n) return;
  const float b = bias[j];
  for (int64_t i = blockIdx.x; i < m; i += gridDim.x) y[i * ldy + j] = b;
}

int as_int(int64_t v, const char* what) {
  AG_CHECK(v >= 0 && v <= INT_MAX, std::string("linear: ") + what + " " + std::to_string(v) + " exceeds cuBLAS's int");
  return int(v);
}

cudaDataType_t cuda_type(dtype t) { return t == dtype::BF16 ? CUDA_R_16BF : t == dtype::F16 ? CUDA_R_16F : CUDA_R_32F; }

// The stream's workspace cut into consecutive pieces of one linear call (16-byte aligned).
struct workspace_pieces {
  char* base = nullptr;
  size_t used = 0;
  void* take(size_t bytes) {
    void* p = base + used;
    used += (bytes + 15) / 16 * 16;
    return p;
  }
};

// accumulate: y (F32) += the product instead of y = (no bias then: fill_bias_kernel would overwrite y).
void gemm_cublas(const kernel_context& kc, stream_state& s, const act_mat& x, const tensor& W, int64_t ldw,
                 const float* bias, const act_mat& y, const std::string& sizes, bool accumulate = false) {
  const cudaStream_t st = stream_of(s);
  auto h = static_cast<cublasHandle_t>(blas_handle(s));
  const int64_t m = x.rows, n = y.cols, k = x.cols;
  const int im = as_int(m, "rows"), in = as_int(n, "out_features"), ik = as_int(k, "in_features");
  const int ildw = as_int(ldw, "weight row stride");
  const dtype wt = W.type();
  const bool split = wt != dtype::F32 && x.type == dtype::F32 &&
                     g_precision.load(std::memory_order_relaxed) == int(cuda_gemm_precision::SPLIT);
  // x as the GEMM takes it: W's type (F32 for an SGEMM); a BF16 x of a BF16 weight as it is, when its rows are
  // 16-byte aligned (cuBLAS's tensor-core kernels need that of 16-bit operands; other views are copied).
  const auto aligned16 = [](const act_mat& a) {
    return a.type == dtype::F32 || (reinterpret_cast<uintptr_t>(a.p) % 16 == 0 && a.ld % 8 == 0);
  };
  const bool x_direct = x.type == wt && aligned16(x);
  // y as the GEMM writes it: F32, or BF16 straight from cuBLAS unless a bias, an SGEMM, split precision or an
  // unaligned view asks for F32 first.
  const bool y_direct = y.type == dtype::F32 || (bias == nullptr && wt != dtype::F32 && !split && aligned16(y));
  AG_CHECK(!accumulate || (y.type == dtype::F32 && bias == nullptr), "linear: accumulating GEMM needs an F32 y, no bias");
  const size_t part = size_t(m) * size_t(k), x_bytes = part * size_t(dtype_size(wt));
  const size_t ws_bytes = (x_direct ? 0 : x_bytes * (split ? 2 : 1) + 16) +
                          (y_direct ? 0 : size_t(m) * size_t(n) * sizeof(float) + 16);
  workspace_pieces ws{ws_bytes ? static_cast<char*>(workspace(s, ws_bytes, "linear")) : nullptr};
  const void* xp = x.p;
  int64_t ldx = x.ld;
  void* lo = nullptr;
  if (!x_direct) {
    void* xr = ws.take(x_bytes * (split ? 2 : 1));
    ldx = k;
    xp = xr;
    if (x.type == dtype::F32) {
      lo = split ? static_cast<char*>(xr) + x_bytes : nullptr;
      if (wt == dtype::BF16) round_rows<dtype::BF16>({static_cast<float*>(x.p), x.ld, m, k}, static_cast<uint16_t*>(xr),
                                                     static_cast<uint16_t*>(lo), s);
      else round_rows<dtype::F16>({static_cast<float*>(x.p), x.ld, m, k}, static_cast<uint16_t*>(xr),
                                  static_cast<uint16_t*>(lo), s);
      check_launch("linear x rounding", sizes);
    } else {
      tensor xc = view_of({xr, k, m, k, wt}, W.dev());
      copy_kernel(kc, view_of(x, W.dev()), xc);  // BF16 x -> F32 (SGEMM), F16, or a contiguous BF16 copy
    }
  }
  void* yp = y.p;
  int64_t ldy = y.ld;
  dtype yt = y.type;
  if (!y_direct) {
    yp = ws.take(size_t(m) * size_t(n) * sizeof(float));
    ldy = n;
    yt = dtype::F32;
  }
  const int ildx = as_int(ldx, "x row stride"), ildy = as_int(ldy, "y row stride");
  const float alpha = 1.0f, beta = bias || accumulate ? 1.0f : 0.0f;
  if (bias) {
    fill_bias_kernel<<<row_grid(m, n, 256, s), 256, 0, st>>>(static_cast<float*>(yp), ldy, m, n, bias);
    check_launch("linear bias", sizes);
  }
  if (wt == dtype::F32) {
    // Column-major view: y^T [n, m] = W [k, n]^T . x^T [k, m].
    check_cublas(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, in, im, ik, &alpha, W.ptr<float>(), ildw,
                             static_cast<const float*>(xp), ildx, &beta, static_cast<float*>(yp), ildy),
                 "sgemm " + sizes);
  } else {
    const cudaDataType_t t = cuda_type(wt);
    const std::string what = std::string(wt == dtype::BF16 ? "bf16" : "f16") + " gemm ";
    check_cublas(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, in, im, ik, &alpha, W.data(), t, ildw, xp, t, ildx, &beta,
                              yp, cuda_type(yt), ildy, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 what + sizes);
    if (lo) {
      const float one = 1.0f;  // y += W . lo
      check_cublas(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, in, im, ik, &alpha, W.data(), t, ildw, lo, t, ik, &one,
                                yp, CUDA_R_32F, ildy, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                   what + "(low part) " + sizes);
    }
  }
  if (!y_direct) {
    tensor yv = view_of(y, W.dev());
    copy_kernel(kc, view_of({yp, ldy, m, n, dtype::F32}, W.dev()), yv);  // F32 -> BF16, rounded once
  }
}

}  // namespace

namespace {

// The weight as the CUDA kernels take it: F32/F16/BF16 with contiguous rows.
void check_weight(const linear_weight& w) {
  const tensor& W = w.weight;
  const dtype wt = W.type();
  AG_CHECK(wt == dtype::F32 || wt == dtype::F16 || wt == dtype::BF16,
           std::string("linear: CUDA weights are F32, F16 or BF16, not ") + dtype_name(wt));
  AG_CHECK(W.n_dims() == 2 && W.stride(1) == int64_t(dtype_size(wt)), "linear: weight '" + w.name +
                                                                          "' must have contiguous rows");
  AG_CHECK(W.row_stride() % int64_t(dtype_size(wt)) == 0, "linear: weight row stride");
}

// The GEMV of x [m <= k_gemv_max_rows, k] by W; n outputs per row (SWIGLU: W has 2n rows).
template <bool SWIGLU, class EPI = no_epilogue>
void run_gemv(stream_state& s, const mat<float>& xm, const tensor& W, int64_t n, const float* bias,
              const mat<float>& ym, const EPI& e = {}) {
  const dtype wt = W.type();
  gemv_args a{};
  a.x = xm.p;
  a.ldx = xm.ld;
  a.m = int(xm.rows);
  a.w = static_cast<const uint8_t*>(W.data());
  a.ldw = W.row_stride();
  a.n = n;
  a.k = W.dim(1);
  const bool w_aligned = reinterpret_cast<uintptr_t>(a.w) % 16 == 0 && a.ldw % 16 == 0;
  const int64_t e16 = wt == dtype::F32 ? 4 : 8;
  a.n_vec = w_aligned ? a.k / e16 : 0;
  a.x_vec = reinterpret_cast<uintptr_t>(a.x) % 16 == 0 && a.ldx % 4 == 0;
  a.bias = bias;
  a.y = ym.p;
  a.ldy = ym.ld;
  if (wt == dtype::BF16) launch_gemv<dtype::BF16, SWIGLU>(a, s, e);
  else if (wt == dtype::F16) launch_gemv<dtype::F16, SWIGLU>(a, s, e);
  else launch_gemv<dtype::F32, SWIGLU>(a, s, e);
}

std::string sizes_of(int64_t m, int64_t n, int64_t k, const linear_weight& w) {
  return "m=" + std::to_string(m) + " n=" + std::to_string(n) + " k=" + std::to_string(k) + " " +
         dtype_name(w.weight.type()) + " weight '" + w.name + "'";
}

}  // namespace

namespace {

// The GEMV on F32 operands; a BF16 x or y (a batch of a few rows handed BF16 activations) goes through F32 copies in
// the stream's workspace.
template <bool SWIGLU>
void gemv_any(const kernel_context& kc, stream_state& s, const act_mat& x, const tensor& W, int64_t n,
              const float* bias, const act_mat& y, const std::string& sizes) {
  const size_t xb = x.type == dtype::F32 ? 0 : size_t(x.rows * x.cols) * sizeof(float) + 16;
  const size_t yb = y.type == dtype::F32 ? 0 : size_t(y.rows * y.cols) * sizeof(float) + 16;
  workspace_pieces ws{xb + yb ? static_cast<char*>(workspace(s, xb + yb, "linear gemv")) : nullptr};
  mat<float> xf{static_cast<float*>(x.p), x.ld, x.rows, x.cols}, yf{static_cast<float*>(y.p), y.ld, y.rows, y.cols};
  if (xb) {
    xf = {static_cast<float*>(ws.take(xb)), x.cols, x.rows, x.cols};
    tensor xc = view_of({xf.p, xf.ld, xf.rows, xf.cols, dtype::F32}, W.dev());
    copy_kernel(kc, view_of(x, W.dev()), xc);
  }
  if (yb) yf = {static_cast<float*>(ws.take(yb)), y.cols, y.rows, y.cols};
  run_gemv<SWIGLU>(s, xf, W, n, bias, yf);
  check_launch(SWIGLU ? "linear_swiglu gemv" : "linear gemv", sizes);
  if (yb) {
    tensor yv = view_of(y, W.dev());
    copy_kernel(kc, view_of({yf.p, yf.ld, yf.rows, yf.cols, dtype::F32}, W.dev()), yv);
  }
}

}  // namespace

void linear_kernel(const kernel_context& kc, const tensor& x, const linear_weight& w, tensor& y) {
  check_weight(w);
  const tensor& W = w.weight;
  const act_mat xm = act_of(x, "linear x"), ym = act_of(y, "linear y");
  const int64_t m = xm.rows, n = W.dim(0), k = W.dim(1);
  AG_CHECK(xm.cols == k && ym.rows == m && ym.cols == n, "linear: shapes");
  const float* bias = nullptr;
  if (!w.bias.empty()) bias = f32_vector(w.bias, "linear bias");
  if (m == 0 || n == 0) return;
  stream_state& s = state_of(kc);
  const std::string sizes = sizes_of(m, n, k, w);
  if (m > k_gemv_max_rows) {
    gemm_cublas(kc, s, xm, W, W.row_stride() / int64_t(dtype_size(W.type())), bias, ym, sizes);
    return;
  }
  gemv_any<false>(kc, s, xm, W, n, bias, ym, sizes);
}

void linear_add_kernel(const kernel_context& kc, const tensor& x, const linear_weight& w, tensor& tmp, tensor& y) {
  check_weight(w);
  const tensor& W = w.weight;
  const act_mat xm = act_of(x, "linear_add x"), ym = act_of(y, "linear_add y");
  const int64_t m = xm.rows, n = W.dim(0), k = W.dim(1);
  AG_CHECK(xm.cols == k && ym.rows == m && ym.cols == n && ym.type == dtype::F32, "linear_add: shapes");
  if (m == 0 || n == 0) return;
  if (m > k_gemv_max_rows && w.bias.empty()) {
    stream_state& s = state_of(kc);
    gemm_cublas(kc, s, xm, W, W.row_stride() / int64_t(dtype_size(W.type())), nullptr, ym, sizes_of(m, n, k, w),
                /*accumulate=*/true);
    return;
  }
  // Decode rows (the GEMV has no accumulating store) and biased projections: the product into tmp, then ADD.
  linear_kernel(kc, x, w, tmp);
  add_kernel(kc, y, tmp);
}

void linear_swiglu_kernel(const kernel_context& kc, const tensor& x, const linear_weight& w, tensor& tmp, tensor& y) {
  check_weight(w);
  const tensor& W = w.weight;
  const act_mat xm = act_of(x, "linear_swiglu x"), ym = act_of(y, "linear_swiglu y");
  const int64_t m = xm.rows, n = ym.cols, k = W.dim(1);
  AG_CHECK(xm.cols == k && ym.rows == m && W.dim(0) == 2 * n, "linear_swiglu: shapes");
  if (m == 0 || n == 0) return;
  if (m > k_gemv_max_rows) {
    // Tensor cores into tmp [m, 2n], then the gate: the GEMM's output is what the fusion would save, and at these
    // row counts the GEMM dominates. A BF16 y takes gate | up as BF16 (the GEMM rounds them, as torch's bf16
    // modules do) in tmp's first half: half the bytes written and read back.
    const mat<float> t = f32_mat(tmp, "linear_swiglu tmp");
    AG_CHECK(t.rows == m && t.cols == 2 * n, "linear_swiglu: tmp shape");
    if (ym.type == dtype::BF16) {
      tensor gu = tensor::view(t.p, dtype::BF16, {m, 2 * n}, tmp.dev());
      linear_kernel(kc, x, w, gu);
      tensor gate = gu.cols_view(0, n), up = gu.cols_view(n, n);
      silu_mul_kernel(kc, gate, up, y);
      return;
    }
    linear_kernel(kc, x, w, tmp);
    tensor gate = tmp.cols_view(0, n), up = tmp.cols_view(n, n);
    silu_mul_kernel(kc, gate, up, y);
    return;
  }
  const float* bias = nullptr;
  if (!w.bias.empty()) bias = f32_vector(w.bias, "linear_swiglu bias");
  stream_state& s = state_of(kc);
  gemv_any<true>(kc, s, xm, W, n, bias, ym, sizes_of(m, n, k, w));
}

void linear_rope_kv_store_kernel(const kernel_context& kc, const tensor& x, const linear_weight& w, tensor& y,
                                 int32_t n_q_heads, int32_t rot_dim, const tensor& pos,
                                 const std::array<int32_t, 3>& sections, float theta, const paged_kv_layer& kv,
                                 const tensor& slots) {
  check_weight(w);
  const tensor& W = w.weight;
  const cache_geom g = geometry(kv, "linear_rope_kv_store");
  const act_mat xm = act_of(x, "linear_rope_kv_store x"), ym = act_of(y, "linear_rope_kv_store y");
  const int64_t m = xm.rows, n = W.dim(0), k = W.dim(1);
  const int64_t kvd = int64_t(g.n_kv_heads) * g.head_dim, qd = int64_t(n_q_heads) * g.head_dim;
  AG_CHECK(xm.cols == k && ym.rows == m && ym.cols == n && n == qd + 2 * kvd, "linear_rope_kv_store: shapes");
  if (m == 0) return;
  // The fused GEMV: a decode step's rows, F32 activations, a cache the epilogue can round into, whole pairs per block.
  const bool fused = m <= k_gemv_max_rows && xm.type == dtype::F32 && ym.type == dtype::F32 && g.head_dim % 4 == 0 &&
                     rot_dim / 2 <= k_rope_max_pairs && slots.is_contiguous() &&
                     (g.type == dtype::F32 || g.type == dtype::F16 || g.type == dtype::BF16);
  if (!fused) {
    linear_kernel(kc, x, w, y);
    tensor qk = y.cols_view(0, qd + kvd);
    rope_kv_store_kernel(kc, qk, n_q_heads, rot_dim, pos, sections, theta, kv, y.cols_view(qd + kvd, kvd), slots);
    return;
  }
  const mat<int32_t> pm = i32_mat(pos, "linear_rope_kv_store pos");
  AG_CHECK(pm.rows == 3 && pm.cols == m, "linear_rope_kv_store: pos must be [3, n]");
  stream_state& s = state_of(kc);
  const float* bias = w.bias.empty() ? nullptr : f32_vector(w.bias, "linear_rope_kv_store bias");
  const mat<float> xf{static_cast<float*>(xm.p), xm.ld, m, k}, yf{static_cast<float*>(ym.p), ym.ld, m, n};
  // The epilogue of the cache's type (rope_store_epilogue<C>), filled, and the GEMV with it.
  auto run = [&](auto e) {
    const std::vector<float> inv = rope_inverse_frequencies(rot_dim, theta);
    std::copy(inv.begin(), inv.end(), e.inv);
    e.head_dim = g.head_dim;
    e.n_pairs = rot_dim / 2;
    e.sec0 = sections[0];
    e.sec1 = sections[1];
    e.q_cols = qd;
    e.kv_cols = kvd;
    e.pos = pm.p;
    e.ldp = pm.ld;
    e.dst = kv_slots_of(kv, g, slots, s);
    run_gemv<false>(s, xf, W, n, bias, yf, e);
  };
  if (g.type == dtype::F32) run(rope_store_epilogue<dtype::F32>{});
  else if (g.type == dtype::F16) run(rope_store_epilogue<dtype::F16>{});
  else run(rope_store_epilogue<dtype::BF16>{});
  check_launch("linear_rope_kv_store gemv", sizes_of(m, n, k, w) + " q_heads=" + std::to_string(n_q_heads) +
                                                " kv_heads=" + std::to_string(g.n_kv_heads));
}

}  // namespace autoglm::cuda

namespace autoglm {

void set_cuda_gemm_precision(cuda_gemm_precision p) { cuda::g_precision.store(int(p)); }
cuda_gemm_precision get_cuda_gemm_precision() { return cuda_gemm_precision(cuda::g_precision.load()); }

dtype cuda_gemm_input_type(int64_t rows) {
  return rows > cuda::k_gemv_max_rows && get_cuda_gemm_precision() == cuda_gemm_precision::ROUNDED ? dtype::BF16
                                                                                                  : dtype::F32;
}

}  // namespace autoglm
