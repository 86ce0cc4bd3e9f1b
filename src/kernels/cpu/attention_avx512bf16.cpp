// kernels/cpu/attention_avx512bf16.cpp: attention on AVX-512 BF16 dot products, see attention_avx512bf16.h: the
// dense attention of one segment (every row sees all n keys) and the causal prefill of a paged sequence (row i sees
// keys [0, n_past + i]). Both products run on the bf16 GEMM's 6 x 64 register tile (bf16_detail::tile_avx512bf16:
// x pairs broadcast against a panel of 64 columns' pairs).
//
// Per (KV) head, packed once and shared by the threads (keys past n are zero, up to ns = n rounded up to 64):
//   kp: per panel of 64 keys, [hd / 2 pairs][64 keys] (pair s of key r: K[r][2s], K[r][2s + 1]) 16 KB at hd 128;
//   vp: per panel of 64 dims, [ns / 2 key pairs][64 dims] (pair s of dim c: V[2s][c], V[2s + 1][c]).
// Query blocks of k_rows rows (micro-panels of 6, rows past the block zero) are shared out over the threads. A
// block's scores S [k_rows][its keys] come from one tile call per (key panel, micro-panel), the key panel staying
// in L1 across the block's micro-panels, and are stored scaled while each row's maximum over its own keys is taken;
// softmax_scaled_row_bf16 turns each row into bf16 weights (zero past its keys) and their sum, the weights' rows
// being the x operand of P.V (tile_rows_avx512bf16, pairs of keys), which runs per chunk of k_chunk key pairs (a
// 64-dim panel chunk of 32 KB stays in L1 across the micro-panels), each output tile parked between chunks, which
// continues its chain over the key pairs unchanged; the outputs are divided by the row sums on the way out.
#include "kernels/cpu/attention_avx512bf16.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "core/aligned_buffer.h"
#include "core/dtype.h"
#include "kernels/cpu/attention_amx.h"
#include "kernels/cpu/gemm_bf16.h"
#include "kernels/cpu/kernel_util.h"

namespace autoglm::cpu {

namespace {

constexpr int64_t k_min_rows = 1024;
constexpr int64_t k_mr = bf16_detail::k_bf16_mr;  // rows per micro-panel (6)
constexpr int64_t k_nr = bf16_detail::k_bf16_nr;  // columns per panel (64)
constexpr int64_t k_panels = 8;                   // micro-panels per query block
constexpr int64_t k_rows = k_mr * k_panels;       // query rows per block (48)
constexpr int64_t k_chunk = 128;                  // key pairs per P.V pass: 64 dims x 128 pairs x 4 bytes = 32 KB

#if defined(__x86_64__)
struct head_panels {
  int64_t n, hd, ns;  // keys, head_dim, keys rounded up to 64
  uint32_t *kp, *vp;  // uint32 pairs, layouts above
  uint32_t* k_panel(int64_t p) const { return kp + p * (hd / 2) * k_nr; }
  uint32_t* v_panel(int64_t p) const { return vp + p * (ns / 2) * k_nr; }
  static int64_t k_words(int64_t ns, int64_t hd) { return ns * hd / 2; }
  static int64_t v_words(int64_t ns, int64_t hd) { return (hd + k_nr - 1) / k_nr * (ns / 2) * k_nr; }
};

// One query block of one head: its rows, where their outputs go, and how many keys each row sees (row i: keys
// [0, n0 + i) causal, [0, n0) otherwise).
struct block_job {
  const float* q;  // row 0, this head's columns
  int64_t qs;
  float* out;
  int64_t os;
  int64_t m, n0;
  bool causal;
  int64_t n_keys(int64_t i) const { return causal ? n0 + i : n0; }
};

struct block_buffers {
  aligned_buffer xq, s, p_rows, tiles;
  alignas(64) float row_max[k_rows][16];  // per query row, a running maximum per lane of the scaled scores
  float sums[k_rows];
  void reserve(int64_t hd, int64_t ns) {
    xq.resize(size_t(k_rows * hd / 2) * sizeof(uint32_t));
    s.resize(size_t(k_rows * ns) * sizeof(float));
    p_rows.resize(size_t(k_rows * ns) * sizeof(uint16_t));
    tiles.resize(size_t(k_panels * ((hd + k_nr - 1) / k_nr) * k_mr * k_nr) * sizeof(float));
  }
};

#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f,avx512bw,avx512vl")
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

// 16 floats rounded to bf16 (nearest even: f32_to_bf16's bits for every non-NaN value), one per 32-bit lane.
inline __m512i round16(const float* x, __mmask16 valid) {
  const __m512i u = _mm512_castps_si512(_mm512_maskz_loadu_ps(valid, x));
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  return _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), lsb), 16);
}

// Key panel p: key rows [64p, 64p + 64) (row(j, buf): key j < n as f32, possibly converted into buf; zero past n)
// rounded into `tmp` [64][hd] bf16, then transposed into pairs by the GEMM's W packing (kp[s][r] = pair s of key r);
// and key pairs [32p, 32p + 32) of every 64-dim panel of V: vp[dp][s][c] = (V[2s][64 dp + c], V[2s + 1][64 dp + c]).
template <class KRow, class VRow>
void pack_panel(KRow k_row, VRow v_row, int64_t p, const head_panels& h, uint16_t* tmp, float* buf0, float* buf1) {
  const uint16_t* rows[k_nr];
  for (int64_t r = 0; r < k_nr; ++r) {
    const int64_t j = p * k_nr + r;
    const float* kr = j < h.n ? k_row(j, buf0) : nullptr;
    uint16_t* dst = tmp + r * h.hd;
    rows[r] = dst;
    for (int64_t d = 0; d < h.hd; d += 16) {
      const __m512i b = kr ? round16(kr + d, first_lanes16(h.hd - d)) : _mm512_setzero_si512();
      _mm256_mask_storeu_epi16(dst + d, first_lanes16(h.hd - d), _mm512_cvtepi32_epi16(b));
    }
  }
  bf16_detail::pack_w_avx512bf16(rows, int(k_nr), h.hd / 2, h.hd, h.k_panel(p));
  for (int64_t s = p * k_nr / 2; s < (p + 1) * k_nr / 2; ++s) {
    const int64_t j = 2 * s;
    const float* v0 = j < h.n ? v_row(j, buf0) : nullptr;
    const float* v1 = j + 1 < h.n ? v_row(j + 1, buf1) : nullptr;
    for (int64_t d = 0; d < (h.hd + k_nr - 1) / k_nr * k_nr; d += 16) {
      const __mmask16 m = first_lanes16(h.hd - d);
      const __m512i lo = v0 ? round16(v0 + d, m) : _mm512_setzero_si512();
      const __m512i hi = v1 ? round16(v1 + d, m) : _mm512_setzero_si512();
      _mm512_store_si512(h.v_panel(d / k_nr) + s * k_nr + d % k_nr, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
    }
  }
}

// Score tile rows [0, n_rows) of key panel p, row a keeping keys [0, n_keys[a]) (the rest lie past the row's
// context): s = tile * scale (as softmax_row_bf16 scales), each row's running maximum per lane updated.
void store_scaled(const float* tile, int n_rows, const int64_t* n_keys, int64_t p, float scale, float* s, int64_t ns,
                  float (*row_max)[16]) {
  const __m512 sc = _mm512_set1_ps(scale);
  for (int a = 0; a < n_rows; ++a) {
    __m512 mx = _mm512_load_ps(row_max[a]);
    for (int64_t v = 0; v < k_nr / 16; ++v) {
      const __mmask16 m = first_lanes16(n_keys[a] - p * k_nr - 16 * v);
      const __m512 x = _mm512_mul_ps(_mm512_load_ps(tile + a * k_nr + 16 * v), sc);
      _mm512_mask_storeu_ps(s + a * ns + 16 * v, m, x);
      mx = _mm512_mask_max_ps(mx, m, mx, x);
    }
    _mm512_store_ps(row_max[a], mx);
  }
}

// dst[d] = row[d] * inv for d < hd, the row's dims spread over panels of 64 floats `stride` floats apart.
void store_out_row(const float* row, int64_t stride, int64_t hd, float inv, float* dst) {
  const __m512 f = _mm512_set1_ps(inv);
  for (int64_t d = 0; d < hd; d += 16)
    _mm512_mask_storeu_ps(dst + d, first_lanes16(hd - d),
                          _mm512_mul_ps(_mm512_load_ps(row + (d / k_nr) * stride + d % k_nr), f));
}

float reduce_max16(const float* lanes) { return _mm512_reduce_max_ps(_mm512_load_ps(lanes)); }

#pragma GCC diagnostic pop
#pragma GCC pop_options

// One block (j.m <= k_rows rows) against the head's panels: its outputs, divided by their sums.
void run_block(const block_job& j, float scale, const head_panels& h, block_buffers& b) {
  using namespace bf16_detail;
  const int64_t hd = h.hd, steps = hd / 2, d_panels = (hd + k_nr - 1) / k_nr, m = j.m;
  // The keys this block reads: up to its last row's, rounded up to whole panels.
  const int64_t n_last = j.n_keys(m - 1), ns = (n_last + k_nr - 1) / k_nr * k_nr, kpairs = ns / 2;
  uint32_t* xq = static_cast<uint32_t*>(b.xq.data());
  float* s = b.s.f32();
  float* tile = b.tiles.f32();  // [k_panels][d_panels][6 x 64]
  uint16_t* p_rows = static_cast<uint16_t*>(b.p_rows.data());  // [k_rows][ns] bf16 weights
  const int64_t used_panels = (m + k_mr - 1) / k_mr;
  int64_t n_keys[k_rows];
  for (int64_t i = 0; i < k_rows; ++i) n_keys[i] = i < m ? j.n_keys(i) : 0;

  // Q rows in micro-panels of bf16 pairs (rows past m zero).
  pack_x_avx512bf16(j.q, j.qs, m, hd, 0, used_panels, xq);
  // S [k_rows][ns] scaled, with the rows' maxima: one key panel at a time against every micro-panel.
  for (int64_t i = 0; i < m; ++i) std::fill(b.row_max[i], b.row_max[i] + 16, -INFINITY);
  for (int64_t p = 0; p < ns / k_nr; ++p) {
    const uint32_t* kt = h.k_panel(p);
    for (int64_t a = 0; a < used_panels; ++a) {
      tile_avx512bf16(xq + a * steps * k_mr, kt, steps, tile, false);
      store_scaled(tile, int(std::min(k_mr, m - a * k_mr)), n_keys + a * k_mr, p, scale, s + a * k_mr * ns + p * k_nr,
                   ns, b.row_max + a * k_mr);
    }
  }
  // Weights: row i's bf16 weights, zero past its keys; rows past m zero (the last micro-panel's padding).
  for (int64_t i = 0; i < used_panels * k_mr; ++i) {
    uint16_t* pr = p_rows + i * ns;
    if (i < m) b.sums[i] = softmax_scaled_row_bf16(s + i * ns, n_keys[i], reduce_max16(b.row_max[i]), pr);
    std::fill(pr + n_keys[i], pr + ns, uint16_t(0));
  }
  // O = P . V, chunk by chunk of key pairs; tiles parked between chunks.
  for (int64_t t0 = 0; t0 < kpairs; t0 += k_chunk) {
    const int64_t len = std::min(k_chunk, kpairs - t0);
    for (int64_t dp = 0; dp < d_panels; ++dp) {
      const uint32_t* vt = h.v_panel(dp) + t0 * k_nr;
      for (int64_t a = 0; a < used_panels; ++a) {
        const uint32_t* x_rows[k_mr];
        for (int64_t r = 0; r < k_mr; ++r)
          x_rows[r] = reinterpret_cast<const uint32_t*>(p_rows + (a * k_mr + r) * ns) + t0;
        tile_rows_avx512bf16(x_rows, vt, len, tile + (a * d_panels + dp) * k_mr * k_nr, t0 > 0);
      }
    }
  }
  for (int64_t i = 0; i < m; ++i)
    store_out_row(tile + ((i / k_mr) * d_panels * k_mr + i % k_mr) * k_nr, k_mr * k_nr, hd, 1.0f / b.sums[i],
                  j.out + i * j.os);
}

// Panels of n keys per KV head (kv heads [0, n_kv)), packed over the pool; rows(kvh) gives that head's (k_row,
// v_row) getters.
template <class Rows>
void pack_heads(thread_pool* pool, int64_t n_kv, Rows rows, std::vector<head_panels>& hs) {
  const int64_t n_panels = hs[0].ns / k_nr, hd = hs[0].hd;
  parallel_for(pool, n_kv * n_panels, 1, [&](int64_t w0, int64_t w1) {
    thread_local aligned_buffer tmp, bufs;
    tmp.resize(size_t(k_nr * hd) * sizeof(uint16_t));
    bufs.resize(size_t(2 * hd) * sizeof(float));
    for (int64_t w = w0; w < w1; ++w) {
      const int64_t kvh = w / n_panels;
      const auto [k_row, v_row] = rows(kvh);
      pack_panel(k_row, v_row, w % n_panels, hs[size_t(kvh)], static_cast<uint16_t*>(tmp.data()), bufs.f32(),
                 bufs.f32() + hd);
    }
  });
}

// Storage for n_kv heads' panels of n keys.
std::vector<head_panels> make_panels(aligned_buffer& store, int64_t n_kv, int64_t n, int64_t hd) {
  const int64_t ns = (n + k_nr - 1) / k_nr * k_nr;
  const int64_t kw = head_panels::k_words(ns, hd), vw = head_panels::v_words(ns, hd);
  store.resize(size_t(n_kv * (kw + vw)) * sizeof(uint32_t));
  uint32_t* base = static_cast<uint32_t*>(store.data());
  std::vector<head_panels> hs;
  for (int64_t h = 0; h < n_kv; ++h) hs.push_back({n, hd, ns, base + h * (kw + vw), base + h * (kw + vw) + kw});
  return hs;
}
#endif

}  // namespace

bool attention_dense_uses_avx512bf16(int64_t n, int64_t head_dim) {
  return n >= k_min_rows && head_dim % 32 == 0 && head_dim > 0 && !attention_dense_uses_amx(n, head_dim) &&
         get_cpu_gemm_precision() == cpu_gemm_precision::ROUNDED && bf16_gemm_available() && bf16_dots_outrun_fma();
}

void attention_dense_segment_avx512bf16(thread_pool* pool, rows_of<const float> q, rows_of<const float> k,
                                        rows_of<const float> v, int64_t r0, int64_t n, int64_t n_heads,
                                        int64_t head_dim, float scale, rows_of<float> out) {
  AG_CHECK(head_dim % 32 == 0 && head_dim > 0, "attention_dense (AVX-512 BF16): head_dim must be a multiple of 32");
  AG_CHECK(bf16_gemm_available(), "attention_dense: this CPU (or OS) does not offer AVX-512 BF16");
#if defined(__x86_64__)
  if (n <= 0) return;
  thread_local aligned_buffer store;
  const int64_t n_blocks = (n + k_rows - 1) / k_rows;
  std::vector<head_panels> hs = make_panels(store, 1, n, head_dim);  // each head's panels in turn
  for (int64_t hh = 0; hh < n_heads; ++hh) {
    const int64_t col = hh * head_dim;
    auto rows = [&](int64_t) {
      return std::pair{[&](int64_t j, float*) { return k[r0 + j] + col; },
                       [&](int64_t j, float*) { return v[r0 + j] + col; }};
    };
    pack_heads(pool, 1, rows, hs);
    parallel_for(pool, n_blocks, 1, [&](int64_t b0, int64_t b1) {
      thread_local block_buffers b;
      b.reserve(head_dim, hs[0].ns);
      for (int64_t blk = b0; blk < b1; ++blk) {
        const int64_t i0 = blk * k_rows;
        const block_job j{q[r0 + i0] + col, q.stride, out[r0 + i0] + col, out.stride, std::min(k_rows, n - i0), n,
                          false};
        run_block(j, scale, hs[0], b);
      }
    });
  }
#else
  (void)pool, (void)q, (void)k, (void)v, (void)r0, (void)n, (void)n_heads, (void)scale, (void)out;
#endif
}

bool attention_prefill_uses_avx512bf16(int64_t n_new, int64_t head_dim) {
  return n_new >= attn::k_bf16_prefill_min_rows && head_dim % 32 == 0 && head_dim > 0 &&
         !attention_prefill_uses_amx(n_new, head_dim) && get_cpu_gemm_precision() == cpu_gemm_precision::ROUNDED &&
         bf16_gemm_available() && bf16_dots_outrun_fma();
}

void attention_prefill_avx512bf16(thread_pool* pool, const float* q, int64_t qs, const attn::cache_view& kc,
                                  const attn::cache_view& vc, const attn::seq_desc& d, int64_t n_heads,
                                  int64_t n_kv_heads, int64_t head_dim, float scale, float* out, int64_t os) {
  AG_CHECK(head_dim % 32 == 0 && head_dim > 0, "attention_paged (AVX-512 BF16): head_dim must be a multiple of 32");
  AG_CHECK(n_kv_heads > 0 && n_heads % n_kv_heads == 0, "attention_paged: heads must be a multiple of KV heads");
  AG_CHECK(bf16_gemm_available(), "attention_paged: this CPU (or OS) does not offer AVX-512 BF16");
#if defined(__x86_64__)
  if (d.n_new <= 0) return;
  const int64_t n = d.n_past + d.n_new, group = n_heads / n_kv_heads, hd = head_dim;
  thread_local aligned_buffer store;
  std::vector<head_panels> hs = make_panels(store, n_kv_heads, n, hd);
  // Cache row of position j, KV head kvh, as f32 (F32 caches in place; others decoded into buf).
  auto rows = [&](int64_t kvh) {
    return std::pair{
        [&, kvh](int64_t j, float* buf) { return attn::position_row(kc, d, j, kvh, buf, hd); },
        [&, kvh](int64_t j, float* buf) { return attn::position_row(vc, d, j, kvh, buf, hd); }};
  };
  pack_heads(pool, n_kv_heads, rows, hs);
  // Items (query head, block), head-major: each thread's span holds every block length of its heads.
  const int64_t n_blocks = (d.n_new + k_rows - 1) / k_rows;
  parallel_for(pool, n_heads * n_blocks, 1, [&](int64_t w0, int64_t w1) {
    thread_local block_buffers b;
    b.reserve(hd, hs[0].ns);
    for (int64_t w = w0; w < w1; ++w) {
      const int64_t h = w / n_blocks, i0 = (w % n_blocks) * k_rows;
      const int64_t row = d.first_row + i0;
      const block_job j{q + row * qs + h * hd, qs, out + row * os + h * hd, os, std::min(k_rows, d.n_new - i0),
                        d.n_past + i0 + 1, true};
      run_block(j, scale, hs[size_t(h / group)], b);
    }
  });
#else
  (void)pool, (void)q, (void)qs, (void)kc, (void)vc, (void)d, (void)n_heads, (void)scale, (void)out, (void)os;
#endif
}

}  // namespace autoglm::cpu
