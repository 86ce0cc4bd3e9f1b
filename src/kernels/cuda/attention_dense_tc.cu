// kernels/cuda/attention_dense_tc.cu: ATTENTION_DENSE on tensor cores for large images (see attention_dense.cu for
// when it runs). Flash-style over key tiles with WMMA bf16 16x16x16 products and F32 accumulation; Q, K, V and the
// softmax weights P are rounded to bf16 (as a bf16 model computes attention), so results are within bf16 error of
// the F32 kernel, not bit for bit.
//
// A block of 4 warps owns 64 query rows of one segment and one head; each warp owns 16 rows. Per tile of 64 keys:
//   S = Q K^T (each warp: 16 x 64, WMMA, stored to its shared S tile), online softmax on S by the warp's lanes
//   (two lanes per row: running max m, sum l, the correction of the accumulated output), P = bf16(exp(S - m)),
//   O = O * correction + P V (O lives in the warp's shared F32 tile: WMMA's accumulator layout is opaque, so the
//   per-row rescale happens in shared memory and the product is loaded, accumulated and stored back).
// Keys past the segment are zero in K and V and masked to -inf in S; query rows past it are computed on zeros and
// never written.
#include <mma.h>

#include <string>

#include "kernels/cuda/flash.cuh"

namespace autoglm::cuda {

namespace {

using namespace nvcuda;

constexpr int k_tc_rows = 64;  // query rows per block (16 per warp)
constexpr int k_tc_keys = 64;  // keys per tile

// Shared memory layout for head_dim HD (multiple of 16, at most 128), in bytes from the dynamic base.
struct tc_layout {
  int ld_h;   // bf16 elements per row of the Q / K / V tiles: HD + 8 (rows stay 32-byte aligned, banks shift)
  int ld_s;   // floats per row of a warp's S tile: 64 + 4
  int ld_p;   // bf16 per row of a warp's P tile: 64 + 8
  int ld_o;   // floats per row of a warp's O tile: HD + 4
  size_t kv, warp, s, p, o, corr, total;
  explicit __host__ __device__ tc_layout(int hd) {
    ld_h = hd + 8;
    ld_s = k_tc_keys + 4;
    ld_p = k_tc_keys + 8;
    ld_o = hd + 4;
    const size_t qkv = size_t(2) * k_tc_keys * ld_h * 2;  // K and V tiles; the Q tile (64 rows) fits in it first
    kv = 0;
    s = round(qkv);
    p = s + round(size_t(16) * ld_s * 4);
    o = p + round(size_t(16) * ld_p * 2);
    corr = o + round(size_t(16) * ld_o * 4);
    warp = corr + round(size_t(2) * 16 * 4) - s;  // one warp's S, P, O, correction and sum
    total = s + size_t(k_tc_rows / 16) * warp;
  }
  static __host__ __device__ size_t round(size_t b) { return (b + 127) / 128 * 128; }
};

template <int HD>
__global__ void __launch_bounds__(128) dense_tc_kernel(const flash_args a) {
  constexpr int HD16 = HD / 16;
  extern __shared__ __align__(128) uint8_t smem[];
  const tc_layout L(HD);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int seg = blockIdx.y, head = blockIdx.z;
  const int64_t s0 = a.segments[seg], s1 = a.segments[seg + 1];
  if (s0 < 0 || s1 < s0 || s1 > a.n_q_rows) {
    if (tid == 0 && blockIdx.x == 0 && head == 0) flag_bad(a.flag, BAD_SEGMENT, seg);
    return;
  }
  const int64_t len = s1 - s0, r0 = int64_t(blockIdx.x) * k_tc_rows;
  if (r0 >= len) return;

  auto* tile = reinterpret_cast<__nv_bfloat16*>(smem + L.kv);  // Q [64][ld_h], then K [64][ld_h] | V [64][ld_h]
  uint8_t* mine = smem + L.s + size_t(warp) * L.warp;
  auto* S = reinterpret_cast<float*>(mine);                                   // [16][ld_s]
  auto* P = reinterpret_cast<__nv_bfloat16*>(mine + (L.p - L.s));              // [16][ld_p]
  auto* O = reinterpret_cast<float*>(mine + (L.o - L.s));                      // [16][ld_o]
  auto* corr = reinterpret_cast<float*>(mine + (L.corr - L.s));                // [16] corrections, then [16] sums
  const int64_t col0 = int64_t(head) * a.head_dim;

  // Q tile, rounded to bf16 (rows past the segment are zero).
  for (int idx = tid; idx < k_tc_rows * HD; idx += 128) {
    const int r = idx / HD, d = idx - r * HD;
    const float v = r0 + r < len ? a.q[(s0 + r0 + r) * a.ldq + col0 + d] : 0.0f;
    tile[r * L.ld_h + d] = __float2bfloat16_rn(v);
  }
  __syncthreads();
  wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> qa[HD16];
#pragma unroll
  for (int kk = 0; kk < HD16; ++kk) wmma::load_matrix_sync(qa[kk], tile + (warp * 16) * L.ld_h + kk * 16, L.ld_h);
  for (int idx = lane; idx < 16 * L.ld_o; idx += 32) O[idx] = 0.0f;
  // Lane pair (2r, 2r+1) owns row r of the warp's tile: its running max and sum.
  const int row = lane >> 1, half = lane & 1;
  float m = -INFINITY, l = 0.0f;
  __syncthreads();  // every warp has its Q fragments: the tile region takes K and V now

  __nv_bfloat16* Kt = tile;
  __nv_bfloat16* Vt = tile + k_tc_keys * L.ld_h;
  for (int64_t t0 = 0; t0 < len; t0 += k_tc_keys) {
    const int nk = int(min(int64_t(k_tc_keys), len - t0));
    for (int idx = tid; idx < k_tc_keys * HD; idx += 128) {
      const int r = idx / HD, d = idx - r * HD;
      float kv = 0.0f, vv = 0.0f;
      if (r < nk) {
        kv = a.k[(s0 + t0 + r) * a.ldk + col0 + d];
        vv = a.v[(s0 + t0 + r) * a.ldv + col0 + d];
      }
      Kt[r * L.ld_h + d] = __float2bfloat16_rn(kv);
      Vt[r * L.ld_h + d] = __float2bfloat16_rn(vv);
    }
    __syncthreads();

    // S [16 rows][64 keys] = Q K^T: K [key][d] row-major is K^T column-major.
#pragma unroll
    for (int j = 0; j < k_tc_keys / 16; ++j) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::fill_fragment(acc, 0.0f);
#pragma unroll
      for (int kk = 0; kk < HD16; ++kk) {
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> kb;
        wmma::load_matrix_sync(kb, Kt + (j * 16) * L.ld_h + kk * 16, L.ld_h);
        wmma::mma_sync(acc, qa[kk], kb, acc);
      }
      wmma::store_matrix_sync(S + j * 16, acc, L.ld_s, wmma::mem_row_major);
    }
    __syncwarp();

    // Online softmax of row `row` over this tile: each lane of the pair takes 32 of the 64 keys.
    float* srow = S + row * L.ld_s + half * 32;
    float tmax = -INFINITY;
    for (int c = 0; c < 32; ++c)
      if (half * 32 + c < nk) tmax = fmaxf(tmax, srow[c] * a.scale);
    tmax = fmaxf(tmax, __shfl_xor_sync(0xffffffffu, tmax, 1));
    const float m_new = fmaxf(m, tmax);  // finite: every tile has at least one key
    const float cf = expf(m - m_new);    // 0 on the first tile (m = -inf)
    float sum = 0.0f;
    __nv_bfloat16* prow = P + row * L.ld_p + half * 32;
    for (int c = 0; c < 32; ++c) {
      const bool ok = half * 32 + c < nk;
      const __nv_bfloat16 pb = __float2bfloat16_rn(ok ? expf(srow[c] * a.scale - m_new) : 0.0f);
      prow[c] = pb;
      sum += __bfloat162float(pb);  // the weights P.V uses, so the normalization matches them
    }
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    l = l * cf + sum;
    m = m_new;
    if (half == 0) corr[row] = cf;
    __syncwarp();
    for (int idx = lane; idx < 16 * HD; idx += 32) {
      const int r = idx / HD, d = idx - r * HD;
      O[r * L.ld_o + d] *= corr[r];
    }
    __syncwarp();

    // O [16][HD] += P [16][64] . V [64][HD].
    wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> pa[k_tc_keys / 16];
#pragma unroll
    for (int kk = 0; kk < k_tc_keys / 16; ++kk) wmma::load_matrix_sync(pa[kk], P + kk * 16, L.ld_p);
#pragma unroll
    for (int j = 0; j < HD16; ++j) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::load_matrix_sync(acc, O + j * 16, L.ld_o, wmma::mem_row_major);
#pragma unroll
      for (int kk = 0; kk < k_tc_keys / 16; ++kk) {
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> vb;
        wmma::load_matrix_sync(vb, Vt + (kk * 16) * L.ld_h + j * 16, L.ld_h);
        wmma::mma_sync(acc, pa[kk], vb, acc);
      }
      wmma::store_matrix_sync(O + j * 16, acc, L.ld_o, wmma::mem_row_major);
    }
    __syncthreads();  // K and V are overwritten next; this warp's O stores are visible to its lanes
  }

  if (half == 0) corr[16 + row] = l;
  __syncwarp();
  for (int idx = lane; idx < 16 * HD; idx += 32) {
    const int r = idx / HD, d = idx - r * HD;
    const int64_t qr = r0 + warp * 16 + r;
    if (qr < len) {
      const float lr = corr[16 + r];
      a.out[(s0 + qr) * a.ldo + col0 + d] = lr > 0.0f ? O[r * L.ld_o + d] / lr : 0.0f;
    }
  }
}

template <int HD>
void launch(const flash_args& a, dim3 grid, const stream_state& s, const std::string& sizes) {
  const size_t smem = tc_layout(HD).total;
  AG_CHECK(smem <= max_shared_bytes(s), "attention_dense: the tensor-core tile needs " + std::to_string(smem) +
                                            " bytes of shared memory, the device has " +
                                            std::to_string(max_shared_bytes(s)));
  if (smem > 48 * 1024)
    check(cudaFuncSetAttribute(dense_tc_kernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)),
          "attention_dense (tensor cores): shared memory");
  dense_tc_kernel<HD><<<grid, 128, smem, stream_of(s)>>>(a);
  check_launch("attention_dense (tensor cores)", sizes);
}

}  // namespace

bool dense_tensor_cores_fit(int head_dim, const stream_state& s) {
  if (head_dim != 32 && head_dim != 64 && head_dim != 96 && head_dim != 128) return false;
  return tc_layout(head_dim).total <= max_shared_bytes(s);
}

void launch_dense_tensor_cores(const flash_args& a, const stream_state& s, int64_t n_seg, const std::string& sizes) {
  const dim3 grid(blocks_for(a.n_q_rows, k_tc_rows), unsigned(n_seg), unsigned(a.n_heads));
  switch (a.head_dim) {
    case 32: launch<32>(a, grid, s, sizes); break;
    case 64: launch<64>(a, grid, s, sizes); break;
    case 96: launch<96>(a, grid, s, sizes); break;
    default: launch<128>(a, grid, s, sizes); break;
  }
}

}  // namespace autoglm::cuda
