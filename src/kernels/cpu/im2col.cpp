// kernels/cpu/im2col.cpp: IM2COL_1D on the CPU (see im2col.h); output rows are shared out over the threads.
#include "kernels/cpu/im2col.h"

#include <algorithm>

#include "core/thread_pool.h"
#include "kernels/cpu/kernel_util.h"

namespace autoglm::cpu {

void im2col_1d_kernel(const kernel_context& kc, const tensor& x, int32_t kernel_size, int32_t stride, int32_t pad,
                      tensor& out) {
  const auto xr = f32_rows(x, "im2col_1d x"), o = f32_rows(out, "im2col_1d out");
  const int64_t t_in = x.rows(), c = x.cols(), ks = kernel_size;
  parallel_for(kc.pool, out.rows(), std::max<int64_t>(1, 16384 / std::max<int64_t>(1, c * ks)),
               [&](int64_t t0, int64_t t1) {
                 for (int64_t t = t0; t < t1; ++t) {
                   float* dst = o[t];
                   for (int64_t j = 0; j < ks; ++j) {
                     const int64_t src = t * stride + j - pad;
                     const bool inside = src >= 0 && src < t_in;
                     const float* s = inside ? xr[src] : nullptr;
                     for (int64_t ci = 0; ci < c; ++ci) dst[ci * ks + j] = inside ? s[ci] : 0.0f;
                   }
                 }
               });
}

}  // namespace autoglm::cpu
