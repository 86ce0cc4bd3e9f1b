// kernels/cpu/norm.cpp: RMSNorm and LayerNorm rows (see norm.h).
#include "kernels/cpu/norm.h"

#include <algorithm>
#include <cmath>

#include "core/thread_pool.h"
#include "kernels/cpu/kernel_util.h"

namespace autoglm::cpu {

namespace {

int64_t row_grain(int64_t n) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, n)); }

// The row sums in double, in one fixed order on every machine: element j goes to partial sum j % 16, in order of j;
// the partials then add pairwise (0+8, 1+9, ..., then halves again). Sixteen independent chains let the compiler
// keep them in vector registers (a single serial chain of dependent double adds cost ~1 ns per element: 2% of a
// prefill). Products of two floats are exact in double, so only the additions round, as before.
constexpr int k_lanes = 16;
template <class Term>
double fixed_order_sum(int64_t n, Term term) {
  double acc[k_lanes] = {};
  int64_t j = 0;
  for (; j + k_lanes <= n; j += k_lanes)
    for (int l = 0; l < k_lanes; ++l) acc[l] += term(j + l);
  for (int l = 0; j + l < n; ++l) acc[l] += term(j + l);
  for (int w = k_lanes / 2; w >= 1; w /= 2)
    for (int l = 0; l < w; ++l) acc[l] += acc[l + w];
  return acc[0];
}
double sum_squares(const float* x, int64_t n) {
  return fixed_order_sum(n, [x](int64_t j) { return double(x[j]) * double(x[j]); });
}

void rms_norm_rows(thread_pool* pool, rows_of<const float> x, const float* weight, int64_t m, int64_t n, float eps,
                   rows_of<float> out) {
  parallel_for(pool, m, row_grain(n), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x[r];
      float* o = out[r];
      const double ss = sum_squares(xr, n);
      const float inv = 1.0f / std::sqrt(float(ss / double(n)) + eps);
      for (int64_t j = 0; j < n; ++j) o[j] = weight[j] * (xr[j] * inv);
    }
  });
}

void layer_norm_rows(thread_pool* pool, rows_of<const float> x, const float* weight, const float* bias, int64_t m,
                     int64_t n, float eps, rows_of<float> out) {
  parallel_for(pool, m, row_grain(n), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x[r];
      float* o = out[r];
      const double mean = fixed_order_sum(n, [xr](int64_t j) { return double(xr[j]); }) / double(n);
      const double v = fixed_order_sum(n, [xr, mean](int64_t j) { return (xr[j] - mean) * (xr[j] - mean); });
      const float inv = 1.0f / std::sqrt(float(v / double(n)) + eps);
      const float mf = float(mean);
      for (int64_t j = 0; j < n; ++j) o[j] = (xr[j] - mf) * inv * weight[j] + (bias ? bias[j] : 0.0f);
    }
  });
}

rows_of<const float> const_rows(rows_of<float> r) { return {r.base, r.stride}; }

}  // namespace

void rms_norm_kernel(const kernel_context& kc, const tensor& x, const tensor& weight, float eps, tensor& y) {
  rms_norm_rows(kc.pool, const_rows(f32_rows(x, "rms_norm x")), f32_vector(weight, "rms_norm weight"), x.rows(),
                x.cols(), eps, f32_rows(y, "rms_norm y"));
}

void residual_rms_norm_kernel(const kernel_context& kc, tensor& x, const tensor& y, const tensor& w_post,
                              const tensor& w_next, float eps, tensor& h) {
  const rows_of<float> xr = f32_rows(x, "residual_rms_norm x");
  const rows_of<const float> yr = const_rows(f32_rows(y, "residual_rms_norm y"));
  const float* wp = f32_vector(w_post, "residual_rms_norm w_post");
  const float* wn = w_next.empty() ? nullptr : f32_vector(w_next, "residual_rms_norm w_next");
  const rows_of<float> hr = wn ? f32_rows(h, "residual_rms_norm h") : rows_of<float>{};
  const int64_t n = x.cols();
  parallel_for(kc.pool, x.rows(), row_grain(n), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float* xv = xr[r];
      const float* yv = yr[r];
      const double ss = sum_squares(yv, n);
      const float inv = 1.0f / std::sqrt(float(ss / double(n)) + eps);
      for (int64_t j = 0; j < n; ++j) xv[j] += wp[j] * (yv[j] * inv);
      if (!wn) continue;
      const double ss2 = sum_squares(xv, n);
      const float inv2 = 1.0f / std::sqrt(float(ss2 / double(n)) + eps);
      float* hv = hr[r];
      for (int64_t j = 0; j < n; ++j) hv[j] = wn[j] * (xv[j] * inv2);
    }
  });
}

void layer_norm_kernel(const kernel_context& kc, const tensor& x, const tensor& weight, const tensor& bias, float eps,
                       tensor& y) {
  layer_norm_rows(kc.pool, const_rows(f32_rows(x, "layer_norm x")), f32_vector(weight, "layer_norm weight"),
                  f32_vector(bias, "layer_norm bias"), x.rows(), x.cols(), eps, f32_rows(y, "layer_norm y"));
}

void rms_norm(const float* x, const float* weight, int64_t m, int64_t n, float eps, float* out) {
  rms_norm_rows(&default_thread_pool(), {x, n}, weight, m, n, eps, {out, n});
}

void layer_norm(const float* x, const float* weight, const float* bias, int64_t m, int64_t n, float eps, float* out) {
  layer_norm_rows(&default_thread_pool(), {x, n}, weight, bias, m, n, eps, {out, n});
}

}  // namespace autoglm::cpu
