// kernels/cpu/pos_embed.cpp: bicubic sampling of the vision position table (see pos_embed.h).
#include "kernels/cpu/pos_embed.h"

#include <algorithm>
#include <cmath>

#include "core/thread_pool.h"
#include "kernels/cpu/kernel_util.h"

namespace autoglm::cpu {

namespace {

// PyTorch's cubic convolution kernels (A = -0.75) as used by grid_sample bicubic.
inline float cubic1(float x, float a) { return ((a + 2.0f) * x - (a + 3.0f)) * x * x + 1.0f; }
inline float cubic2(float x, float a) { return ((a * x - 5.0f * a) * x + 8.0f * a) * x - 4.0f * a; }

}  // namespace

void pos_embed_bicubic_kernel(const kernel_context& kc, const tensor& table, int32_t table_grid, int32_t grid_h,
                              int32_t grid_w, const tensor& pos, tensor& out) {
  const auto tab = f32_rows(table, "pos_embed_bicubic table");
  const auto p = i32_rows(pos, "pos_embed_bicubic pos");
  const auto o = f32_rows(out, "pos_embed_bicubic out");
  const int32_t* pos_h = p[0];
  const int32_t* pos_w = p[1];
  const int64_t dim = out.cols();
  const float a = -0.75f;
  const int32_t g = table_grid;
  AG_CHECK(g > 0 && grid_h > 0 && grid_w > 0, "pos_embed_bicubic: empty grid");
  parallel_for(kc.pool, out.rows(), 16, [&](int64_t p0, int64_t p1) {
    for (int64_t i = p0; i < p1; ++i) {
      // Normalized grid coordinate exactly as HF computes it (fp32), then grid_sample's unnormalize for
      // align_corners=False.
      const float gx = ((float(pos_w[i]) + 0.5f) / float(grid_w)) * 2.0f - 1.0f;
      const float gy = ((float(pos_h[i]) + 0.5f) / float(grid_h)) * 2.0f - 1.0f;
      const float ix = ((gx + 1.0f) * float(g) - 1.0f) / 2.0f;
      const float iy = ((gy + 1.0f) * float(g) - 1.0f) / 2.0f;
      const float fx = std::floor(ix), fy = std::floor(iy);
      const float tx = ix - fx, ty = iy - fy;
      const float wx[4] = {cubic2(tx + 1.0f, a), cubic1(tx, a), cubic1(1.0f - tx, a), cubic2(2.0f - tx, a)};
      const float wy[4] = {cubic2(ty + 1.0f, a), cubic1(ty, a), cubic1(1.0f - ty, a), cubic2(2.0f - ty, a)};
      // Border padding: every tap index is clamped into the table.
      int32_t cx[4], cy[4];
      for (int k = 0; k < 4; ++k) {
        cx[k] = std::clamp(int32_t(fx) - 1 + k, 0, g - 1);
        cy[k] = std::clamp(int32_t(fy) - 1 + k, 0, g - 1);
      }
      float* orow = o[i];
      for (int64_t c = 0; c < dim; ++c) {
        float rows[4];
        for (int k = 0; k < 4; ++k) {
          const int64_t r = int64_t(cy[k]) * g;
          rows[k] = tab[r + cx[0]][c] * wx[0] + tab[r + cx[1]][c] * wx[1] + tab[r + cx[2]][c] * wx[2] +
                    tab[r + cx[3]][c] * wx[3];
        }
        orow[c] = rows[0] * wy[0] + rows[1] * wy[1] + rows[2] * wy[2] + rows[3] * wy[3];
      }
    }
  });
}

}  // namespace autoglm::cpu
