// kernels/cpu/attention_avx512bf16.cpp: dense (bidirectional) attention of one segment on AVX-512 BF16 dot
// products, see attention_avx512bf16.h. Both products run on the bf16 GEMM's 6 x 64 register tile
// (bf16_detail::tile_avx512bf16: x pairs broadcast against a panel of 64 columns' pairs).
//
// Per head, packed once and shared by the threads (keys past n are zero, up to ns = n rounded up to 64):
//   kp: per panel of 64 keys, [hd / 2 pairs][64 keys] (pair s of key r: K[r][2s], K[r][2s + 1]) 16 KB at hd 128;
//   vp: per panel of 64 dims, [ns / 2 key pairs][64 dims] (pair s of dim c: V[2s][c], V[2s + 1][c]).
// Query blocks of k_rows rows (micro-panels of 6, rows past the segment zero) are shared out over the threads. A
// block's scores S [k_rows][ns] f32 come from one tile call per (key panel, micro-panel), the key panel staying in
// L1 across the block's micro-panels; softmax_row_bf16 turns each row into bf16 weights and their sum, which are
// laid out as the tile's x operand (pairs of keys); P.V then runs per chunk of k_chunk key pairs (a 64-dim panel
// chunk of 32 KB stays in L1 across the micro-panels), each output tile parked between chunks, which continues its
// chain over the key pairs unchanged; the outputs are divided by the row sums on the way out.
#include "kernels/cpu/attention_avx512bf16.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "core/aligned_buffer.h"
#include "core/dtype.h"
#include "kernels/cpu/attention_amx.h"
#include "kernels/cpu/gemm_bf16.h"

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
  int64_t n, hd, ns;
  aligned_buffer kp, vp;  // uint32 pairs, layouts above
  uint32_t* k_panel(int64_t p) { return static_cast<uint32_t*>(kp.data()) + p * (hd / 2) * k_nr; }
  uint32_t* v_panel(int64_t p) { return static_cast<uint32_t*>(vp.data()) + p * (ns / 2) * k_nr; }
};

struct block_buffers {
  aligned_buffer xq, s, p_rows, tiles, k_rows_bf16;
  alignas(64) float row_max[k_rows][16];  // per query row, a running maximum per lane of the scaled scores
  float sums[k_rows];
};

#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f,avx512bw,avx512vl")
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

inline __mmask16 first_lanes(int64_t n) {
  return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1);
}

// 16 floats rounded to bf16 (nearest even: f32_to_bf16's bits for every non-NaN value), one per 32-bit lane.
inline __m512i round16(const float* x, __mmask16 valid) {
  const __m512i u = _mm512_castps_si512(_mm512_maskz_loadu_ps(valid, x));
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  return _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), lsb), 16);
}

// Key panel p: K rows [64p, 64p + 64) of the head (zero past n) rounded into `tmp` [64][hd] bf16, then transposed
// into pairs by the GEMM's W packing (kp[s][r] = pair s of key r).
void pack_k_panel(rows_of<const float> k, int64_t r0, int64_t col, int64_t p, head_panels& h, uint16_t* tmp) {
  const uint16_t* rows[k_nr];
  for (int64_t r = 0; r < k_nr; ++r) {
    const int64_t j = p * k_nr + r;
    uint16_t* dst = tmp + r * h.hd;
    rows[r] = dst;
    for (int64_t d = 0; d < h.hd; d += 16) {
      const __m512i b = j < h.n ? round16(k[r0 + j] + col + d, first_lanes(h.hd - d)) : _mm512_setzero_si512();
      _mm256_mask_storeu_epi16(dst + d, first_lanes(h.hd - d), _mm512_cvtepi32_epi16(b));
    }
  }
  bf16_detail::pack_w_avx512bf16(rows, int(k_nr), h.hd / 2, h.hd, h.k_panel(p));
}

// Key pairs [32p, 32p + 32) of every 64-dim panel of V: vp[dp][s][c] = (V[2s][64 dp + c], V[2s + 1][64 dp + c]).
void pack_v_pairs(rows_of<const float> v, int64_t r0, int64_t col, int64_t p, head_panels& h) {
  for (int64_t s = p * k_nr / 2; s < (p + 1) * k_nr / 2; ++s) {
    const int64_t j = 2 * s;
    for (int64_t d = 0; d < (h.hd + k_nr - 1) / k_nr * k_nr; d += 16) {
      const __mmask16 m = first_lanes(h.hd - d);
      const __m512i lo = j < h.n ? round16(v[r0 + j] + col + d, m) : _mm512_setzero_si512();
      const __m512i hi = j + 1 < h.n ? round16(v[r0 + j + 1] + col + d, m) : _mm512_setzero_si512();
      _mm512_store_si512(h.v_panel(d / k_nr) + s * k_nr + d % k_nr, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
    }
  }
}

// Score tile rows [0, n_rows) x keys [0, n_cols) (the rest past the segment): s = tile * scale (as softmax_row_bf16
// scales), each row's running maximum per lane updated.
void store_scaled(const float* tile, int n_rows, int64_t n_cols, float scale, float* s, int64_t ns,
                  float (*row_max)[16]) {
  const __m512 sc = _mm512_set1_ps(scale);
  for (int a = 0; a < n_rows; ++a) {
    __m512 mx = _mm512_load_ps(row_max[a]);
    for (int64_t v = 0; v < k_nr / 16; ++v) {
      const __mmask16 m = first_lanes(n_cols - 16 * v);
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
    _mm512_mask_storeu_ps(dst + d, first_lanes(hd - d),
                          _mm512_mul_ps(_mm512_load_ps(row + (d / k_nr) * stride + d % k_nr), f));
}

float reduce_max16(const float* lanes) { return _mm512_reduce_max_ps(_mm512_load_ps(lanes)); }

#pragma GCC diagnostic pop
#pragma GCC pop_options

// Query rows [i0, i0 + m) of one head (m <= k_rows) into out, divided by their sums.
void run_block(rows_of<const float> q, int64_t r0, int64_t col, int64_t i0, int64_t m, float scale, head_panels& h,
               block_buffers& b, rows_of<float> out) {
  using namespace bf16_detail;
  const int64_t hd = h.hd, steps = hd / 2, ns = h.ns, kpairs = ns / 2, d_panels = (hd + k_nr - 1) / k_nr;
  uint32_t* xq = static_cast<uint32_t*>(b.xq.data());
  float* s = b.s.f32();
  float* tile = b.tiles.f32();  // [k_panels][d_panels][6 x 64]
  uint16_t* p_rows = static_cast<uint16_t*>(b.p_rows.data());  // [k_rows][ns] bf16 weights
  const int64_t used_panels = (m + k_mr - 1) / k_mr;

  // Q rows in micro-panels of bf16 pairs (rows past m zero).
  pack_x_avx512bf16(q[r0 + i0] + col, q.stride, m, hd, 0, used_panels, xq);
  // S [k_rows][ns] scaled, with the rows' maxima: one key panel at a time against every micro-panel.
  for (int64_t i = 0; i < m; ++i) std::fill(b.row_max[i], b.row_max[i] + 16, -INFINITY);
  for (int64_t p = 0; p < ns / k_nr; ++p) {
    const uint32_t* kt = h.k_panel(p);
    for (int64_t a = 0; a < used_panels; ++a) {
      tile_avx512bf16(xq + a * steps * k_mr, kt, steps, tile, false);
      store_scaled(tile, int(std::min(k_mr, m - a * k_mr)), h.n - p * k_nr, scale, s + a * k_mr * ns + p * k_nr, ns,
                   b.row_max + a * k_mr);
    }
  }
  // Weights: row i's bf16 weights, zero past n; rows past m zero (the last micro-panel's padding).
  for (int64_t i = 0; i < used_panels * k_mr; ++i) {
    uint16_t* pr = p_rows + i * ns;
    if (i < m) {
      b.sums[i] = softmax_scaled_row_bf16(s + i * ns, h.n, reduce_max16(b.row_max[i]), pr);
      std::fill(pr + h.n, pr + ns, uint16_t(0));
    } else {
      std::fill(pr, pr + ns, uint16_t(0));
    }
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
                  out[r0 + i0 + i] + col);
}
#endif

}  // namespace

bool attention_dense_uses_avx512bf16(int64_t n, int64_t head_dim) {
  return n >= k_min_rows && head_dim % 32 == 0 && head_dim > 0 && !attention_dense_uses_amx(n, head_dim) &&
         get_cpu_gemm_precision() == cpu_gemm_precision::ROUNDED && bf16_gemm_available();
}

void attention_dense_segment_avx512bf16(thread_pool* pool, rows_of<const float> q, rows_of<const float> k,
                                        rows_of<const float> v, int64_t r0, int64_t n, int64_t n_heads,
                                        int64_t head_dim, float scale, rows_of<float> out) {
  AG_CHECK(head_dim % 32 == 0 && head_dim > 0, "attention_dense (AVX-512 BF16): head_dim must be a multiple of 32");
  AG_CHECK(bf16_gemm_available(), "attention_dense: this CPU (or OS) does not offer AVX-512 BF16");
#if defined(__x86_64__)
  if (n <= 0) return;
  head_panels h{n, head_dim, (n + k_nr - 1) / k_nr * k_nr, {}, {}};
  const int64_t d_panels = (head_dim + k_nr - 1) / k_nr;
  h.kp.resize(size_t(h.ns * head_dim / 2) * sizeof(uint32_t));
  h.vp.resize(size_t(d_panels * (h.ns / 2) * k_nr) * sizeof(uint32_t));
  const int64_t n_blocks = (n + k_rows - 1) / k_rows, n_panels = h.ns / k_nr;
  for (int64_t hh = 0; hh < n_heads; ++hh) {
    const int64_t col = hh * head_dim;
    parallel_for(pool, n_panels, 1, [&](int64_t p0, int64_t p1) {
      thread_local aligned_buffer tmp;
      tmp.resize(size_t(k_nr * head_dim) * sizeof(uint16_t));
      for (int64_t p = p0; p < p1; ++p) {
        pack_k_panel(k, r0, col, p, h, static_cast<uint16_t*>(tmp.data()));
        pack_v_pairs(v, r0, col, p, h);
      }
    });
    parallel_for(pool, n_blocks, 1, [&](int64_t b0, int64_t b1) {
      thread_local block_buffers b;
      b.xq.resize(size_t(k_rows * head_dim / 2) * sizeof(uint32_t));
      b.s.resize(size_t(k_rows * h.ns) * sizeof(float));
      b.p_rows.resize(size_t(k_rows * h.ns) * sizeof(uint16_t));
      b.tiles.resize(size_t(k_panels * d_panels * k_mr * k_nr) * sizeof(float));
      for (int64_t blk = b0; blk < b1; ++blk)
        run_block(q, r0, col, blk * k_rows, std::min(k_rows, n - blk * k_rows), scale, h, b, out);
    });
  }
#else
  (void)pool, (void)q, (void)k, (void)v, (void)r0, (void)n, (void)n_heads, (void)scale, (void)out;
#endif
}

}  // namespace autoglm::cpu
