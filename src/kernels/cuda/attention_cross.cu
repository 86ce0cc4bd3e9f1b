// kernels/cuda/attention_cross.cu: ATTENTION_CROSS on the GPU (see kernels.h): every query row attends to every key
// row (an encoder-decoder's cross-attention, a media cross-attention layer), no mask, grouped-query heads.
//
// One block of 4 warps per (query row, head). Each warp takes every 4th key: the lanes own head dims lane + 32c,
// a warp sum gives the score, and the warp keeps a running max / sum (online softmax) and its P.V accumulator in
// registers. The 4 partials are merged through shared memory at the end. Arithmetic is F32 with expf (no fast
// math): within F32 rounding of the CPU kernel (a different summation order). The decoder asks for one to a few
// hundred query rows per call, so a block per (row, head) fills the GPU from a few rows on; the encoder states
// (K/V) are read once per row and head, from L2 after the first head of a KV group.
#include <string>

#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/kernels.h"

namespace autoglm::cuda {

namespace {

constexpr int k_threads = 128;
constexpr int k_warps = k_threads / 32;

struct cross_args {
  const float* q;
  int64_t ldq;
  const float* k;
  int64_t ldk;
  const float* v;
  int64_t ldv;
  float* out;
  int64_t ldo;
  int64_t nk;
  int n_heads, group, head_dim;
  float scale;
};

// grid.x = query row * n_heads + head.
template <int NCH>
__global__ void __launch_bounds__(k_threads) cross_kernel(const cross_args a) {
  constexpr int HDP = NCH * 32;
  __shared__ float part_acc[k_warps][HDP];
  __shared__ float part_m[k_warps], part_l[k_warps];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t row = int64_t(blockIdx.x) / a.n_heads;
  const int head = int(int64_t(blockIdx.x) % a.n_heads);
  const int64_t kcol = int64_t(head / a.group) * a.head_dim;

  float qv[NCH], acc[NCH];
#pragma unroll
  for (int c = 0; c < NCH; ++c) {
    const int d = lane + 32 * c;
    qv[c] = d < a.head_dim ? a.q[row * a.ldq + int64_t(head) * a.head_dim + d] : 0.0f;
    acc[c] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  for (int64_t j = warp; j < a.nk; j += k_warps) {
    const float* kr = a.k + j * a.ldk + kcol;
    const float* vr = a.v + j * a.ldv + kcol;
    float s = 0.0f;
#pragma unroll
    for (int c = 0; c < NCH; ++c) {
      const int d = lane + 32 * c;
      if (d < a.head_dim) s = fmaf(qv[c], kr[d], s);
    }
    s = warp_sum(s) * a.scale;  // every lane holds the score
    const float m_new = fmaxf(m, s);
    const float corr = expf(m - m_new);  // 0 on the first key (m = -inf)
    const float p = expf(s - m_new);
    l = l * corr + p;
    m = m_new;
#pragma unroll
    for (int c = 0; c < NCH; ++c) {
      const int d = lane + 32 * c;
      acc[c] = fmaf(p, d < a.head_dim ? vr[d] : 0.0f, acc[c] * corr);
    }
  }
#pragma unroll
  for (int c = 0; c < NCH; ++c) part_acc[warp][lane + 32 * c] = acc[c];
  if (lane == 0) {
    part_m[warp] = m;
    part_l[warp] = l;
  }
  __syncthreads();
  float mx = -INFINITY;
#pragma unroll
  for (int w = 0; w < k_warps; ++w) mx = fmaxf(mx, part_m[w]);
  float wsum[k_warps], total = 0.0f;
#pragma unroll
  for (int w = 0; w < k_warps; ++w) {
    wsum[w] = part_m[w] == -INFINITY ? 0.0f : expf(part_m[w] - mx);  // a warp that saw no key weighs nothing
    total += part_l[w] * wsum[w];
  }
  const float inv = total > 0.0f ? 1.0f / total : 0.0f;  // nk = 0: zeros
  float* o = a.out + row * a.ldo + int64_t(head) * a.head_dim;
  for (int d = threadIdx.x; d < a.head_dim; d += k_threads) {
    float r = 0.0f;
#pragma unroll
    for (int w = 0; w < k_warps; ++w) r = fmaf(part_acc[w][d], wsum[w], r);
    o[d] = r * inv;
  }
}

}  // namespace

void attention_cross_kernel(const kernel_context& kc, const tensor& q, const tensor& k, const tensor& v,
                            int32_t n_heads, int32_t n_kv_heads, int32_t head_dim, float scale, tensor& out) {
  const mat<float> qm = f32_mat(q, "attention_cross q"), km = f32_mat(k, "attention_cross k"),
                   vm = f32_mat(v, "attention_cross v"), om = f32_mat(out, "attention_cross out");
  AG_CHECK(om.rows == qm.rows && vm.rows == km.rows, "attention_cross: rows");
  if (qm.rows == 0) return;
  const int nch = (head_dim + 31) / 32;
  AG_CHECK(nch >= 1 && nch <= 8, "attention_cross: head_dim " + std::to_string(head_dim) +
                                     " over the CUDA kernel's limit of 256");
  const int64_t n_blocks = qm.rows * n_heads;
  AG_CHECK(n_blocks <= 0x7fffffff, "attention_cross: " + std::to_string(n_blocks) + " (row, head) pairs exceed the grid");
  cross_args a{qm.p, qm.ld, km.p, km.ld, vm.p, vm.ld, om.p, om.ld, km.rows, n_heads, n_heads / n_kv_heads,
               head_dim, scale};
  stream_state& s = state_of(kc);
  const unsigned grid = unsigned(n_blocks);
  switch (nch <= 4 ? nch : 8) {
    case 1: cross_kernel<1><<<grid, k_threads, 0, stream_of(s)>>>(a); break;
    case 2: cross_kernel<2><<<grid, k_threads, 0, stream_of(s)>>>(a); break;
    case 3: cross_kernel<3><<<grid, k_threads, 0, stream_of(s)>>>(a); break;
    case 4: cross_kernel<4><<<grid, k_threads, 0, stream_of(s)>>>(a); break;
    default: cross_kernel<8><<<grid, k_threads, 0, stream_of(s)>>>(a); break;
  }
  check_launch("attention_cross", "rows=" + std::to_string(qm.rows) + " keys=" + std::to_string(km.rows) +
                                      " heads=" + std::to_string(n_heads) + "/" + std::to_string(n_kv_heads) +
                                      " head_dim=" + std::to_string(head_dim));
}

}  // namespace autoglm::cuda
