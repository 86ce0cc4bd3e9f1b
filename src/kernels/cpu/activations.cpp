#include "kernels/cpu/activations.h"

#include <cmath>

#include "core/thread_pool.h"

namespace autoglm::cpu {

static inline float silu(float g) { return g / (1.0f + std::exp(-g)); }

void silu_mul_fused(const float* gate_up, int64_t m, int64_t n, float* out) {
  default_thread_pool().parallel_for(m * n, 32768, [&](int64_t a, int64_t b) {
    for (int64_t e = a; e < b; ++e) {
      int64_t r = e / n, j = e % n;
      const float* row = gate_up + r * 2 * n;
      out[e] = silu(row[j]) * row[n + j];
    }
  });
}

void silu_mul(const float* gate, const float* up, int64_t count, float* out) {
  default_thread_pool().parallel_for(count, 32768, [&](int64_t a, int64_t b) {
    for (int64_t e = a; e < b; ++e) out[e] = silu(gate[e]) * up[e];
  });
}

void gelu_erf(float* x, int64_t count) {
  default_thread_pool().parallel_for(count, 32768, [&](int64_t a, int64_t b) {
    for (int64_t e = a; e < b; ++e) x[e] = 0.5f * x[e] * (1.0f + std::erf(x[e] * 0.70710678118654752f));
  });
}

void add_inplace(float* x, const float* y, int64_t count) {
  for (int64_t e = 0; e < count; ++e) x[e] += y[e];
}

}  // namespace autoglm::cpu
