// kernels/cpu/attention_amx.cpp: dense (bidirectional) attention of one segment, and the causal prefill of one
// sequence over the paged cache, on AMX tiles, see attention_amx.h.
//
// Per head (the prefill: per KV head, for its group of query heads) K and V are packed once into tile layouts
// (bf16), shared by the threads:
//   kb: per panel p of 16 keys and chunk c of 32 dims, one B tile (1 KB): row r, pair j = (K[16p + j][32c + 2r],
//       K[16p + j][32c + 2r + 1]); keys past n are zero.
//   vb: per chunk kc of 32 keys and tile dt of 16 dims, one B tile: row r, pair d = (V[32kc + 2r][16dt + d],
//       V[32kc + 2r + 1][16dt + d]); keys past n are zero.
// Query blocks of 32 rows are shared out over the threads. A block's Q (bf16 [32][hd], rows past the segment zero)
// gives its scores S [32][ns] (ns = n rounded up to 32) with 2 x 2 accumulator tiles per pass (rows 0-15 / 16-31 x
// two key panels) over hd / 32 A and B loads; an f32 softmax per row (exp_avx2) writes the weights as bf16 P
// [32][ns] (zero past n); P.V runs 2 x 2 accumulator tiles (rows x two 16-dim tiles) over the ns / 32 key chunks,
// into f32 O [32][hd], divided by the row sums on the way out. Tiles: 0, 1 A; 2, 3 B; 4-7 accumulators. The causal
// prefill runs a block over the keys of its last row only (rounded up to 32), each row's weights zero past its own
// position.
#include "kernels/cpu/attention_amx.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/dtype.h"
#include "kernels/cpu/amx.h"
#include "kernels/cpu/attention_common.h"
#include "kernels/cpu/convert.h"
#include "kernels/cpu/gemm_bf16.h"
#include "kernels/cpu/gemm_kernels.h"
#include "kernels/cpu/vec_exp.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace autoglm::cpu {

namespace {

constexpr int64_t k_rows = 32;      // query rows per block: two 16-row tiles
constexpr int64_t k_tile = 512;     // bf16 elements of one packed tile (16 rows x 64 bytes)
constexpr int64_t k_min_rows = 1024;
// Buffers kept between calls (thread-local) up to this size; larger ones (long contexts) are given back after use.
constexpr size_t k_keep_bytes = size_t(32) << 20;

#if defined(__x86_64__)
// Rounds 8 floats to bf16 (nearest even; the weights here are finite), stores them at p, returns them as floats.
__attribute__((target("avx2,fma"))) inline __m256 round_store_bf16(__m256 e, uint16_t* p) {
  const __m256i u = _mm256_castps_si256(e);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  const __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)), lsb), 16);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p),
                   _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(r, 16));
}

// p[j] = bf16(exp(s[j] - m)) for j in [j, n) (s already scaled), continuing the two double accumulators lo (lanes
// 0-3 of each 8) and hi (lanes 4-7); returns the sum of the rounded weights.
__attribute__((target("avx2,fma"))) float softmax_row_bf16_from(const float* s, int64_t n, float mx, uint16_t* p,
                                                                 int64_t j, __m256d lo, __m256d hi) {
  const __m256 m = _mm256_set1_ps(mx);
  for (; j + 8 <= n; j += 8) {
    const __m256 w = round_store_bf16(exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(s + j), m)), p + j);
    lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(w)));
    hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(w, 1)));
  }
  if (j < n) {
    alignas(32) float tail[8];
    alignas(16) uint16_t tp[8];
    for (int t = 0; t < 8; ++t) tail[t] = j + t < n ? s[j + t] : -INFINITY;  // exp(-inf) = 0: adds nothing
    const __m256 w = round_store_bf16(exp_avx2(_mm256_sub_ps(_mm256_load_ps(tail), m)), tp);
    lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(w)));
    hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(w, 1)));
    std::copy(tp, tp + (n - j), p + j);
  }
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, _mm256_add_pd(lo, hi));
  return float((lanes[0] + lanes[1]) + (lanes[2] + lanes[3]));
}

__attribute__((target("avx2,fma"))) float softmax_scaled_row_bf16_avx2(const float* s, int64_t n, float mx,
                                                                        uint16_t* p) {
  return softmax_row_bf16_from(s, n, mx, p, 0, _mm256_setzero_pd(), _mm256_setzero_pd());
}

// p[j] = bf16(exp(s[j] * scale - max)) for j < n (s is scaled in place); returns the sum of the rounded weights.
__attribute__((target("avx2,fma"))) float softmax_row_bf16_avx2(float* s, int64_t n, float scale, uint16_t* p) {
  return softmax_scaled_row_bf16_avx2(s, n, scale_max_avx2(s, long(n), scale), p);
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
// The exp pass of softmax_row_bf16_avx512 (s scaled, mx its maximum).
__attribute__((target("avx512f,avx512bw,avx2,fma"))) float softmax_scaled_row_bf16_avx512(const float* s, int64_t n,
                                                                                          float mx, uint16_t* p) {
  int64_t j = 0;
  const __m512 m = _mm512_set1_ps(mx);
  const __m512i round = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1);
  __m512d acc = _mm512_setzero_pd();  // lanes 0-3: softmax_row_bf16_avx2's lo, 4-7: its hi
  for (; j + 16 <= n; j += 16) {
    const __m512i u = _mm512_castps_si512(exp_avx512(_mm512_sub_ps(_mm512_loadu_ps(s + j), m)));
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), one);
    const __m512i r = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, round), lsb), 16);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + j), _mm512_cvtepi32_epi16(r));
    const __m512 w = _mm512_castsi512_ps(_mm512_slli_epi32(r, 16));
    acc = _mm512_add_pd(acc, _mm512_cvtps_pd(_mm512_castps512_ps256(w)));
    acc = _mm512_add_pd(acc, _mm512_cvtps_pd(_mm512_castps512_ps256(_mm512_shuffle_f32x4(w, w, 0xee))));
  }
  return softmax_row_bf16_from(s, n, mx, p, j, _mm512_castpd512_pd256(acc),
                               _mm512_castpd512_pd256(_mm512_shuffle_f64x2(acc, acc, 0xee)));
}

// softmax_row_bf16_avx2 on 16 lanes: the same scaled scores and maximum (exact: a max does not depend on the order;
// a NaN row comes out NaN either way), exp_avx512 (exp_avx2's bits), the same rounding, and each step's two halves
// into the same two double accumulators in the same order (one 8-double vector holding both): the same bytes and sum.
__attribute__((target("avx512f,avx512bw,avx2,fma"))) float softmax_row_bf16_avx512(float* s, int64_t n, float scale,
                                                                                   uint16_t* p) {
  const __m512 sc = _mm512_set1_ps(scale);
  __m512 mx16 = _mm512_set1_ps(-INFINITY);
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m512 v = _mm512_mul_ps(_mm512_loadu_ps(s + j), sc);
    _mm512_storeu_ps(s + j, v);
    mx16 = _mm512_max_ps(mx16, v);
  }
  float mx = _mm512_reduce_max_ps(mx16);
  for (; j < n; ++j) {
    s[j] *= scale;
    mx = s[j] > mx ? s[j] : mx;
  }
  return softmax_scaled_row_bf16_avx512(s, n, mx, p);
}
#pragma GCC diagnostic pop
#endif

}  // namespace

float softmax_row_bf16(float* s, int64_t n, float scale, uint16_t* p) {
#if defined(__x86_64__)
  if (gemm_detail::cpu_has_avx512()) return softmax_row_bf16_avx512(s, n, scale, p);
  if (cpu_has_avx2()) return softmax_row_bf16_avx2(s, n, scale, p);
#endif
  float mx = -INFINITY;
  for (int64_t j = 0; j < n; ++j) mx = std::max(mx, s[j] * scale);
  double sum = 0.0;
  for (int64_t j = 0; j < n; ++j) {
    p[j] = f32_to_bf16(std::exp(s[j] * scale - mx));
    sum += double(bf16_to_f32(p[j]));
  }
  return float(sum);
}

float softmax_scaled_row_bf16(const float* s, int64_t n, float mx, uint16_t* p) {
#if defined(__x86_64__)
  if (gemm_detail::cpu_has_avx512()) return softmax_scaled_row_bf16_avx512(s, n, mx, p);
  if (cpu_has_avx2()) return softmax_scaled_row_bf16_avx2(s, n, mx, p);
#endif
  double sum = 0.0;
  for (int64_t j = 0; j < n; ++j) {
    p[j] = f32_to_bf16(std::exp(s[j] - mx));
    sum += double(bf16_to_f32(p[j]));
  }
  return float(sum);
}

namespace {

// s[32][ns] = qb[32][hd] . K^T over all ns / 16 panels (an even number), two panels per pass.
template <class X>
void block_scores(const uint16_t* qb, int64_t hd, const uint16_t* kb, int64_t ns, float* s) {
  const int64_t chunks = hd / 32;
  for (int64_t p = 0; p < ns / 16; p += 2) {
    amx_zero_2x2<X>();
    const uint16_t* k0 = kb + p * chunks * k_tile;
    for (int64_t c = 0; c < chunks; ++c)
      amx_step_2x2<X>(qb + c * 32, qb + 16 * hd + c * 32, hd * 2, k0 + c * k_tile, k0 + (chunks + c) * k_tile);
    amx_store_2x2<X>(s + p * 16, ns);
  }
}

// o[32][hd] = pb[32][ns] . V, two 16-dim tiles per pass.
template <class X>
void block_pv(const uint16_t* pb, int64_t ns, const uint16_t* vb, int64_t hd, float* o) {
  const int64_t dts = hd / 16;
  for (int64_t dt = 0; dt < dts; dt += 2) {
    amx_zero_2x2<X>();
    for (int64_t kc = 0; kc < ns / 32; ++kc) {
      const uint16_t* v0 = vb + (kc * dts + dt) * k_tile;
      amx_step_2x2<X>(pb + kc * 32, pb + 16 * ns + kc * 32, ns * 2, v0, v0 + k_tile);
    }
    amx_store_2x2<X>(o + dt * 16, hd);
  }
}

// Packs keys [0, n) of one head into kb / vb (the file comment's layouts; zero from n to n rounded up to 32):
// row(j, which, buf) gives key j's K (which = 0) or V (1) row as hd floats (buf: hd floats it may fill).
template <class Row>
void pack_head(thread_pool* pool, int64_t n, int64_t hd, Row row, uint16_t* kb, uint16_t* vb) {
  const int64_t ns = (n + 31) / 32 * 32, chunks = hd / 32, dts = hd / 16;
  parallel_for(pool, ns / 32, 8, [&](int64_t c0, int64_t c1) {
    thread_local std::vector<float> kbuf, vbuf;
    kbuf.resize(size_t(hd));
    vbuf.resize(size_t(hd));
    for (int64_t j = c0 * 32; j < c1 * 32; ++j) {
      const float* kr = j < n ? row(j, 0, kbuf.data()) : nullptr;
      const float* vr = j < n ? row(j, 1, vbuf.data()) : nullptr;
      uint16_t* kt = kb + (j / 16) * chunks * k_tile + (j % 16) * 2;
      uint16_t* vt = vb + (j / 32) * dts * k_tile + ((j % 32) / 2) * 32 + (j % 2);
      for (int64_t d = 0; d < hd; ++d) {
        kt[(d / 32) * k_tile + ((d % 32) / 2) * 32 + (d % 2)] = kr ? f32_to_bf16(kr[d]) : 0;
        vt[(d / 16) * k_tile + (d % 16) * 2] = vr ? f32_to_bf16(vr[d]) : 0;
      }
    }
  });
}

// One thread's buffers for a block of k_rows query rows over up to ns keys.
struct block_buffers {
  std::vector<uint16_t> qb, pb;
  std::vector<float> s, o;
  void reserve(int64_t hd, int64_t ns) {
    qb.resize(size_t(k_rows * hd));
    pb.resize(size_t(k_rows * ns));
    s.resize(size_t(k_rows * ns));
    o.resize(size_t(k_rows * hd));
  }
  size_t bytes() const { return (qb.size() + pb.size()) * 2 + (s.size() + o.size()) * 4; }
  void release_if_large() {
    if (bytes() > k_keep_bytes) *this = block_buffers{};
  }
};

// Query rows [0, m) (m <= k_rows) of one head: row i at q[i], its output at out[i], attending to keys [0, keys0 + i)
// when causal, else [0, keys0); kb / vb hold at least those keys. Scores and P.V run over the block's longest
// key range rounded up to 32 (the weights of keys past a row's own range are zero).
template <class X>
void run_block(rows_of<const float> q, rows_of<float> out, int64_t m, int64_t keys0, bool causal, int64_t hd,
               float scale, const uint16_t* kb, const uint16_t* vb, block_buffers& b) {
  const int64_t last = causal ? keys0 + m - 1 : keys0;
  const int64_t ns = (last + 31) / 32 * 32;
  for (int64_t i = 0; i < k_rows; ++i) {
    uint16_t* dst = b.qb.data() + i * hd;
    if (i < m)
      convert_from_f32(dtype::BF16, q[i], dst, hd);
    else
      std::fill(dst, dst + hd, uint16_t(0));
  }
  block_scores<X>(b.qb.data(), hd, kb, ns, b.s.data());
  float sums[k_rows];
  for (int64_t i = 0; i < k_rows; ++i) {
    uint16_t* pr = b.pb.data() + i * ns;
    const int64_t valid = i < m ? (causal ? keys0 + i : keys0) : 0;
    if (i < m) sums[i] = softmax_row_bf16(b.s.data() + i * ns, valid, scale, pr);
    std::fill(pr + valid, pr + ns, uint16_t(0));
  }
  block_pv<X>(b.pb.data(), ns, vb, hd, b.o.data());
  for (int64_t i = 0; i < m; ++i) {
    const float inv = 1.0f / sums[i];
    float* dst = out[i];
    for (int64_t d = 0; d < hd; ++d) dst[d] = b.o[size_t(i * hd + d)] * inv;
  }
}

template <class X>
void segment(thread_pool* pool, rows_of<const float> q, rows_of<const float> k, rows_of<const float> v, int64_t r0,
             int64_t n, int64_t n_heads, int64_t hd, float scale, rows_of<float> out) {
  if (n <= 0) return;
  AG_CHECK(hd % 32 == 0 && hd > 0, "attention_dense (AMX): head_dim must be a multiple of 32");
  const int64_t ns = (n + 31) / 32 * 32;
  std::vector<uint16_t> kb(size_t(ns * hd)), vb(size_t(ns * hd));
  const int64_t n_blocks = (n + k_rows - 1) / k_rows;
  for (int64_t h = 0; h < n_heads; ++h) {
    const int64_t col = h * hd;
    pack_head(
        pool, n, hd, [&](int64_t j, int which, float*) { return (which ? v : k)[r0 + j] + col; }, kb.data(), vb.data());
    parallel_for(pool, n_blocks, 1, [&](int64_t b0, int64_t b1) {
      thread_local block_buffers b;
      b.reserve(hd, ns);
      X::configure();
      for (int64_t blk = b0; blk < b1; ++blk) {
        const int64_t i0 = blk * k_rows;
        run_block<X>({q[r0 + i0] + col, q.stride}, {out[r0 + i0] + col, out.stride}, std::min(k_rows, n - i0), n, false,
                     hd, scale, kb.data(), vb.data(), b);
      }
      X::release();
      b.release_if_large();
    });
  }
}

// The causal prefill of one sequence (attention_prefill_amx): each KV head's keys [0, n_past + n_new) packed once
// from the cache for its group of query heads; items (query head, block of k_rows new rows), head-major, so each
// thread's span holds every block length of its heads.
template <class X>
void paged_prefill(thread_pool* pool, const float* q, int64_t qs, const attn::cache_view& kc,
                   const attn::cache_view& vc, const attn::seq_desc& d, int64_t n_heads, int64_t n_kv_heads, int64_t hd,
                   float scale, float* out, int64_t os) {
  AG_CHECK(hd % 32 == 0 && hd > 0, "attention_paged (AMX): head_dim must be a multiple of 32");
  AG_CHECK(n_kv_heads > 0 && n_heads % n_kv_heads == 0, "attention_paged: heads must be a multiple of KV heads");
  if (d.n_new <= 0) return;
  const int64_t n = d.n_past + d.n_new, ns = (n + 31) / 32 * 32, group = n_heads / n_kv_heads;
  // [KV head][ns * hd], the calling thread's, kept between calls (the workers see them through these pointers).
  thread_local std::vector<uint16_t> t_kb, t_vb;
  t_kb.resize(size_t(n_kv_heads * ns * hd));
  t_vb.resize(t_kb.size());
  uint16_t *const kb = t_kb.data(), *const vb = t_vb.data();
  for (int64_t kvh = 0; kvh < n_kv_heads; ++kvh) {
    auto row = [&](int64_t j, int which, float* buf) {
      return attn::position_row(which ? vc : kc, d, j, kvh, buf, hd);
    };
    pack_head(pool, n, hd, row, kb + kvh * ns * hd, vb + kvh * ns * hd);
  }
  const int64_t n_blocks = (d.n_new + k_rows - 1) / k_rows;
  parallel_for(pool, n_heads * n_blocks, 1, [&](int64_t w0, int64_t w1) {
    thread_local block_buffers b;
    b.reserve(hd, ns);
    X::configure();
    for (int64_t w = w0; w < w1; ++w) {
      const int64_t h = w / n_blocks, i0 = (w % n_blocks) * k_rows, kvh = h / group;
      const int64_t row = d.first_row + i0;
      run_block<X>({q + row * qs + h * hd, qs}, {out + row * os + h * hd, os}, std::min(k_rows, d.n_new - i0),
                   d.n_past + i0 + 1, true, hd, scale, kb + kvh * ns * hd, vb + kvh * ns * hd, b);
    }
    X::release();
    b.release_if_large();
  });
  if (t_kb.size() * 4 > k_keep_bytes) {  // a long context's K and V copies: not kept for the thread's life
    std::vector<uint16_t>().swap(t_kb);
    std::vector<uint16_t>().swap(t_vb);
  }
}

}  // namespace

bool attention_dense_uses_amx(int64_t n, int64_t head_dim) {
  return n >= k_min_rows && head_dim % 32 == 0 && head_dim > 0 &&
         get_cpu_gemm_precision() == cpu_gemm_precision::ROUNDED && amx_bf16_usable();
}

void attention_dense_segment_amx(thread_pool* pool, rows_of<const float> q, rows_of<const float> k,
                                 rows_of<const float> v, int64_t r0, int64_t n, int64_t n_heads, int64_t head_dim,
                                 float scale, rows_of<float> out) {
#if defined(__x86_64__)
  AG_CHECK(amx_bf16_usable(), "attention_dense: AMX tiles are not usable in this process");
  segment<amx_hw>(pool, q, k, v, r0, n, n_heads, head_dim, scale, out);
#else
  (void)pool, (void)q, (void)k, (void)v, (void)r0, (void)n, (void)n_heads, (void)head_dim, (void)scale, (void)out;
  throw error("attention_dense: AMX is an x86 feature");
#endif
}

bool attention_prefill_uses_amx(int64_t n_new, int64_t head_dim) {
  return n_new >= attn::k_bf16_prefill_min_rows && head_dim % 32 == 0 && head_dim > 0 &&
         get_cpu_gemm_precision() == cpu_gemm_precision::ROUNDED && amx_bf16_usable();
}

void attention_prefill_amx(thread_pool* pool, const float* q, int64_t qs, const attn::cache_view& kc,
                           const attn::cache_view& vc, const attn::seq_desc& d, int64_t n_heads, int64_t n_kv_heads,
                           int64_t head_dim, float scale, float* out, int64_t os) {
#if defined(__x86_64__)
  AG_CHECK(amx_bf16_usable(), "attention_paged: AMX tiles are not usable in this process");
  paged_prefill<amx_hw>(pool, q, qs, kc, vc, d, n_heads, n_kv_heads, head_dim, scale, out, os);
#else
  (void)pool, (void)q, (void)qs, (void)kc, (void)vc, (void)d, (void)n_heads, (void)n_kv_heads, (void)head_dim,
      (void)scale, (void)out, (void)os;
  throw error("attention_paged: AMX is an x86 feature");
#endif
}

void attention_prefill_amx_emulated(thread_pool* pool, const float* q, int64_t qs, const attn::cache_view& kc,
                                    const attn::cache_view& vc, const attn::seq_desc& d, int64_t n_heads,
                                    int64_t n_kv_heads, int64_t head_dim, float scale, float* out, int64_t os) {
  paged_prefill<amx_emulated>(pool, q, qs, kc, vc, d, n_heads, n_kv_heads, head_dim, scale, out, os);
}

void attention_dense_segment_amx_emulated(thread_pool* pool, rows_of<const float> q, rows_of<const float> k,
                                          rows_of<const float> v, int64_t r0, int64_t n, int64_t n_heads,
                                          int64_t head_dim, float scale, rows_of<float> out) {
  segment<amx_emulated>(pool, q, k, v, r0, n, n_heads, head_dim, scale, out);
}

}  // namespace autoglm::cpu
