#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/thread_pool.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include "kernels/cpu/convert.h"

namespace autoglm::cpu {

namespace {

inline float dot(const float* a, const float* b, int64_t n) {
  float s = 0.0f;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) float dot_avx2(const float* a, const float* b, int64_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  acc0 = _mm256_add_ps(acc0, acc1);
  __m128 lo = _mm_add_ps(_mm256_castps256_ps128(acc0), _mm256_extractf128_ps(acc0, 1));
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
  float s = _mm_cvtss_f32(lo);
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

__attribute__((target("avx2,fma"))) void axpy_avx2(float w, const float* x, float* y, int64_t n) {
  __m256 wv = _mm256_set1_ps(w);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += w * x[i];
}
#endif

inline float fast_dot(const float* a, const float* b, int64_t n) {
#if defined(__x86_64__)
  if (cpu_has_avx2()) return dot_avx2(a, b, n);
#endif
  return dot(a, b, n);
}

inline void axpy(float w, const float* x, float* y, int64_t n) {
#if defined(__x86_64__)
  if (cpu_has_avx2()) return axpy_avx2(w, x, y, n);
#endif
  for (int64_t i = 0; i < n; ++i) y[i] += w * x[i];
}

// Softmax over scores[0..n) in place (fp32, max-subtracted), returns nothing; weights sum to 1.
inline void softmax(float* scores, int64_t n) {
  float mx = -INFINITY;
  for (int64_t j = 0; j < n; ++j) mx = std::max(mx, scores[j]);
  double sum = 0.0;
  for (int64_t j = 0; j < n; ++j) {
    scores[j] = std::exp(scores[j] - mx);
    sum += scores[j];
  }
  const float inv = float(1.0 / sum);
  for (int64_t j = 0; j < n; ++j) scores[j] *= inv;
}

}  // namespace

void attention_paged(const float* q, int64_t q_stride, int64_t n_new, int64_t n_past, int64_t n_heads,
                     int64_t n_kv_heads, int64_t head_dim, float scale, const paged_kv& kv, float* out,
                     int64_t out_stride) {
  const int64_t group = n_heads / n_kv_heads;
  const int64_t token_stride = n_kv_heads * head_dim;        // floats per cached token
  const int64_t block_stride = kv.block_size * token_stride;  // floats per block
  default_thread_pool().parallel_for(n_new * n_heads, 1, [&](int64_t w0, int64_t w1) {
    std::vector<float> scores;
    for (int64_t w = w0; w < w1; ++w) {
      const int64_t i = w / n_heads, h = w % n_heads, kvh = h / group;
      const int64_t n_ctx = n_past + i + 1;
      scores.resize(size_t(n_ctx));
      const float* qi = q + i * q_stride + h * head_dim;
      for (int64_t p = 0; p < n_ctx; ++p) {
        const float* kp = kv.k_pool + int64_t(kv.block_table[p / kv.block_size]) * block_stride +
                          (p % kv.block_size) * token_stride + kvh * head_dim;
        scores[size_t(p)] = fast_dot(qi, kp, head_dim) * scale;
      }
      softmax(scores.data(), n_ctx);
      float* o = out + i * out_stride + h * head_dim;
      std::fill(o, o + head_dim, 0.0f);
      for (int64_t p = 0; p < n_ctx; ++p) {
        const float* vp = kv.v_pool + int64_t(kv.block_table[p / kv.block_size]) * block_stride +
                          (p % kv.block_size) * token_stride + kvh * head_dim;
        axpy(scores[size_t(p)], vp, o, head_dim);
      }
    }
  });
}

void attention_dense(const float* q, const float* k, const float* v, int64_t stride, int64_t n, int64_t n_heads,
                     int64_t head_dim, float scale, float* out, int64_t out_stride) {
  default_thread_pool().parallel_for(n * n_heads, 1, [&](int64_t w0, int64_t w1) {
    std::vector<float> scores(static_cast<size_t>(n));
    for (int64_t w = w0; w < w1; ++w) {
      const int64_t i = w / n_heads, h = w % n_heads;
      const float* qi = q + i * stride + h * head_dim;
      for (int64_t j = 0; j < n; ++j) scores[size_t(j)] = fast_dot(qi, k + j * stride + h * head_dim, head_dim) * scale;
      softmax(scores.data(), n);
      float* o = out + i * out_stride + h * head_dim;
      std::fill(o, o + head_dim, 0.0f);
      for (int64_t j = 0; j < n; ++j) axpy(scores[size_t(j)], v + j * stride + h * head_dim, o, head_dim);
    }
  });
}

}  // namespace autoglm::cpu
