// kernels/cpu/rope.cpp: M-RoPE (interleaved pairs) and 2-D NeoX RoPE (see rope.h).
#include "kernels/cpu/rope.h"

#include <cmath>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/cpu/kernel_util.h"

namespace autoglm::cpu {

namespace {

// HF builds inv_freq as 1 / (theta ** (arange(0, dim, 2).float() / dim)) in fp32; match that rounding.
std::vector<float> inverse_frequencies(int64_t dim, float theta) {
  std::vector<float> inv(size_t(dim / 2));
  for (int64_t i = 0; i < dim / 2; ++i) {
    float expo = float(2 * i) / float(dim);
    inv[size_t(i)] = 1.0f / std::pow(theta, expo);
  }
  return inv;
}

void mrope_rows(thread_pool* pool, float* x, int64_t n_tok, int64_t row_stride, int64_t n_heads, int64_t head_dim,
                int64_t rot_dim, const int32_t* pos_t, const int32_t* pos_h, const int32_t* pos_w,
                const int32_t sections[3], float theta) {
  const std::vector<float> inv = inverse_frequencies(rot_dim, theta);
  const int64_t n_pairs = rot_dim / 2;
  parallel_for(pool, n_tok, 4, [&](int64_t t0, int64_t t1) {
    std::vector<float> c(static_cast<size_t>(n_pairs)), s(static_cast<size_t>(n_pairs));
    for (int64_t t = t0; t < t1; ++t) {
      for (int64_t i = 0; i < n_pairs; ++i) {
        int32_t p = i < sections[0] ? pos_t[t] : (i < sections[0] + sections[1] ? pos_h[t] : pos_w[t]);
        float a = float(p) * inv[size_t(i)];
        c[size_t(i)] = std::cos(a);
        s[size_t(i)] = std::sin(a);
      }
      float* row = x + t * row_stride;
      for (int64_t h = 0; h < n_heads; ++h) {
        float* v = row + h * head_dim;
        for (int64_t i = 0; i < n_pairs; ++i) {
          float a = v[2 * i], b = v[2 * i + 1];
          v[2 * i] = a * c[size_t(i)] - b * s[size_t(i)];
          v[2 * i + 1] = b * c[size_t(i)] + a * s[size_t(i)];
        }
      }
    }
  });
}

void rope_2d_rows(thread_pool* pool, float* x, int64_t n_tok, int64_t row_stride, int64_t n_heads, int64_t head_dim,
                  const int32_t* pos_h, const int32_t* pos_w, float theta) {
  const int64_t half = head_dim / 2;
  const int64_t quarter = head_dim / 4;
  const std::vector<float> inv = inverse_frequencies(half, theta);  // quarter entries
  parallel_for(pool, n_tok, 4, [&](int64_t t0, int64_t t1) {
    std::vector<float> c(static_cast<size_t>(half)), s(static_cast<size_t>(half));
    for (int64_t t = t0; t < t1; ++t) {
      for (int64_t j = 0; j < quarter; ++j) {
        float ah = float(pos_h[t]) * inv[size_t(j)];
        float aw = float(pos_w[t]) * inv[size_t(j)];
        c[size_t(j)] = std::cos(ah);
        s[size_t(j)] = std::sin(ah);
        c[size_t(quarter + j)] = std::cos(aw);
        s[size_t(quarter + j)] = std::sin(aw);
      }
      float* row = x + t * row_stride;
      for (int64_t h = 0; h < n_heads; ++h) {
        float* v = row + h * head_dim;
        for (int64_t d = 0; d < half; ++d) {
          float a = v[d], b = v[d + half];
          v[d] = a * c[size_t(d)] - b * s[size_t(d)];
          v[d + half] = b * c[size_t(d)] + a * s[size_t(d)];
        }
      }
    }
  });
}

}  // namespace

void rope_mrope_kernel(const kernel_context& kc, tensor& x, int32_t n_heads, int32_t head_dim, int32_t rot_dim,
                       const tensor& pos, const std::array<int32_t, 3>& sections, float theta) {
  const rows_of<float> xr = f32_rows(x, "rope_mrope x");
  const rows_of<int32_t> p = i32_rows(pos, "rope_mrope pos");
  mrope_rows(kc.pool, xr.base, x.rows(), xr.stride, n_heads, head_dim, rot_dim, p[0], p[1], p[2], sections.data(),
             theta);
}

void rope_2d_kernel(const kernel_context& kc, tensor& x, int32_t n_heads, int32_t head_dim, const tensor& pos,
                    float theta) {
  const rows_of<float> xr = f32_rows(x, "rope_2d x");
  const rows_of<int32_t> p = i32_rows(pos, "rope_2d pos");
  rope_2d_rows(kc.pool, xr.base, x.rows(), xr.stride, n_heads, head_dim, p[0], p[1], theta);
}

void rope_mrope_interleaved(float* x, int64_t n_tok, int64_t row_stride, int64_t n_heads, int64_t head_dim,
                            int64_t rot_dim, const int32_t* pos_t, const int32_t* pos_h, const int32_t* pos_w,
                            const int32_t sections[3], float theta) {
  mrope_rows(&default_thread_pool(), x, n_tok, row_stride, n_heads, head_dim, rot_dim, pos_t, pos_h, pos_w, sections,
             theta);
}

void rope_2d_neox(float* x, int64_t n_tok, int64_t row_stride, int64_t n_heads, int64_t head_dim, const int32_t* pos_h,
                  const int32_t* pos_w, float theta) {
  rope_2d_rows(&default_thread_pool(), x, n_tok, row_stride, n_heads, head_dim, pos_h, pos_w, theta);
}

}  // namespace autoglm::cpu
