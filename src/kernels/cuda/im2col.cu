// kernels/cuda/im2col.cu: IM2COL_1D on the GPU (see kernels.h): a grid-stride gather, one output element per step.
#include <string>

#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/kernels.h"

namespace autoglm::cuda {

namespace {

constexpr int k_threads = 256;

// out[t, ci*ks + j] = x[t*stride + j - pad, ci], 0 outside the t_in rows of x.
__global__ void im2col_1d_rows(float* out, int64_t ldo, const float* x, int64_t ldx, int64_t t_in, int64_t t_out,
                               int64_t c, int ks, int stride, int pad) {
  const int64_t width = c * ks, total = t_out * width;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t t = e / width, r = e - t * width;
    const int64_t ci = r / ks, j = r - ci * ks;
    const int64_t src = t * stride + j - pad;
    out[t * ldo + r] = (src >= 0 && src < t_in) ? x[src * ldx + ci] : 0.0f;
  }
}

}  // namespace

void im2col_1d_kernel(const kernel_context& kc, const tensor& x, int32_t kernel_size, int32_t stride, int32_t pad,
                      tensor& out) {
  const mat<float> xm = f32_mat(x, "im2col_1d x"), om = f32_mat(out, "im2col_1d out");
  if (om.rows * om.cols == 0) return;
  stream_state& s = state_of(kc);
  im2col_1d_rows<<<stride_grid(om.rows * om.cols, k_threads, s), k_threads, 0, stream_of(s)>>>(
      om.p, om.ld, xm.p, xm.ld, xm.rows, om.rows, xm.cols, kernel_size, stride, pad);
  check_launch("im2col_1d", "t_in=" + std::to_string(xm.rows) + " c=" + std::to_string(xm.cols) + " kernel=" +
                                std::to_string(kernel_size) + " stride=" + std::to_string(stride));
}

}  // namespace autoglm::cuda
