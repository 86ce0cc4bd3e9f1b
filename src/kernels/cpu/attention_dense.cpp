// kernels/cpu/attention_dense.cpp: bidirectional fp32 attention within segments (the vision tower's per-frame
// attention, moved from the model; same arithmetic bit for bit). Segments of 1,024 rows and more take the bf16 AMX
// path on CPUs that have it (attention_amx.h), else the AVX-512 BF16 dots where the CPU has them
// (attention_avx512bf16.h), both under the ROUNDED precision. Per segment and head, K is packed transposed in
// panels of 16 keys and V contiguous [n, head_dim]; query blocks of q_block rows are shared out over the threads.
// Each block computes its [q_block, n] score tile (outer-product kernel over keys, no horizontal sums), an fp32
// softmax with max subtraction, and P.V tiled over keys so the V tile stays in cache. AVX2, AVX-512 and NEON kernels
// form each element by the same FMA chain (the same bits).
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/attention_amx.h"
#include "kernels/cpu/attention_avx512bf16.h"
#include "kernels/cpu/convert.h"
#include "kernels/cpu/cpu_features_arm.h"
#include "kernels/cpu/gemm_kernels.h"
#include "kernels/cpu/kernel_util.h"
#include "kernels/cpu/vec_exp.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif
#if defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace autoglm::cpu {

namespace {

constexpr int64_t q_block = 48;   // query rows per task; a multiple of 6 (score kernel) and 3 (P·V kernel)
constexpr int64_t kv_tile = 64;  // keys per P·V pass: a 64 x 128 fp32 V tile (32 KB) stays in L1 for every row block

// Keys are packed in panels of 16: kp[(p*hd + d)*16 + c] = k[16p + c][d], zero past n, so the score kernel
// reads one contiguous 16 x hd panel per 16 keys. Scores are written with the padded row stride ns.
constexpr int64_t panel = 16;

// s[i, 16p + c] = sum_d q[i, d] * kp[p][d][c] for rows [0, m) and all n_pan panels.
void scores_scalar(const float* q, int64_t m, const float* kp, int64_t n_pan, int64_t hd, float* s, int64_t ns) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t p = 0; p < n_pan; ++p)
      for (int64_t c = 0; c < panel; ++c) {
        float acc = 0.0f;
        for (int64_t d = 0; d < hd; ++d) acc += q[i * hd + d] * kp[(p * hd + d) * panel + c];
        s[i * ns + p * panel + c] = acc;
      }
}

// o[i, d] += sum_{j in [j0, j1)} p[i, j] * v[j, d] for rows [i0, i1) and dims [d0, hd); p has row stride ns.
void pv_scalar(const float* p, int64_t ns, const float* v, int64_t hd, float* o, int64_t i0, int64_t i1, int64_t d0,
               int64_t j0, int64_t j1) {
  for (int64_t i = i0; i < i1; ++i)
    for (int64_t j = j0; j < j1; ++j) {
      const float pij = p[i * ns + j];
      const float* vj = v + j * hd;
      float* oi = o + i * hd;
      for (int64_t d = d0; d < hd; ++d) oi[d] += pij * vj[d];
    }
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) void scores_avx2(const float* q, int64_t m, const float* kp, int64_t n_pan,
                                                      int64_t hd, float* s, int64_t ns) {
  for (int64_t p = 0; p < n_pan; ++p) {
    const float* kb = kp + p * hd * panel;
    float* sp = s + p * panel;
    int64_t i = 0;
    for (; i + 6 <= m; i += 6) {
      __m256 acc[6][2];
#pragma GCC unroll 6
      for (int r = 0; r < 6; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
      for (int64_t d = 0; d < hd; ++d) {
        const __m256 b0 = _mm256_loadu_ps(kb + d * panel), b1 = _mm256_loadu_ps(kb + d * panel + 8);
#pragma GCC unroll 6
        for (int r = 0; r < 6; ++r) {
          const __m256 a = _mm256_broadcast_ss(q + (i + r) * hd + d);
          acc[r][0] = _mm256_fmadd_ps(a, b0, acc[r][0]);
          acc[r][1] = _mm256_fmadd_ps(a, b1, acc[r][1]);
        }
      }
#pragma GCC unroll 6
      for (int r = 0; r < 6; ++r) {
        _mm256_storeu_ps(sp + (i + r) * ns, acc[r][0]);
        _mm256_storeu_ps(sp + (i + r) * ns + 8, acc[r][1]);
      }
    }
    for (; i < m; ++i) {
      __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
      for (int64_t d = 0; d < hd; ++d) {
        const __m256 a = _mm256_broadcast_ss(q + i * hd + d);
        a0 = _mm256_fmadd_ps(a, _mm256_loadu_ps(kb + d * panel), a0);
        a1 = _mm256_fmadd_ps(a, _mm256_loadu_ps(kb + d * panel + 8), a1);
      }
      _mm256_storeu_ps(sp + i * ns, a0);
      _mm256_storeu_ps(sp + i * ns + 8, a1);
    }
  }
}

// o[m, hd] += p[m, n] · v[n, hd] (p row stride ns), 3 rows x 32 dims per register tile, keys in tiles of kv_tile.
__attribute__((target("avx2,fma"))) void pv_avx2(const float* p, int64_t m, int64_t n, int64_t ns, const float* v,
                                                  int64_t hd, float* o) {
  const int64_t hd32 = hd / 32 * 32;
  const int64_t m3 = m / 3 * 3;
  for (int64_t j0 = 0; j0 < n; j0 += kv_tile) {
    const int64_t j1 = std::min(n, j0 + kv_tile);
    for (int64_t i = 0; i < m3; i += 3) {
      for (int64_t d = 0; d < hd32; d += 32) {
        __m256 acc[3][4];
#pragma GCC unroll 3
        for (int r = 0; r < 3; ++r)
#pragma GCC unroll 4
          for (int c = 0; c < 4; ++c) acc[r][c] = _mm256_loadu_ps(o + (i + r) * hd + d + 8 * c);
        for (int64_t j = j0; j < j1; ++j) {
          const float* vj = v + j * hd + d;
          const __m256 v0 = _mm256_loadu_ps(vj), v1 = _mm256_loadu_ps(vj + 8), v2 = _mm256_loadu_ps(vj + 16),
                       v3 = _mm256_loadu_ps(vj + 24);
#pragma GCC unroll 3
          for (int r = 0; r < 3; ++r) {
            const __m256 a = _mm256_broadcast_ss(p + (i + r) * ns + j);
            acc[r][0] = _mm256_fmadd_ps(a, v0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(a, v1, acc[r][1]);
            acc[r][2] = _mm256_fmadd_ps(a, v2, acc[r][2]);
            acc[r][3] = _mm256_fmadd_ps(a, v3, acc[r][3]);
          }
        }
#pragma GCC unroll 3
        for (int r = 0; r < 3; ++r)
#pragma GCC unroll 4
          for (int c = 0; c < 4; ++c) _mm256_storeu_ps(o + (i + r) * hd + d + 8 * c, acc[r][c]);
      }
      if (hd32 < hd) pv_scalar(p, ns, v, hd, o, i, i + 3, hd32, j0, j1);
    }
    if (m3 < m) pv_scalar(p, ns, v, hd, o, m3, m, 0, j0, j1);
  }
}

// The same two kernels on 16-lane vectors (AVX-512F): a key panel is one zmm, the P.V tile 3 rows x 64 dims (the last
// 32-dim chunk of a head_dim that is not a multiple of 64 as 3 rows x 32). Every score and output element is the same
// FMA chain, in the same order, as in the AVX2 kernels: the same bits.
__attribute__((target("avx512f"))) void scores_avx512(const float* q, int64_t m, const float* kp, int64_t n_pan,
                                                      int64_t hd, float* s, int64_t ns) {
  int64_t p = 0;
  for (; p + 2 <= n_pan; p += 2) {  // 6 rows x 2 panels: 12 accumulators, 8 loads per step
    const float* kb = kp + p * hd * panel;
    float* sp = s + p * panel;
    int64_t i = 0;
    for (; i + 6 <= m; i += 6) {
      __m512 acc[6][2];
#pragma GCC unroll 6
      for (int r = 0; r < 6; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
      for (int64_t d = 0; d < hd; ++d) {
        const __m512 b0 = _mm512_loadu_ps(kb + d * panel), b1 = _mm512_loadu_ps(kb + (hd + d) * panel);
#pragma GCC unroll 6
        for (int r = 0; r < 6; ++r) {
          const __m512 a = _mm512_set1_ps(q[(i + r) * hd + d]);
          acc[r][0] = _mm512_fmadd_ps(a, b0, acc[r][0]);
          acc[r][1] = _mm512_fmadd_ps(a, b1, acc[r][1]);
        }
      }
#pragma GCC unroll 6
      for (int r = 0; r < 6; ++r) {
        _mm512_storeu_ps(sp + (i + r) * ns, acc[r][0]);
        _mm512_storeu_ps(sp + (i + r) * ns + panel, acc[r][1]);
      }
    }
    for (; i < m; ++i) {
      __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
      for (int64_t d = 0; d < hd; ++d) {
        const __m512 a = _mm512_set1_ps(q[i * hd + d]);
        a0 = _mm512_fmadd_ps(a, _mm512_loadu_ps(kb + d * panel), a0);
        a1 = _mm512_fmadd_ps(a, _mm512_loadu_ps(kb + (hd + d) * panel), a1);
      }
      _mm512_storeu_ps(sp + i * ns, a0);
      _mm512_storeu_ps(sp + i * ns + panel, a1);
    }
  }
  if (p < n_pan) {  // the odd last panel, one row at a time
    const float* kb = kp + p * hd * panel;
    for (int64_t i = 0; i < m; ++i) {
      __m512 a0 = _mm512_setzero_ps();
      for (int64_t d = 0; d < hd; ++d) a0 = _mm512_fmadd_ps(_mm512_set1_ps(q[i * hd + d]), _mm512_loadu_ps(kb + d * panel), a0);
      _mm512_storeu_ps(s + i * ns + p * panel, a0);
    }
  }
}

// o[rows i .. i + 3, dims d .. d + 16 C] += p . v over keys [j0, j1): C 16-lane chunks per row.
template <int C>
__attribute__((target("avx512f"))) inline void pv_tile_avx512(const float* p, int64_t ns, const float* v, int64_t hd,
                                                              float* o, int64_t i, int64_t d, int64_t j0, int64_t j1) {
  __m512 acc[3][C];
#pragma GCC unroll 3
  for (int r = 0; r < 3; ++r)
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) acc[r][c] = _mm512_loadu_ps(o + (i + r) * hd + d + 16 * c);
  for (int64_t j = j0; j < j1; ++j) {
    const float* vj = v + j * hd + d;
    __m512 vv[C];
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) vv[c] = _mm512_loadu_ps(vj + 16 * c);
#pragma GCC unroll 3
    for (int r = 0; r < 3; ++r) {
      const __m512 a = _mm512_set1_ps(p[(i + r) * ns + j]);
#pragma GCC unroll 4
      for (int c = 0; c < C; ++c) acc[r][c] = _mm512_fmadd_ps(a, vv[c], acc[r][c]);
    }
  }
#pragma GCC unroll 3
  for (int r = 0; r < 3; ++r)
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) _mm512_storeu_ps(o + (i + r) * hd + d + 16 * c, acc[r][c]);
}

__attribute__((target("avx512f"))) void pv_avx512(const float* p, int64_t m, int64_t n, int64_t ns, const float* v,
                                                  int64_t hd, float* o) {
  const int64_t hd64 = hd / 64 * 64, hd32 = hd / 32 * 32;
  const int64_t m3 = m / 3 * 3;
  for (int64_t j0 = 0; j0 < n; j0 += kv_tile) {
    const int64_t j1 = std::min(n, j0 + kv_tile);
    for (int64_t i = 0; i < m3; i += 3) {
      for (int64_t d = 0; d < hd64; d += 64) pv_tile_avx512<4>(p, ns, v, hd, o, i, d, j0, j1);
      if (hd64 < hd32) pv_tile_avx512<2>(p, ns, v, hd, o, i, hd64, j0, j1);
      if (hd32 < hd) pv_scalar(p, ns, v, hd, o, i, i + 3, hd32, j0, j1);
    }
    if (m3 < m) pv_scalar(p, ns, v, hd, o, m3, m, 0, j0, j1);
  }
}
#endif

#if defined(__aarch64__)
// The two kernels on NEON (baseline aarch64): a key panel is 4 q registers, the score tile 4 rows x 16 keys; P.V 3
// rows x 16 dims over the same dims as AVX2 (whole 32-dim chunks, the rest scalar). The same FMA chains, in the same
// order: the same bits as the x86 kernels.
void scores_neon(const float* q, int64_t m, const float* kp, int64_t n_pan, int64_t hd, float* s, int64_t ns) {
  for (int64_t p = 0; p < n_pan; ++p) {
    const float* kb = kp + p * hd * panel;
    float* sp = s + p * panel;
    int64_t i = 0;
    for (; i + 4 <= m; i += 4) {
      float32x4_t acc[4][4];
      for (int r = 0; r < 4; ++r)
        for (int c = 0; c < 4; ++c) acc[r][c] = vdupq_n_f32(0.0f);
      for (int64_t d = 0; d < hd; ++d) {
        float32x4_t b[4];
        for (int c = 0; c < 4; ++c) b[c] = vld1q_f32(kb + d * panel + 4 * c);
        for (int r = 0; r < 4; ++r) {
          const float a = q[(i + r) * hd + d];
          for (int c = 0; c < 4; ++c) acc[r][c] = vfmaq_n_f32(acc[r][c], b[c], a);
        }
      }
      for (int r = 0; r < 4; ++r)
        for (int c = 0; c < 4; ++c) vst1q_f32(sp + (i + r) * ns + 4 * c, acc[r][c]);
    }
    for (; i < m; ++i) {
      float32x4_t acc[4];
      for (int c = 0; c < 4; ++c) acc[c] = vdupq_n_f32(0.0f);
      for (int64_t d = 0; d < hd; ++d) {
        const float a = q[i * hd + d];
        for (int c = 0; c < 4; ++c) acc[c] = vfmaq_n_f32(acc[c], vld1q_f32(kb + d * panel + 4 * c), a);
      }
      for (int c = 0; c < 4; ++c) vst1q_f32(sp + i * ns + 4 * c, acc[c]);
    }
  }
}

void pv_neon(const float* p, int64_t m, int64_t n, int64_t ns, const float* v, int64_t hd, float* o) {
  const int64_t hd32 = hd / 32 * 32;
  const int64_t m3 = m / 3 * 3;
  for (int64_t j0 = 0; j0 < n; j0 += kv_tile) {
    const int64_t j1 = std::min(n, j0 + kv_tile);
    for (int64_t i = 0; i < m3; i += 3) {
      for (int64_t d = 0; d < hd32; d += 16) {
        float32x4_t acc[3][4];
        for (int r = 0; r < 3; ++r)
          for (int c = 0; c < 4; ++c) acc[r][c] = vld1q_f32(o + (i + r) * hd + d + 4 * c);
        for (int64_t j = j0; j < j1; ++j) {
          const float* vj = v + j * hd + d;
          float32x4_t vv[4];
          for (int c = 0; c < 4; ++c) vv[c] = vld1q_f32(vj + 4 * c);
          for (int r = 0; r < 3; ++r) {
            const float a = p[(i + r) * ns + j];
            for (int c = 0; c < 4; ++c) acc[r][c] = vfmaq_n_f32(acc[r][c], vv[c], a);
          }
        }
        for (int r = 0; r < 3; ++r)
          for (int c = 0; c < 4; ++c) vst1q_f32(o + (i + r) * hd + d + 4 * c, acc[r][c]);
      }
      if (hd32 < hd) pv_scalar(p, ns, v, hd, o, i, i + 3, hd32, j0, j1);
    }
    if (m3 < m) pv_scalar(p, ns, v, hd, o, m3, m, 0, j0, j1);
  }
}
#endif

// In place on columns [0, n) of each row of s [m, stride ns]: exp(s*scale - max); row sums into sums[m]. With AVX2
// the whole row is vectorized: exp_avx2 (vec_exp.h: within 2 ulp of std::exp), the sum in double lanes.
void softmax_unnormalized(float* s, int64_t m, int64_t n, int64_t ns, float scale, float* sums, bool avx2,
                          bool avx512) {
  for (int64_t i = 0; i < m; ++i) {
    float* r = s + i * ns;
#if defined(__x86_64__)
    if (avx2) {
      const float mx = scale_max_avx2(r, long(n), scale);
      // AVX-512: the same exponentials and sum 16 lanes at a time (vec_exp.h).
      sums[i] = float(avx512 ? exp_shifted_sum_avx512(r, long(n), mx) : exp_shifted_sum_avx2(r, long(n), mx));
      continue;
    }
#endif
    float mx = -INFINITY;
    for (int64_t j = 0; j < n; ++j) {
      r[j] *= scale;
      mx = std::max(mx, r[j]);
    }
    float sum = 0.0f;
    for (int64_t j = 0; j < n; ++j) {
      r[j] = std::exp(r[j] - mx);
      sum += r[j];
    }
    sums[i] = sum;
  }
}

// out[i] = softmax(q_i . k^T * scale) . v over rows [r0, r0 + n) of one segment, every head.
void dense_segment(thread_pool* pool, rows_of<const float> q, rows_of<const float> k, rows_of<const float> v,
                   int64_t r0, int64_t n, int64_t n_heads, int64_t head_dim, float scale, rows_of<float> out,
                   std::vector<float>& kp, std::vector<float>& vh) {
  if (n <= 0) return;
#if defined(__x86_64__)
  const bool avx2 = cpu_has_avx2(), avx512 = avx2 && gemm_detail::cpu_has_avx512();
#else
  const bool avx2 = false, avx512 = false;
#endif
#if defined(__aarch64__)
  const bool use_neon = cpu_has_neon();
#endif
  const int64_t n_pan = (n + panel - 1) / panel;
  const int64_t ns = n_pan * panel;
  kp.assign(size_t(ns * head_dim), 0.0f);
  vh.resize(size_t(n * head_dim));
  const int64_t n_blocks = (n + q_block - 1) / q_block;
  for (int64_t h = 0; h < n_heads; ++h) {
    const int64_t col = h * head_dim;
    parallel_for(pool, n, 256, [&](int64_t j0, int64_t j1) {
      for (int64_t j = j0; j < j1; ++j) {
        const float* kr = k[r0 + j] + col;
        float* dst = kp.data() + (j / panel) * head_dim * panel + j % panel;
        for (int64_t d = 0; d < head_dim; ++d) dst[d * panel] = kr[d];
        std::copy(v[r0 + j] + col, v[r0 + j] + col + head_dim, vh.data() + j * head_dim);
      }
    });
    parallel_for(pool, n_blocks, 1, [&](int64_t b0, int64_t b1) {
      thread_local std::vector<float> qb, s, o, sums;
      qb.resize(size_t(q_block * head_dim));
      s.resize(size_t(q_block * ns));
      o.resize(size_t(q_block * head_dim));
      sums.resize(size_t(q_block));
      for (int64_t blk = b0; blk < b1; ++blk) {
        const int64_t i0 = blk * q_block;
        const int64_t m = std::min(q_block, n - i0);
        for (int64_t i = 0; i < m; ++i)
          std::copy(q[r0 + i0 + i] + col, q[r0 + i0 + i] + col + head_dim, qb.data() + i * head_dim);
        std::fill(o.begin(), o.end(), 0.0f);
#if defined(__x86_64__)
        if (avx512) scores_avx512(qb.data(), m, kp.data(), n_pan, head_dim, s.data(), ns);
        else if (avx2) scores_avx2(qb.data(), m, kp.data(), n_pan, head_dim, s.data(), ns);
        else
#elif defined(__aarch64__)
        if (use_neon) scores_neon(qb.data(), m, kp.data(), n_pan, head_dim, s.data(), ns);
        else
#endif
          scores_scalar(qb.data(), m, kp.data(), n_pan, head_dim, s.data(), ns);
        softmax_unnormalized(s.data(), m, n, ns, scale, sums.data(), avx2, avx512);
#if defined(__x86_64__)
        if (avx512) pv_avx512(s.data(), m, n, ns, vh.data(), head_dim, o.data());
        else if (avx2) pv_avx2(s.data(), m, n, ns, vh.data(), head_dim, o.data());
        else
#elif defined(__aarch64__)
        if (use_neon) pv_neon(s.data(), m, n, ns, vh.data(), head_dim, o.data());
        else
#endif
          pv_scalar(s.data(), ns, vh.data(), head_dim, o.data(), 0, m, 0, 0, n);
        for (int64_t i = 0; i < m; ++i) {
          const float inv = 1.0f / sums[size_t(i)];
          float* dst = out[r0 + i0 + i] + col;
          for (int64_t d = 0; d < head_dim; ++d) dst[d] = o[size_t(i * head_dim + d)] * inv;
        }
      }
    });
  }
  (void)avx2;
}

rows_of<const float> const_rows(const tensor& t, const char* what) {
  const rows_of<float> r = f32_rows(t, what);
  return {r.base, r.stride};
}

}  // namespace

void attention_dense_kernel(const kernel_context& kc, const tensor& q, const tensor& k, const tensor& v,
                            int32_t n_heads, int32_t head_dim, const tensor& segments, float scale, tensor& out) {
  AG_CHECK(segments.type() == dtype::I32 && segments.is_contiguous(), "attention_dense: segments must be I32");
  const int32_t* seg = segments.ptr<int32_t>();
  const int64_t n_seg = segments.n_elements() - 1;
  AG_CHECK(seg[0] >= 0 && seg[n_seg] <= q.rows(), "attention_dense: segments outside the rows of q");
  const auto qr = const_rows(q, "attention_dense q"), kr = const_rows(k, "attention_dense k"),
             vr = const_rows(v, "attention_dense v");
  const auto orow = f32_rows(out, "attention_dense out");
  std::vector<float> kp, vh;
  for (int64_t s = 0; s < n_seg; ++s) {
    AG_CHECK(seg[s + 1] >= seg[s], "attention_dense: segment offsets must not decrease");
    const int64_t len = seg[s + 1] - seg[s];
    if (attention_dense_uses_amx(len, head_dim))
      attention_dense_segment_amx(kc.pool, qr, kr, vr, seg[s], len, n_heads, head_dim, scale, orow);
    else if (attention_dense_uses_avx512bf16(len, head_dim))
      attention_dense_segment_avx512bf16(kc.pool, qr, kr, vr, seg[s], len, n_heads, head_dim, scale, orow);
    else
      dense_segment(kc.pool, qr, kr, vr, seg[s], len, n_heads, head_dim, scale, orow, kp, vh);
  }
}

}  // namespace autoglm::cpu
