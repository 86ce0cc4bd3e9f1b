// kernels/cuda/norm.cu: RMSNorm and LayerNorm (see kernels.h): one block per row, F32 sums over the block (the
// CPU sums in double; an F32 tree sum of a row is within the F32 tolerance of the harness). y may be x itself:
// every thread rereads only the elements it wrote, after the reductions.
#include <string>

#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/kernels.h"

namespace autoglm::cuda {

namespace {

constexpr int k_threads = 256;

__global__ void __launch_bounds__(k_threads)
    rms_norm_rows(const float* x, int64_t ldx, const float* w, int64_t n, float eps, float* y, int64_t ldy) {
  __shared__ float scratch[32];
  const float* xr = x + int64_t(blockIdx.x) * ldx;
  float* yr = y + int64_t(blockIdx.x) * ldy;
  float ss = 0.0f;
  for (int64_t j = threadIdx.x; j < n; j += k_threads) ss = fmaf(xr[j], xr[j], ss);
  ss = block_sum(ss, scratch);
  const float inv = 1.0f / sqrtf(ss / float(n) + eps);
  for (int64_t j = threadIdx.x; j < n; j += k_threads) yr[j] = w[j] * (xr[j] * inv);
}

__global__ void __launch_bounds__(k_threads) layer_norm_rows(const float* x, int64_t ldx, const float* w,
                                                             const float* b, int64_t n, float eps, float* y,
                                                             int64_t ldy) {
  __shared__ float scratch[32];
  const float* xr = x + int64_t(blockIdx.x) * ldx;
  float* yr = y + int64_t(blockIdx.x) * ldy;
  float s = 0.0f;
  for (int64_t j = threadIdx.x; j < n; j += k_threads) s += xr[j];
  const float mean = block_sum(s, scratch) / float(n);
  // Two passes (sum of squared deviations), as the CPU and torch: no cancellation for rows with a large mean.
  float v = 0.0f;
  for (int64_t j = threadIdx.x; j < n; j += k_threads) {
    const float d = xr[j] - mean;
    v = fmaf(d, d, v);
  }
  const float inv = 1.0f / sqrtf(block_sum(v, scratch) / float(n) + eps);
  for (int64_t j = threadIdx.x; j < n; j += k_threads) yr[j] = (xr[j] - mean) * inv * w[j] + b[j];
}

std::string sizes_of(const mat<float>& x) { return "rows=" + std::to_string(x.rows) + " cols=" + std::to_string(x.cols); }

}  // namespace

void rms_norm_kernel(const kernel_context& kc, const tensor& x, const tensor& weight, float eps, tensor& y) {
  const mat<float> xm = f32_mat(x, "rms_norm x"), ym = f32_mat(y, "rms_norm y");
  const float* w = f32_vector(weight, "rms_norm weight");
  AG_CHECK(xm.rows == ym.rows && xm.cols == ym.cols, "rms_norm: shapes");
  if (xm.rows == 0 || xm.cols == 0) return;
  stream_state& s = state_of(kc);
  rms_norm_rows<<<blocks_for(xm.rows, 1), k_threads, 0, stream_of(s)>>>(xm.p, xm.ld, w, xm.cols, eps, ym.p, ym.ld);
  check_launch("rms_norm", sizes_of(xm));
}

void layer_norm_kernel(const kernel_context& kc, const tensor& x, const tensor& weight, const tensor& bias, float eps,
                       tensor& y) {
  const mat<float> xm = f32_mat(x, "layer_norm x"), ym = f32_mat(y, "layer_norm y");
  const float* w = f32_vector(weight, "layer_norm weight");
  const float* b = f32_vector(bias, "layer_norm bias");
  AG_CHECK(xm.rows == ym.rows && xm.cols == ym.cols, "layer_norm: shapes");
  if (xm.rows == 0 || xm.cols == 0) return;
  stream_state& s = state_of(kc);
  layer_norm_rows<<<blocks_for(xm.rows, 1), k_threads, 0, stream_of(s)>>>(xm.p, xm.ld, w, b, xm.cols, eps, ym.p,
                                                                         ym.ld);
  check_launch("layer_norm", sizes_of(xm));
}

}  // namespace autoglm::cuda
