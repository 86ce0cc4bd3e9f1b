// kernels/cuda/pos_embed.cu: POS_EMBED_BICUBIC on the GPU (see kernels.h): the vision position table sampled as
// grid_sample(bicubic, border padding, align_corners=False), one block per patch, threads over channels. The
// sample coordinate is computed with the CPU kernel's fp32 operations in its order (no contraction into FMAs),
// so both pick the same taps and weights.
#include <string>

#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/kernels.h"

namespace autoglm::cuda {

namespace {

// PyTorch's cubic convolution kernels (A = -0.75) as used by grid_sample bicubic.
__device__ inline float cubic1(float x, float a) { return ((a + 2.0f) * x - (a + 3.0f)) * x * x + 1.0f; }
__device__ inline float cubic2(float x, float a) { return ((a * x - 5.0f * a) * x + 8.0f * a) * x - 4.0f * a; }

__global__ void bicubic_rows(const float* table, int64_t ldt, int g, int grid_h, int grid_w, const int32_t* pos,
                             int64_t ldp, float* out, int64_t ldo, int64_t dim) {
  const int64_t i = blockIdx.x;
  const float a = -0.75f;
  const float gx = __fsub_rn(__fmul_rn(__fdiv_rn(__fadd_rn(float(pos[ldp + i]), 0.5f), float(grid_w)), 2.0f), 1.0f);
  const float gy = __fsub_rn(__fmul_rn(__fdiv_rn(__fadd_rn(float(pos[i]), 0.5f), float(grid_h)), 2.0f), 1.0f);
  const float ix = __fdiv_rn(__fsub_rn(__fmul_rn(__fadd_rn(gx, 1.0f), float(g)), 1.0f), 2.0f);
  const float iy = __fdiv_rn(__fsub_rn(__fmul_rn(__fadd_rn(gy, 1.0f), float(g)), 1.0f), 2.0f);
  const float fx = floorf(ix), fy = floorf(iy);
  const float tx = ix - fx, ty = iy - fy;
  const float wx[4] = {cubic2(tx + 1.0f, a), cubic1(tx, a), cubic1(1.0f - tx, a), cubic2(2.0f - tx, a)};
  const float wy[4] = {cubic2(ty + 1.0f, a), cubic1(ty, a), cubic1(1.0f - ty, a), cubic2(2.0f - ty, a)};
  int cx[4], cy[4];
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    cx[k] = min(max(int(fx) - 1 + k, 0), g - 1);
    cy[k] = min(max(int(fy) - 1 + k, 0), g - 1);
  }
  float* o = out + i * ldo;
  for (int64_t c = threadIdx.x; c < dim; c += blockDim.x) {
    float rows[4];
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const float* r = table + int64_t(cy[k]) * g * ldt;
      rows[k] = r[cx[0] * ldt + c] * wx[0] + r[cx[1] * ldt + c] * wx[1] + r[cx[2] * ldt + c] * wx[2] +
                r[cx[3] * ldt + c] * wx[3];
    }
    o[c] = rows[0] * wy[0] + rows[1] * wy[1] + rows[2] * wy[2] + rows[3] * wy[3];
  }
}

}  // namespace

void pos_embed_bicubic_kernel(const kernel_context& kc, const tensor& table, int32_t table_grid, int32_t grid_h,
                              int32_t grid_w, const tensor& pos, tensor& out) {
  const mat<float> tm = f32_mat(table, "pos_embed_bicubic table"), om = f32_mat(out, "pos_embed_bicubic out");
  const mat<int32_t> pm = i32_mat(pos, "pos_embed_bicubic pos");
  AG_CHECK(table_grid > 0 && grid_h > 0 && grid_w > 0, "pos_embed_bicubic: empty grid");
  AG_CHECK(tm.rows == int64_t(table_grid) * table_grid && tm.cols == om.cols && pm.rows == 2 && pm.cols == om.rows,
           "pos_embed_bicubic: shapes");
  if (om.rows == 0) return;
  stream_state& s = state_of(kc);
  bicubic_rows<<<blocks_for(om.rows, 1), 128, 0, stream_of(s)>>>(tm.p, tm.ld, table_grid, grid_h, grid_w, pm.p, pm.ld,
                                                                  om.p, om.ld, om.cols);
  check_launch("pos_embed_bicubic", "patches=" + std::to_string(om.rows) + " dim=" + std::to_string(om.cols) +
                                        " table=" + std::to_string(table_grid) + "^2");
}

}  // namespace autoglm::cuda
