// kernels/cpu/attention.cpp: paged KV store and causal paged attention over F32/F16/BF16 caches, plus the legacy
// dense attention (see attention.h) and the per-head arithmetic the attention kernels share (attention_common.h).
// Paged attention groups the batch's new rows so their scores fit a bounded buffer and runs the three-pass
// kernel of attention_paged.cpp on each group; under the ROUNDED precision a sequence's prefill of 64+ rows takes
// AMX tiles instead where they are usable (attention_amx.h), else the AVX-512 BF16 path where the CPU has it
// (attention_avx512bf16.h; both bf16 operands, f32 sums). Per head the arithmetic is that of the original per-row
// kernel: dot (AVX2: two 8-lane accumulators; NEON: the same as four 4-lane ones) * scale, softmax with a double
// sum, P.V accumulated in position order.
#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/cpu/attention_amx.h"
#include "kernels/cpu/attention_avx512bf16.h"
#include "kernels/cpu/attention_common.h"
#include "kernels/cpu/convert.h"
#include "kernels/cpu/gemm_kernels.h"
#include "kernels/cpu/kernel_util.h"
#include "kernels/cpu/quant_kv.h"
#include "kernels/cpu/transpose_avx512.h"
#include "kernels/cpu/vec_exp.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif
#if defined(__aarch64__)
#include <arm_neon.h>

#include "kernels/cpu/cpu_features_arm.h"
#endif

namespace autoglm::cpu {

namespace attn {

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

// dot_avx2's sum of 8 lanes (acc0 + acc1 already added).
__attribute__((target("avx2,fma"))) inline float lane_sum_avx2(__m256 v) {
  __m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
  return _mm_cvtss_f32(lo);
}

// 2 query heads x 2 key rows over n (a multiple of 16) elements: four dot_avx2 at once, each with its own two
// accumulators in dot_avx2's order (q and k multiply commutatively: the same FMAs), so the four sums are its bits;
// each times scale into o0[0..1] (head 0) and o1[0..1] (head 1). Per 16 elements 4 q and 4 k loads serve 8 FMAs
// (dot_avx2: 4 loads per 2 FMAs).
__attribute__((target("avx2,fma"))) void dots_2x2_avx2(const float* q0, const float* q1, const float* k0,
                                                       const float* k1, int64_t n, float scale, float* o0, float* o1) {
  __m256 a000 = _mm256_setzero_ps(), a001 = a000, a010 = a000, a011 = a000;  // [head][key][accumulator]
  __m256 a100 = a000, a101 = a000, a110 = a000, a111 = a000;
  for (int64_t i = 0; i < n; i += 16) {
    const __m256 qa0 = _mm256_loadu_ps(q0 + i), qa1 = _mm256_loadu_ps(q0 + i + 8);
    const __m256 qb0 = _mm256_loadu_ps(q1 + i), qb1 = _mm256_loadu_ps(q1 + i + 8);
    __m256 k = _mm256_loadu_ps(k0 + i);
    a000 = _mm256_fmadd_ps(qa0, k, a000);
    a100 = _mm256_fmadd_ps(qb0, k, a100);
    k = _mm256_loadu_ps(k0 + i + 8);
    a001 = _mm256_fmadd_ps(qa1, k, a001);
    a101 = _mm256_fmadd_ps(qb1, k, a101);
    k = _mm256_loadu_ps(k1 + i);
    a010 = _mm256_fmadd_ps(qa0, k, a010);
    a110 = _mm256_fmadd_ps(qb0, k, a110);
    k = _mm256_loadu_ps(k1 + i + 8);
    a011 = _mm256_fmadd_ps(qa1, k, a011);
    a111 = _mm256_fmadd_ps(qb1, k, a111);
  }
  o0[0] = lane_sum_avx2(_mm256_add_ps(a000, a001)) * scale;
  o0[1] = lane_sum_avx2(_mm256_add_ps(a010, a011)) * scale;
  o1[0] = lane_sum_avx2(_mm256_add_ps(a100, a101)) * scale;
  o1[1] = lane_sum_avx2(_mm256_add_ps(a110, a111)) * scale;
}

// GCC 12's AVX-512 broadcasts and casts build on _mm512_undefined_*(), which -Wmaybe-uninitialized flags.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
__attribute__((target("avx512f"))) void transpose_keys16_avx512(const float* const* k, int nk, int64_t n, float* kt) {
  for (int64_t b = 0; b < n; b += 16) {
    __m512i r[16];
    for (int j = 0; j < 16; ++j) r[j] = j < nk ? _mm512_loadu_si512(k[j] + b) : _mm512_setzero_si512();
    transpose16x16(r);
    for (int e = 0; e < 16; ++e) _mm512_store_si512(kt + (b + e) * 16, r[e]);
  }
}

// Query rows q[0..nq) against the 16 keys of kt: P[j] (lane = key) is dot_avx2's partial sum of elements j mod 16
// (its accumulator j / 8, lane j % 8), the same FMAs in the same order; then its reduction tree lane-wise: (P[l] +
// P[l + 8]), the halves, the pairs, the last two; times scale. So every lane is fast_dot(q, k_lane) * scale.
// (Every loop over the 16 accumulators is unrolled: otherwise GCC keeps the array on the stack.)
__attribute__((target("avx512f"))) void dots_keys16_avx512(const float* const* q, int nq, const float* kt, int64_t n,
                                                           float scale, int nk, float* out, int64_t q_stride) {
  const __mmask16 mask = __mmask16((1u << nk) - 1);
  const __m512 sv = _mm512_set1_ps(scale);
  for (int h = 0; h < nq; ++h) {
    const float* qh = q[h];
    __m512 P[16];
#pragma GCC unroll 16
    for (int j = 0; j < 16; ++j) P[j] = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16)
#pragma GCC unroll 16
      for (int j = 0; j < 16; ++j)
        P[j] = _mm512_fmadd_ps(_mm512_set1_ps(qh[i + j]), _mm512_load_ps(kt + (i + j) * 16), P[j]);
#pragma GCC unroll 8
    for (int l = 0; l < 8; ++l) P[l] = _mm512_add_ps(P[l], P[l + 8]);
#pragma GCC unroll 4
    for (int m = 0; m < 4; ++m) P[m] = _mm512_add_ps(P[m], P[m + 4]);
    const __m512 s = _mm512_add_ps(_mm512_add_ps(P[0], P[2]), _mm512_add_ps(P[1], P[3]));
    _mm512_mask_storeu_ps(out + h * q_stride, mask, _mm512_mul_ps(s, sv));
  }
}
#pragma GCC diagnostic pop

// std::max over x[0..n) from -inf: the larger of each pair, the running value kept on ties and against NaN
// (max_ps(x, m) returns m unless x > m), lanes then folded the same way.
__attribute__((target("avx2"))) float max_avx2(const float* x, int64_t n) {
  __m256 m0 = _mm256_set1_ps(-INFINITY), m1 = m0;
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    m0 = _mm256_max_ps(_mm256_loadu_ps(x + j), m0);
    m1 = _mm256_max_ps(_mm256_loadu_ps(x + j + 8), m1);
  }
  alignas(32) float lanes[16];
  _mm256_store_ps(lanes, m0);
  _mm256_store_ps(lanes + 8, m1);
  float mx = -INFINITY;
  for (float v : lanes) mx = std::max(mx, v);
  for (; j < n; ++j) mx = std::max(mx, x[j]);
  return mx;
}

// x[j] *= s for j < n.
__attribute__((target("avx2"))) void scale_avx2(float* x, int64_t n, float s) {
  const __m256 sv = _mm256_set1_ps(s);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) _mm256_storeu_ps(x + j, _mm256_mul_ps(_mm256_loadu_ps(x + j), sv));
  for (; j < n; ++j) x[j] *= s;
}

__attribute__((target("avx2,fma"))) void axpy_avx2(float w, const float* x, float* y, int64_t n) {
  __m256 wv = _mm256_set1_ps(w);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  // The tail as explicit FMAs (what the compiler made of `y[i] += w * x[i]` here, but not everywhere: the
  // decode path must reproduce it exactly).
  for (; i < n; ++i) y[i] = std::fma(w, x[i], y[i]);
}
#endif

#if defined(__aarch64__)
// dot_avx2 on NEON: its two 8-lane accumulators as four 4-lane ones, and its reduction order ((acc0 + acc1), the
// halves added, lanes (0 + 2) + (1 + 3)); the tail as explicit FMAs.
float dot_neon(const float* a, const float* b, int64_t n) {
  float32x4_t a0l = vdupq_n_f32(0.0f), a0h = a0l, a1l = a0l, a1h = a0l;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    a0l = vfmaq_f32(a0l, vld1q_f32(a + i), vld1q_f32(b + i));
    a0h = vfmaq_f32(a0h, vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
    a1l = vfmaq_f32(a1l, vld1q_f32(a + i + 8), vld1q_f32(b + i + 8));
    a1h = vfmaq_f32(a1h, vld1q_f32(a + i + 12), vld1q_f32(b + i + 12));
  }
  const float32x4_t lo = vaddq_f32(vaddq_f32(a0l, a1l), vaddq_f32(a0h, a1h));
  float s = (vgetq_lane_f32(lo, 0) + vgetq_lane_f32(lo, 2)) + (vgetq_lane_f32(lo, 1) + vgetq_lane_f32(lo, 3));
  for (; i < n; ++i) s = std::fma(a[i], b[i], s);
  return s;
}

// axpy_avx2 on NEON: one FMA per lane, the tail as explicit FMAs.
void axpy_neon(float w, const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), vld1q_f32(x + i), w));
  for (; i < n; ++i) y[i] = std::fma(w, x[i], y[i]);
}
#endif

}  // namespace

float fast_dot(const float* a, const float* b, int64_t n) {
#if defined(__x86_64__)
  if (cpu_has_avx2()) return dot_avx2(a, b, n);
#elif defined(__aarch64__)
  if (cpu_has_neon()) return dot_neon(a, b, n);
#endif
  return dot(a, b, n);
}

void scaled_dots(const float* const* q, int nq, const float* const* k, int nk, int64_t n, float scale, float* out,
                 int64_t q_stride) {
  int h = 0;
#if defined(__x86_64__)
  if (n % 16 == 0 && cpu_has_avx2())
    for (; h + 2 <= nq; h += 2) {
      float* o0 = out + h * q_stride;
      float* o1 = o0 + q_stride;
      int p = 0;
      for (; p + 2 <= nk; p += 2) dots_2x2_avx2(q[h], q[h + 1], k[p], k[p + 1], n, scale, o0 + p, o1 + p);
      for (; p < nk; ++p) {
        o0[p] = fast_dot(q[h], k[p], n) * scale;
        o1[p] = fast_dot(q[h + 1], k[p], n) * scale;
      }
    }
#endif
  for (; h < nq; ++h)
    for (int p = 0; p < nk; ++p) out[h * q_stride + p] = fast_dot(q[h], k[p], n) * scale;
}

bool key_runs16_usable(int64_t n) {
#if defined(__x86_64__)
  return n % 16 == 0 && gemm_detail::cpu_has_avx512();
#else
  (void)n;
  return false;
#endif
}

void transpose_keys16(const float* const* k, int nk, int64_t n, float* kt) {
#if defined(__x86_64__)
  AG_CHECK(key_runs16_usable(n) && nk >= 1 && nk <= 16, "transpose_keys16: needs AVX-512 and n % 16 == 0");
  transpose_keys16_avx512(k, nk, n, kt);
#else
  (void)k, (void)nk, (void)n, (void)kt;
  AG_CHECK(false, "transpose_keys16: needs AVX-512");
#endif
}

void scaled_dots_keys16(const float* const* q, int nq, const float* kt, int nk, int64_t n, float scale, float* out,
                        int64_t q_stride) {
#if defined(__x86_64__)
  dots_keys16_avx512(q, nq, kt, n, scale, nk, out, q_stride);
#else
  (void)q, (void)nq, (void)kt, (void)nk, (void)n, (void)scale, (void)out, (void)q_stride;
  AG_CHECK(false, "scaled_dots_keys16: needs AVX-512");
#endif
}

void axpy(float w, const float* x, float* y, int64_t n) {
#if defined(__x86_64__)
  if (cpu_has_avx2()) return axpy_avx2(w, x, y, n);
#elif defined(__aarch64__)
  if (cpu_has_neon()) return axpy_neon(w, x, y, n);
#endif
  for (int64_t i = 0; i < n; ++i) y[i] += w * x[i];
}

void softmax(float* scores, int64_t n) {
#if defined(__x86_64__)
  if (cpu_has_avx2()) {
    // The max and the final scaling on 8 lanes (the same value: the max of a set, element-wise products; a +0 / -0
    // tie may leave the other zero than the serial loop, and x - (+0) and x - (-0) differ only for x = -0, where
    // both exponentials are 1); the exponentials' double sum as before (vec_exp.h: within 2 ulp of std::exp; on
    // AVX-512 16 lanes per step, the same bytes).
    const float mx = max_avx2(scores, n);
    static const bool avx512 = gemm_detail::cpu_has_avx512();
    const double sum =
        avx512 ? exp_shifted_sum_avx512(scores, long(n), mx) : exp_shifted_sum_avx2(scores, long(n), mx);
    const float inv = float(1.0 / sum);
    scale_avx2(scores, n, inv);
    return;
  }
#endif
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

cache_view view_of(const tensor& c, const char* what) {
  AG_CHECK(c.n_dims() == 4, std::string(what) + " must be [blocks, block_size, kv_heads, head_dim]");
  const bool q8 = c.type() == dtype::Q8_0;  // head rows of whole 32-blocks (quant_kv.h)
  AG_CHECK(c.type() == dtype::F32 || c.type() == dtype::F16 || c.type() == dtype::BF16 || q8,
           std::string(what) + ": CPU caches hold F32, F16, BF16 or Q8_0, not " + dtype_name(c.type()));
  AG_CHECK(q8 ? c.stride(2) == int64_t(dtype_row_bytes(c.type(), c.dim(3)))
              : c.stride(3) == int64_t(dtype_size(c.type())),
           std::string(what) + ": head_dim must be contiguous");
  return {c.type(), static_cast<uint8_t*>(c.data()), c.stride(0), c.stride(1), c.stride(2), c.dim(0),
          int32_t(c.dim(1))};
}

int64_t block_of(const seq_desc& d, const cache_view& c, int64_t p) {
  const int64_t block = d.table[p / c.block_size];
  AG_CHECK(block >= 0 && block < c.n_blocks,
           "attention_paged: block id " + std::to_string(block) + " outside the cache of " + std::to_string(c.n_blocks));
  return block;
}

const float* f32_row(const cache_view& c, const uint8_t* p, float* buf, int64_t n) {
  if (c.type == dtype::F32) return reinterpret_cast<const float*>(p);
  if (c.type == dtype::Q8_0) q8_0_to_f32(p, buf, n);
  else convert_to_f32(c.type, p, buf, n);
  return buf;
}

}  // namespace attn

namespace {

using namespace attn;

// Scores of one call of the three-pass kernel stay under this (rows are taken in groups that fit).
constexpr int64_t k_scores_budget = int64_t(4) << 20;  // floats: 16 MiB

// bf16_prefill: a sequence with enough new rows may take the AVX-512 BF16 prefill (attention_avx512bf16.h; the
// registered kernel, not the legacy F32 entry point).
void paged_attention_impl(thread_pool* pool, const float* q, int64_t qs, const cache_view& kc, const cache_view& vc,
                          const std::vector<seq_desc>& seqs, int64_t n_heads, int64_t n_kv_heads, int64_t hd,
                          float scale, float* out, int64_t os, bool bf16_prefill) {
  const int64_t bs = kc.block_size;
  std::vector<row_ref> rows;
  int64_t n_scores = 0;
  auto flush = [&] {
    if (!rows.empty()) paged_attention_split(pool, q, qs, kc, vc, seqs, rows, n_heads, n_kv_heads, hd, scale, out, os);
    rows.clear();
    n_scores = 0;
  };
  for (size_t s = 0; s < seqs.size(); ++s) {
    const seq_desc& d = seqs[s];
    AG_CHECK(d.n_new >= 0 && d.n_past >= 0, "attention_paged: negative token counts");
    AG_CHECK(d.n_past + d.n_new <= d.n_table * bs, "attention_paged: sequence " + std::to_string(s) + " needs " +
                                                       std::to_string(d.n_past + d.n_new) + " slots, its block table holds " +
                                                       std::to_string(d.n_table * bs));
    if (bf16_prefill && attention_prefill_uses_amx(d.n_new, hd)) {
      attention_prefill_amx(pool, q, qs, kc, vc, d, n_heads, n_kv_heads, hd, scale, out, os);
      continue;
    }
    if (bf16_prefill && attention_prefill_uses_avx512bf16(d.n_new, hd)) {
      attention_prefill_avx512bf16(pool, q, qs, kc, vc, d, n_heads, n_kv_heads, hd, scale, out, os);
      continue;
    }
    for (int64_t i = 0; i < d.n_new; ++i) {
      const int64_t row_scores = n_heads * (d.n_past + i + 1);
      if (n_scores + row_scores > k_scores_budget) flush();
      rows.push_back({int32_t(s), i});
      n_scores += row_scores;
    }
  }
  flush();
}

}  // namespace

void kv_store_kernel(const kernel_context& kc, const paged_kv_layer& kv, const tensor& k, const tensor& v,
                     const tensor& slots) {
  const cache_view kcache = view_of(kv.k, "kv_store k cache"), vcache = view_of(kv.v, "kv_store v cache");
  const auto kr = f32_rows(k, "kv_store k"), vr = f32_rows(v, "kv_store v");
  AG_CHECK(slots.is_contiguous(), "kv_store: slots must be contiguous");
  const int32_t* slot = slots.ptr<int32_t>();
  const int64_t n_kv_heads = kv.k.dim(2), hd = kv.k.dim(3);
  const int64_t capacity = kcache.n_blocks * kcache.block_size;
  parallel_for(kc.pool, k.rows(), 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t s = slot[r];
      if (s < 0) continue;
      AG_CHECK(s < capacity, "kv_store: slot " + std::to_string(s) + " outside the cache of " +
                                 std::to_string(capacity) + " slots");
      const int64_t block = s / kcache.block_size, offset = s % kcache.block_size;
      for (int64_t h = 0; h < n_kv_heads; ++h) {
        if (kcache.type == dtype::Q8_0) {
          f32_to_q8_0(kr[r] + h * hd, kcache.at(block, offset, h), hd);
          f32_to_q8_0(vr[r] + h * hd, vcache.at(block, offset, h), hd);
        } else {
          convert_from_f32(kcache.type, kr[r] + h * hd, kcache.at(block, offset, h), hd);
          convert_from_f32(vcache.type, vr[r] + h * hd, vcache.at(block, offset, h), hd);
        }
      }
    }
  });
}

void attention_paged_kernel(const kernel_context& kc, const tensor& q, const paged_kv_layer& kv,
                            const paged_batch& batch, int32_t n_heads, int32_t n_kv_heads, int32_t head_dim,
                            float scale, tensor& out) {
  const cache_view kcache = view_of(kv.k, "attention_paged k cache"), vcache = view_of(kv.v, "attention_paged v cache");
  AG_CHECK(kv.v.type() == kv.k.type() && kv.v.shape() == kv.k.shape(), "attention_paged: K and V caches differ");
  const auto info = i32_rows(batch.seq_info, "attention_paged seq_info");
  const auto tables = i32_rows(batch.block_tables, "attention_paged block_tables");
  std::vector<seq_desc> seqs(size_t(batch.n_seqs));
  for (int32_t s = 0; s < batch.n_seqs; ++s) {
    seq_desc& d = seqs[size_t(s)];
    d.first_row = info[s][0];
    d.n_new = info[s][1];
    d.n_past = info[s][2];
    d.table = tables[s];
    d.n_table = batch.block_tables.cols();
    AG_CHECK(d.first_row >= 0 && d.first_row + d.n_new <= q.rows(),
             "attention_paged: sequence " + std::to_string(s) + " rows outside q");
  }
  const auto qr = f32_rows(q, "attention_paged q");
  const auto orow = f32_rows(out, "attention_paged out");
  paged_attention_impl(kc.pool, qr.base, qr.stride, kcache, vcache, seqs, n_heads, n_kv_heads, head_dim, scale,
                       orow.base, orow.stride, true);
}

void attention_paged(const float* q, int64_t q_stride, int64_t n_new, int64_t n_past, int64_t n_heads,
                     int64_t n_kv_heads, int64_t head_dim, float scale, const paged_kv& kv, float* out,
                     int64_t out_stride) {
  const int64_t slot_bytes = n_kv_heads * head_dim * int64_t(sizeof(float));
  auto view = [&](const float* pool) {
    cache_view c;
    c.type = dtype::F32;
    c.base = reinterpret_cast<uint8_t*>(const_cast<float*>(pool));
    c.head_stride = head_dim * int64_t(sizeof(float));
    c.slot_stride = slot_bytes;
    c.block_stride = kv.block_size * slot_bytes;
    c.n_blocks = INT32_MAX;  // the legacy interface does not say; the caller checked its block ids
    c.block_size = int32_t(kv.block_size);
    return c;
  };
  seq_desc d;
  d.n_new = n_new;
  d.n_past = n_past;
  d.table = kv.block_table;
  d.n_table = (n_past + n_new + kv.block_size - 1) / kv.block_size;
  paged_attention_impl(&default_thread_pool(), q, q_stride, view(kv.k_pool), view(kv.v_pool), {d}, n_heads,
                       n_kv_heads, head_dim, scale, out, out_stride, false);
}

void attention_dense(const float* q, const float* k, const float* v, int64_t stride, int64_t n, int64_t n_heads,
                     int64_t head_dim, float scale, float* out, int64_t out_stride) {
  using namespace attn;
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
