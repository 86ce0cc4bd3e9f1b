// kernels/cpu/activations.cpp: SiLU-gate, erf GELU, residual add (plain and scaled) and row softmax (see
// activations.h).
#include "kernels/cpu/activations.h"

#include <algorithm>
#include <cmath>

#include "core/thread_pool.h"
#include "kernels/cpu/convert.h"
#include "kernels/cpu/gemm_kernels.h"
#include "kernels/cpu/kernel_util.h"
#include "kernels/cpu/vec_exp.h"

namespace autoglm::cpu {

namespace {

constexpr int64_t elem_grain = 32768;  // elements per chunk: element-wise ops are too cheap to split finer

inline float silu(float g) { return g / (1.0f + std::exp(-g)); }
inline float gelu_erf1(float x) { return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752f)); }

// Calls fn(r, j0, j1) for the spans of an [m, n] element range split over the pool by element count, so one
// long row (decode) and many short rows (prefill) both split evenly.
template <class Fn>
void for_each_span(thread_pool* pool, int64_t m, int64_t n, Fn&& fn) {
  if (m <= 0 || n <= 0) return;
  parallel_for(pool, m * n, elem_grain, [&](int64_t e0, int64_t e1) {
    for (int64_t e = e0; e < e1;) {
      const int64_t r = e / n, j0 = e % n, j1 = std::min(n, j0 + (e1 - e));
      fn(r, j0, j1);
      e += j1 - j0;
    }
  });
}

}  // namespace

void silu_mul_kernel(const kernel_context& kc, const tensor& gate, const tensor& up, tensor& out) {
  const auto g = f32_rows(gate, "silu_mul gate"), u = f32_rows(up, "silu_mul up"), o = f32_rows(out, "silu_mul out");
#if defined(__x86_64__)
  const bool avx2 = cpu_has_avx2();  // vec_exp.h: exp within 2 ulp of std::exp
  const bool avx512 = avx2 && gemm_detail::cpu_has_avx512();  // 16 lanes, the same bits
#endif
  for_each_span(kc.pool, gate.rows(), gate.cols(), [&](int64_t r, int64_t j0, int64_t j1) {
    const float* gr = g[r];
    const float* ur = u[r];
    float* orow = o[r];
#if defined(__x86_64__)
    if (avx512) return silu_mul_avx512(gr + j0, ur + j0, orow + j0, long(j1 - j0));
    if (avx2) return silu_mul_avx2(gr + j0, ur + j0, orow + j0, long(j1 - j0));
#endif
    for (int64_t j = j0; j < j1; ++j) orow[j] = silu(gr[j]) * ur[j];
  });
}

void gelu_kernel(const kernel_context& kc, tensor& x) {
  const auto xr = f32_rows(x, "gelu x");
  for_each_span(kc.pool, x.rows(), x.cols(), [&](int64_t r, int64_t j0, int64_t j1) {
    float* row = xr[r];
    for (int64_t j = j0; j < j1; ++j) row[j] = gelu_erf1(row[j]);
  });
}

void add_kernel(const kernel_context& kc, tensor& x, const tensor& y) {
  const auto xr = f32_rows(x, "add x"), yr = f32_rows(y, "add y");
  for_each_span(kc.pool, x.rows(), x.cols(), [&](int64_t r, int64_t j0, int64_t j1) {
    float* a = xr[r];
    const float* b = yr[r];
    for (int64_t j = j0; j < j1; ++j) a[j] += b[j];
  });
}

void add_scaled_kernel(const kernel_context& kc, tensor& x, const tensor& y, float alpha) {
  const auto xr = f32_rows(x, "add_scaled x"), yr = f32_rows(y, "add_scaled y");
  for_each_span(kc.pool, x.rows(), x.cols(), [&](int64_t r, int64_t j0, int64_t j1) {
    float* a = xr[r];
    const float* b = yr[r];
    for (int64_t j = j0; j < j1; ++j) a[j] = std::fma(alpha, b[j], a[j]);
  });
}

void softmax_kernel(const kernel_context& kc, tensor& x, float scale) {
  const auto xr = f32_rows(x, "softmax x");
  const int64_t n = x.cols();
  if (n == 0) return;
  parallel_for(kc.pool, x.rows(), std::max<int64_t>(1, elem_grain / n), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float* row = xr[r];
      float mx = -INFINITY;
      for (int64_t j = 0; j < n; ++j) mx = std::max(mx, row[j] *= scale);
      if (mx == -INFINITY) {  // a fully masked row: all weights zero rather than NaN
        std::fill(row, row + n, 0.0f);
        continue;
      }
      double sum = 0.0;
      for (int64_t j = 0; j < n; ++j) sum += (row[j] = std::exp(row[j] - mx));
      const float inv = float(1.0 / sum);
      for (int64_t j = 0; j < n; ++j) row[j] *= inv;
    }
  });
}

void silu_mul_fused(const float* gate_up, int64_t m, int64_t n, float* out) {
  default_thread_pool().parallel_for(m * n, elem_grain, [&](int64_t a, int64_t b) {
    for (int64_t e = a; e < b; ++e) {
      int64_t r = e / n, j = e % n;
      const float* row = gate_up + r * 2 * n;
      out[e] = silu(row[j]) * row[n + j];
    }
  });
}

void silu_mul(const float* gate, const float* up, int64_t count, float* out) {
  default_thread_pool().parallel_for(count, elem_grain, [&](int64_t a, int64_t b) {
    for (int64_t e = a; e < b; ++e) out[e] = silu(gate[e]) * up[e];
  });
}

void gelu_erf(float* x, int64_t count) {
  default_thread_pool().parallel_for(count, elem_grain, [&](int64_t a, int64_t b) {
    for (int64_t e = a; e < b; ++e) x[e] = gelu_erf1(x[e]);
  });
}

void add_inplace(float* x, const float* y, int64_t count) {
  for (int64_t e = 0; e < count; ++e) x[e] += y[e];
}

}  // namespace autoglm::cpu
