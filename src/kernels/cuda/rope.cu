// kernels/cuda/rope.cu: M-RoPE (interleaved pairs, text) and 2-D NeoX RoPE (vision), in place (see kernels.h).
// The inverse frequencies are computed on the host exactly as the CPU kernel does (fp32 pow, as HF builds
// inv_freq) and passed by value, so every angle float(p) * inv is the same fp32 product; sincosf is CUDA's
// accurate version (no fast math), within 2 ulp of the host's.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/kernels.h"

namespace autoglm::cuda {

namespace {

constexpr int k_max_pairs = 256;  // rotated pairs per head (head_dim up to 512)
constexpr int k_threads = 128;

struct rope_args {
  float inv[k_max_pairs];
  float* x;
  int64_t ldx;
  int n_heads, head_dim, n_pairs;
  const int32_t* pos;  // planes of `ldp` elements: t, h, w (M-RoPE) or h, w (2-D)
  int64_t ldp;
  int sec0, sec1;  // M-RoPE: pairs [0, sec0) take t, [sec0, sec0+sec1) h, the rest w
};

// Blocks per token: enough for every (head, pair) of a few tokens to get a thread; one per token from 256 tokens.
dim3 rope_grid(int64_t rows, int64_t items) {
  const int64_t parts = std::clamp<int64_t>((items + k_threads - 1) / k_threads, 1, std::max<int64_t>(1, 256 / rows));
  return dim3(blocks_for(rows, 1), unsigned(parts));
}

std::vector<float> inverse_frequencies(int64_t dim, float theta) {
  std::vector<float> inv(size_t(dim / 2));
  for (int64_t i = 0; i < dim / 2; ++i) inv[size_t(i)] = 1.0f / std::pow(theta, float(2 * i) / float(dim));
  return inv;
}

// Blocks (token, part): the parts' threads stride over (head, pair). A decode step's one token spreads over
// several blocks (one block of 128 threads took 5 us for 34 heads x 32 pairs).
__global__ void __launch_bounds__(k_threads) mrope_kernel(const rope_args a) {
  pdl_wait();  // launched as a programmatic dependent (launch_pdl)
  pdl_trigger();
  const int64_t t = blockIdx.x;
  const int32_t pt = a.pos[t], ph = a.pos[a.ldp + t], pw = a.pos[2 * a.ldp + t];
  float* row = a.x + t * a.ldx;
  for (int w = blockIdx.y * k_threads + threadIdx.x; w < a.n_heads * a.n_pairs; w += gridDim.y * k_threads) {
    const int h = w / a.n_pairs, i = w - h * a.n_pairs;
    const int32_t p = i < a.sec0 ? pt : (i < a.sec0 + a.sec1 ? ph : pw);
    float s, c;
    sincosf(__fmul_rn(float(p), a.inv[i]), &s, &c);
    float* v = row + int64_t(h) * a.head_dim + 2 * i;
    const float x0 = v[0], x1 = v[1];
    v[0] = x0 * c - x1 * s;
    v[1] = x1 * c + x0 * s;
  }
}

// Blocks (token, part): threads over (head, d < half); the pair is (d, d + half). Dims [0, quarter) rotate by the
// h position, [quarter, half) by the w position, with frequencies inv[d mod quarter].
__global__ void __launch_bounds__(k_threads) rope_2d_kernel_dev(const rope_args a) {
  pdl_wait();  // launched as a programmatic dependent (launch_pdl)
  pdl_trigger();
  const int64_t t = blockIdx.x;
  const int32_t ph = a.pos[t], pw = a.pos[a.ldp + t];
  const int half = a.head_dim / 2, quarter = a.head_dim / 4;
  float* row = a.x + t * a.ldx;
  for (int w = blockIdx.y * k_threads + threadIdx.x; w < a.n_heads * half; w += gridDim.y * k_threads) {
    const int h = w / half, d = w - h * half;
    const float angle = d < quarter ? __fmul_rn(float(ph), a.inv[d]) : __fmul_rn(float(pw), a.inv[d - quarter]);
    float s, c;
    sincosf(angle, &s, &c);
    float* v = row + int64_t(h) * a.head_dim;
    const float x0 = v[d], x1 = v[d + half];
    v[d] = x0 * c - x1 * s;
    v[d + half] = x1 * c + x0 * s;
  }
}

}  // namespace

void rope_mrope_kernel(const kernel_context& kc, tensor& x, int32_t n_heads, int32_t head_dim, int32_t rot_dim,
                       const tensor& pos, const std::array<int32_t, 3>& sections, float theta) {
  const mat<float> xm = f32_mat(x, "rope_mrope x");
  const mat<int32_t> pm = i32_mat(pos, "rope_mrope pos");
  AG_CHECK(rot_dim / 2 <= k_max_pairs, "rope_mrope: rot_dim " + std::to_string(rot_dim) + " over the CUDA limit of " +
                                            std::to_string(2 * k_max_pairs));
  AG_CHECK(pm.rows == 3 && pm.cols == xm.rows, "rope_mrope: pos must be [3, n]");
  if (xm.rows == 0 || n_heads == 0) return;
  rope_args a{};
  const std::vector<float> inv = inverse_frequencies(rot_dim, theta);
  std::copy(inv.begin(), inv.end(), a.inv);
  a.x = xm.p;
  a.ldx = xm.ld;
  a.n_heads = n_heads;
  a.head_dim = head_dim;
  a.n_pairs = rot_dim / 2;
  a.pos = pm.p;
  a.ldp = pm.ld;
  a.sec0 = sections[0];
  a.sec1 = sections[1];
  stream_state& s = state_of(kc);
  launch_pdl(mrope_kernel, rope_grid(xm.rows, int64_t(n_heads) * a.n_pairs), k_threads, 0, s, "rope_mrope", a);
  check_launch("rope_mrope", "n=" + std::to_string(xm.rows) + " heads=" + std::to_string(n_heads) +
                                 " head_dim=" + std::to_string(head_dim) + " rot_dim=" + std::to_string(rot_dim));
}

void rope_2d_kernel(const kernel_context& kc, tensor& x, int32_t n_heads, int32_t head_dim, const tensor& pos,
                    float theta) {
  const mat<float> xm = f32_mat(x, "rope_2d x");
  const mat<int32_t> pm = i32_mat(pos, "rope_2d pos");
  AG_CHECK(head_dim % 4 == 0 && head_dim / 4 <= k_max_pairs, "rope_2d: head_dim " + std::to_string(head_dim));
  AG_CHECK(pm.rows == 2 && pm.cols == xm.rows, "rope_2d: pos must be [2, n]");
  if (xm.rows == 0 || n_heads == 0) return;
  rope_args a{};
  const std::vector<float> inv = inverse_frequencies(head_dim / 2, theta);  // head_dim / 4 frequencies
  std::copy(inv.begin(), inv.end(), a.inv);
  a.x = xm.p;
  a.ldx = xm.ld;
  a.n_heads = n_heads;
  a.head_dim = head_dim;
  a.pos = pm.p;
  a.ldp = pm.ld;
  stream_state& s = state_of(kc);
  launch_pdl(rope_2d_kernel_dev, rope_grid(xm.rows, int64_t(n_heads) * (head_dim / 2)), k_threads, 0, s, "rope_2d",
             a);
  check_launch("rope_2d", "n=" + std::to_string(xm.rows) + " heads=" + std::to_string(n_heads) +
                              " head_dim=" + std::to_string(head_dim));
}

}  // namespace autoglm::cuda
