#include "kernels/cpu/norm.h"

#include <cmath>

#include "core/thread_pool.h"

namespace autoglm::cpu {

void rms_norm(const float* x, const float* weight, int64_t m, int64_t n, float eps, float* out) {
  default_thread_pool().parallel_for(m, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, n)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * n;
      float* o = out + r * n;
      double ss = 0.0;
      for (int64_t j = 0; j < n; ++j) ss += double(xr[j]) * xr[j];
      const float inv = 1.0f / std::sqrt(float(ss / double(n)) + eps);
      for (int64_t j = 0; j < n; ++j) o[j] = weight[j] * (xr[j] * inv);
    }
  });
}

void layer_norm(const float* x, const float* weight, const float* bias, int64_t m, int64_t n, float eps, float* out) {
  default_thread_pool().parallel_for(m, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, n)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * n;
      float* o = out + r * n;
      double s = 0.0;
      for (int64_t j = 0; j < n; ++j) s += xr[j];
      const double mean = s / double(n);
      double v = 0.0;
      for (int64_t j = 0; j < n; ++j) v += (xr[j] - mean) * (xr[j] - mean);
      const float inv = 1.0f / std::sqrt(float(v / double(n)) + eps);
      const float mf = float(mean);
      for (int64_t j = 0; j < n; ++j) o[j] = (xr[j] - mf) * inv * weight[j] + (bias ? bias[j] : 0.0f);
    }
  });
}

}  // namespace autoglm::cpu
