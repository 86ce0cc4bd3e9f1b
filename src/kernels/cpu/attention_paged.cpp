// kernels/cpu/attention_paged.cpp: causal paged attention of a group of new rows in three passes over a scores
// buffer [row][head][position], so that a decode step (1 token x 2 KV heads) still keeps 16 threads busy and
// each key/value row is read once per head group:
//   1. scores: items of (up to 16 consecutive rows of a sequence, KV head, 64 positions); each key row is read and
//      converted once for those rows and the heads of its group, and the dots are taken 2 heads x 2 key rows at a
//      time (scaled_dots: the same bits as one by one); on AVX-512, items of 16+ query rows take runs of 16 keys
//      laid out key-per-lane instead (scaled_dots_keys16: the same bits, no per-dot lane sums);
//   2. softmax: items of (row, head);
//   3. P.V: items of (row, KV head, 2 heads, 32 dimensions), accumulating in registers over all positions (on
//      AVX-512, where there are as many items as threads, 8 heads: pv_avx512); with 8+ rows (prefill), items of
//      (row, KV head) walking the positions in runs of 64 whose value rows stay in L1; on AVX-512 those take 8 heads
//      x 32 dims per pass (pv_avx512), each value row converted once for 8 heads.
// Each output element sees exactly the operations of the original per-row kernel (the same dot per (head,
// position), the same softmax, one FMA per position in position order, the tail as an explicit FMA as in
// axpy), so results are bit-identical to it and independent of the thread count. Measured on one core, 1.5x
// faster than the per-row kernel (P.V accumulates in registers instead of loading and storing the output).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/aligned_buffer.h"
#include "core/error.h"
#include "kernels/cpu/attention_common.h"
#include "kernels/cpu/convert.h"
#include "kernels/cpu/gemm_kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace autoglm::cpu::attn {

namespace {

constexpr int64_t k_pos_block = 64;  // positions per scores item
constexpr int k_key_run = 8;         // key rows converted together in pass 1 (8 x head_dim floats stay in L1)
constexpr int k_key_run16 = 16;      // the same on AVX-512 with key-per-lane runs (scaled_dots_keys16)
constexpr int64_t k_keys16_min_queries = 16;  // query rows (rows x heads) of an item from which runs of 16 are used
constexpr int64_t k_score_rows = 16;  // rows of one sequence sharing each converted key run in pass 1
constexpr int k_pv_heads = 2;        // query heads per P.V item: 2 x 4 accumulators + 4 values in 16 registers
constexpr int k_pv_vecs = 4;         // 8-lane vectors per P.V item (32 dimensions)
constexpr int64_t k_pv_run = 64;     // positions per run when P.V items are whole (row, KV head) pairs
constexpr int64_t k_pv_run_min_rows = 8;  // rows from which P.V takes those items (fewer: split over heads and dims)
constexpr int k_pv512_heads = 8;          // query heads per AVX-512 P.V pass: 8 x 2 zmm accumulators + 2 values

// Where pass 3 reads its weights and writes its outputs: heads h0.. of one row.
struct pv_item {
  const seq_desc* d;
  int64_t n_ctx, kvh;
  const float* w[k_pv512_heads];  // softmax weights of each head, [n_ctx]
  float* o[k_pv512_heads];        // each head's output
  int nh;                         // heads in this item (1 .. k_pv_heads; AVX-512 prefill: 1 .. k_pv512_heads)
  // Positions [p_begin, p_end) of the AVX2 vector kernel (pv_avx2); with `load` it continues the sums already in o
  // (the same FMA chain per output, stored and reloaded exactly between position runs).
  int64_t p_begin = 0, p_end = 0;
  bool load = false;
};

// Portable P.V over dims [d0, d1): o[h][i] = sum_p w[h][p] v[p][i], one multiply-add per position in order.
void pv_portable(const cache_view& vc, const pv_item& it, int64_t d0, int64_t d1, float* vbuf, int64_t hd) {
  for (int h = 0; h < it.nh; ++h) std::fill(it.o[h] + d0, it.o[h] + d1, 0.0f);
  const int64_t bs = vc.block_size;
  for (int64_t p0 = 0; p0 < it.n_ctx; p0 += bs) {
    const int64_t block = it.d->table[p0 / bs];
    for (int64_t p = p0; p < std::min(it.n_ctx, p0 + bs); ++p) {
      const float* v = f32_row(vc, vc.at(block, p - p0, it.kvh), vbuf, hd);
      for (int h = 0; h < it.nh; ++h)
        for (int64_t i = d0; i < d1; ++i) it.o[h][i] += it.w[h][p] * v[i];
    }
  }
}

#if defined(__x86_64__)
template <dtype T>
__attribute__((target("avx2,fma,f16c"))) inline __m256 load8(const uint8_t* row, int64_t d) {
  if constexpr (T == dtype::F32) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + d);
  } else if constexpr (T == dtype::BF16) {
    const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * d)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
  } else if constexpr (T == dtype::Q8_0) {  // 8 values inside one 32-block: f16 scale x int8, exact in F32
    const uint8_t* b = row + (d / 32) * 34;
    uint16_t h;
    std::memcpy(&h, b, 2);
    const __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(b + 2 + d % 32)));
    return _mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(h)), _mm256_cvtepi32_ps(q));
  } else {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * d)));
  }
}

template <dtype T>
inline float load1(const uint8_t* row, int64_t d) {
  if constexpr (T == dtype::F32) return reinterpret_cast<const float*>(row)[d];
  else if constexpr (T == dtype::BF16) return bf16_to_f32(reinterpret_cast<const uint16_t*>(row)[d]);
  else if constexpr (T == dtype::Q8_0) {
    uint16_t h;
    std::memcpy(&h, row + (d / 32) * 34, 2);
    return f16_to_f32(h) * float(int8_t(row[(d / 32) * 34 + 2 + d % 32]));
  } else return f16_to_f32(reinterpret_cast<const uint16_t*>(row)[d]);
}

// NV vectors of 8 dims from d0, NH heads, accumulated in registers over every position.
template <dtype T, int NH, int NV>
__attribute__((target("avx2,fma,f16c"))) void pv_avx2(const cache_view& vc, const pv_item& it, int64_t d0) {
  __m256 acc[NH][NV];
  for (int h = 0; h < NH; ++h)
    for (int j = 0; j < NV; ++j) acc[h][j] = it.load ? _mm256_loadu_ps(it.o[h] + d0 + 8 * j) : _mm256_setzero_ps();
  const int64_t bs = vc.block_size;
  for (int64_t p0 = it.p_begin / bs * bs; p0 < it.p_end; p0 += bs) {
    const int64_t block = it.d->table[p0 / bs];
    const int64_t p1 = std::min(it.p_end, p0 + bs);
    for (int64_t p = std::max(p0, it.p_begin); p < p1; ++p) {
      const uint8_t* row = vc.at(block, p - p0, it.kvh);
      __m256 v[NV];
      for (int j = 0; j < NV; ++j) v[j] = load8<T>(row, d0 + 8 * j);
      for (int h = 0; h < NH; ++h) {
        const __m256 w = _mm256_set1_ps(it.w[h][p]);
        for (int j = 0; j < NV; ++j) acc[h][j] = _mm256_fmadd_ps(w, v[j], acc[h][j]);
      }
    }
  }
  for (int h = 0; h < NH; ++h)
    for (int j = 0; j < NV; ++j) _mm256_storeu_ps(it.o[h] + d0 + 8 * j, acc[h][j]);
}

// The dims past the last whole vector, as axpy_avx2's tail computes them: one explicit FMA per position (left
// to the compiler, `acc += w * v` here became separate multiplies and adds).
template <dtype T>
__attribute__((target("avx2,fma,f16c"))) void pv_tail_avx2(const cache_view& vc, const pv_item& it, int64_t d0,
                                                            int64_t d1) {
  const int64_t bs = vc.block_size;
  for (int h = 0; h < it.nh; ++h)
    for (int64_t i = d0; i < d1; ++i) {
      float acc = 0.0f;
      for (int64_t p0 = 0; p0 < it.n_ctx; p0 += bs) {
        const int64_t block = it.d->table[p0 / bs];
        for (int64_t p = p0; p < std::min(it.n_ctx, p0 + bs); ++p)
          acc = std::fma(it.w[h][p], load1<T>(vc.at(block, p - p0, it.kvh), i), acc);
      }
      it.o[h][i] = acc;
    }
}

template <dtype T, int NH>
void pv_vectors(const cache_view& vc, const pv_item& it, int64_t d0, int nv) {
  switch (nv) {
    case 1: return pv_avx2<T, NH, 1>(vc, it, d0);
    case 2: return pv_avx2<T, NH, 2>(vc, it, d0);
    case 3: return pv_avx2<T, NH, 3>(vc, it, d0);
    default: return pv_avx2<T, NH, 4>(vc, it, d0);
  }
}

template <dtype T>
void pv_dispatch(const cache_view& vc, const pv_item& it, int64_t d0, int64_t d1, int64_t hd8) {
  if (d0 >= hd8) return pv_tail_avx2<T>(vc, it, d0, d1);
  const int nv = int((d1 - d0) / 8);
  if (it.nh == 2) pv_vectors<T, 2>(vc, it, d0, nv);
  else pv_vectors<T, 1>(vc, it, d0, nv);
}

// f.template operator()<T>() for the value type T of a cache (F32, BF16, Q8_0, else F16): the one place the P.V
// kernels' templates are chosen from a cache's type.
template <class F>
void with_value_type(dtype t, F&& f) {
  if (t == dtype::F32) f.template operator()<dtype::F32>();
  else if (t == dtype::BF16) f.template operator()<dtype::BF16>();
  else if (t == dtype::Q8_0) f.template operator()<dtype::Q8_0>();
  else f.template operator()<dtype::F16>();
}

// pv_dispatch for the cache's value type.
void pv_avx2_of(const cache_view& vc, const pv_item& it, int64_t d0, int64_t d1, int64_t hd8) {
  with_value_type(vc.type, [&]<dtype T>() { pv_dispatch<T>(vc, it, d0, d1, hd8); });
}

// GCC 12's AVX-512 conversions build on _mm512_undefined_*(), which -Wmaybe-uninitialized flags.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// 16 dims of a value row from d (d % 16 == 0), as load8 gives them 8 at a time (Q8_0: the 16 lie in one 32-block).
template <dtype T>
__attribute__((target("avx512f,avx2,fma,f16c"))) inline __m512 load16(const uint8_t* row, int64_t d) {
  if constexpr (T == dtype::F32) {
    return _mm512_loadu_ps(reinterpret_cast<const float*>(row) + d);
  } else if constexpr (T == dtype::BF16) {
    const __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2 * d)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
  } else if constexpr (T == dtype::Q8_0) {
    const uint8_t* b = row + (d / 32) * 34;
    uint16_t h;
    std::memcpy(&h, b, 2);
    const __m512i q = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 2 + d % 32)));
    return _mm512_mul_ps(_mm512_set1_ps(_cvtsh_ss(h)), _mm512_cvtepi32_ps(q));
  } else {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2 * d)));
  }
}

// Prefill P.V on AVX-512: NH (<= 8) heads x 32 dims from d0 over positions [p_begin, p_end), 16 zmm accumulators; a
// value row's 32 dims are loaded and converted once for all the heads (pv_avx2: once per pair of heads). Each output
// element gets pv_avx2's FMA per position in position order: the same bits.
template <dtype T, int NH>
__attribute__((target("avx512f,avx2,fma,f16c"))) void pv_avx512(const cache_view& vc, const pv_item& it, int64_t d0) {
  __m512 acc[NH][2];
  for (int h = 0; h < NH; ++h)
    for (int j = 0; j < 2; ++j) acc[h][j] = it.load ? _mm512_loadu_ps(it.o[h] + d0 + 16 * j) : _mm512_setzero_ps();
  const int64_t bs = vc.block_size;
  for (int64_t p0 = it.p_begin / bs * bs; p0 < it.p_end; p0 += bs) {
    const int64_t block = it.d->table[p0 / bs];
    const int64_t p1 = std::min(it.p_end, p0 + bs);
    for (int64_t p = std::max(p0, it.p_begin); p < p1; ++p) {
      const uint8_t* row = vc.at(block, p - p0, it.kvh);
      const __m512 v0 = load16<T>(row, d0), v1 = load16<T>(row, d0 + 16);
      for (int h = 0; h < NH; ++h) {
        const __m512 w = _mm512_set1_ps(it.w[h][p]);
        acc[h][0] = _mm512_fmadd_ps(w, v0, acc[h][0]);
        acc[h][1] = _mm512_fmadd_ps(w, v1, acc[h][1]);
      }
    }
  }
  for (int h = 0; h < NH; ++h)
    for (int j = 0; j < 2; ++j) _mm512_storeu_ps(it.o[h] + d0 + 16 * j, acc[h][j]);
}

template <dtype T>
void pv_avx512_heads(const cache_view& vc, const pv_item& it, int64_t d0) {
  switch (it.nh) {
    case 1: return pv_avx512<T, 1>(vc, it, d0);
    case 2: return pv_avx512<T, 2>(vc, it, d0);
    case 3: return pv_avx512<T, 3>(vc, it, d0);
    case 4: return pv_avx512<T, 4>(vc, it, d0);
    case 5: return pv_avx512<T, 5>(vc, it, d0);
    case 6: return pv_avx512<T, 6>(vc, it, d0);
    case 7: return pv_avx512<T, 7>(vc, it, d0);
    default: return pv_avx512<T, 8>(vc, it, d0);
  }
}

// pv_avx512_heads for the cache's value type.
void pv_avx512_of(const cache_view& vc, const pv_item& it, int64_t d0) {
  with_value_type(vc.type, [&]<dtype T>() { pv_avx512_heads<T>(vc, it, d0); });
}
#pragma GCC diagnostic pop
#endif

}  // namespace

void paged_attention_split(thread_pool* pool, const float* q, int64_t qs, const cache_view& kc, const cache_view& vc,
                           const std::vector<seq_desc>& seqs, const std::vector<row_ref>& rows, int64_t n_heads,
                           int64_t n_kv_heads, int64_t hd, float scale, float* out, int64_t os) {
  const int64_t group = n_heads / n_kv_heads;
  const int64_t n_rows = int64_t(rows.size());
  // Scores of row r, head h at offset[r] + h * n_ctx(r).
  std::vector<int64_t> offset(size_t(n_rows) + 1), n_ctx(static_cast<size_t>(n_rows));
  for (int64_t r = 0; r < n_rows; ++r) {
    n_ctx[size_t(r)] = seqs[size_t(rows[size_t(r)].seq)].n_past + rows[size_t(r)].i + 1;
    offset[size_t(r + 1)] = offset[size_t(r)] + n_heads * n_ctx[size_t(r)];
  }
  // Pass-1 row groups: up to k_score_rows consecutive rows of one sequence (group g: rows [g_row[g], g_row[g + 1])),
  // whose items start at first_item[g]; the group's last row has the longest context.
  std::vector<int64_t> g_row{0}, first_item{0};
  for (int64_t r = 1; r <= n_rows; ++r)
    if (r == n_rows || r - g_row.back() == k_score_rows || rows[size_t(r)].seq != rows[size_t(r - 1)].seq) {
      first_item.push_back(first_item.back() + n_kv_heads * ((n_ctx[size_t(r - 1)] + k_pos_block - 1) / k_pos_block));
      g_row.push_back(r);
    }
  const int64_t n_groups = int64_t(g_row.size()) - 1;
  // The calling thread's buffer, reused across calls (the lambdas below must name it through a reference:
  // a thread_local named inside them would be each worker's own).
  thread_local std::vector<float> t_scores;
  t_scores.resize(size_t(offset[size_t(n_rows)]));
  std::vector<float>& scores = t_scores;
  auto group_of_item = [&](int64_t w) {
    return int64_t(std::upper_bound(first_item.begin(), first_item.end(), w) - first_item.begin()) - 1;
  };

  // 1. scores[r][h][p] = (q_rh . k_p) * scale: runs of k_key_run key rows (converted to F32 once per run for all
  // the rows of a group: a prefill row group shares its keys) against the group's heads of each row, scaled_dots
  // taking them 2 x 2. Every score is the same dot whatever the grouping.
  // AVX-512: key runs of 16 laid out key-per-lane (scaled_dots_keys16, the same bits) for items with at least
  // k_keys16_min_queries query rows (rows x heads); one row's 8 heads keep the 2 x 2 dots (the transposition would
  // cost about what it saves there).
  const bool keys16_ok = key_runs16_usable(hd);
  parallel_for(pool, first_item[size_t(n_groups)], 1, [&](int64_t w0, int64_t w1) {
    thread_local std::vector<float> kbuf;
    thread_local aligned_buffer kt;
    thread_local std::vector<const float*> qp;
    kbuf.resize(size_t(k_key_run16 * hd));
    if (keys16_ok) kt.resize(size_t(k_key_run16 * hd) * sizeof(float));
    qp.resize(size_t(k_score_rows * group));
    for (int64_t w = w0; w < w1; ++w) {
      const int64_t g = group_of_item(w), local = w - first_item[size_t(g)];
      const int64_t r0 = g_row[size_t(g)], r1 = g_row[size_t(g + 1)], ctx_max = n_ctx[size_t(r1 - 1)];
      const int64_t n_pb = (ctx_max + k_pos_block - 1) / k_pos_block;
      const int64_t kvh = local / n_pb, p_begin = (local % n_pb) * k_pos_block;
      const int64_t p_end = std::min(ctx_max, p_begin + k_pos_block);
      const seq_desc& d = seqs[size_t(rows[size_t(r0)].seq)];
      for (int64_t r = r0; r < r1; ++r) {
        const float* qrow = q + (d.first_row + rows[size_t(r)].i) * qs;
        for (int64_t h = 0; h < group; ++h) qp[size_t((r - r0) * group + h)] = qrow + (kvh * group + h) * hd;
      }
      const bool keys16 = keys16_ok && (r1 - r0) * group >= k_keys16_min_queries;
      const int run = keys16 ? k_key_run16 : k_key_run;
      for (int64_t p0 = p_begin; p0 < p_end; p0 += run) {
        const int nk = int(std::min<int64_t>(run, p_end - p0));
        const float* kp[k_key_run16];
        for (int j = 0; j < nk; ++j) {
          const int64_t p = p0 + j;
          kp[j] = position_row(kc, d, p, kvh, kbuf.data() + j * hd, hd);
        }
        if (keys16) transpose_keys16(kp, nk, hd, kt.f32());
        for (int64_t r = r0; r < r1; ++r) {
          const int nk_r = int(std::min<int64_t>(nk, n_ctx[size_t(r)] - p0));  // the row's own causal extent
          if (nk_r <= 0) continue;
          float* srow = scores.data() + offset[size_t(r)] + kvh * group * n_ctx[size_t(r)];
          if (keys16)
            scaled_dots_keys16(qp.data() + (r - r0) * group, int(group), kt.f32(), nk_r, hd, scale, srow + p0,
                               n_ctx[size_t(r)]);
          else
            scaled_dots(qp.data() + (r - r0) * group, int(group), kp, nk_r, hd, scale, srow + p0, n_ctx[size_t(r)]);
        }
      }
    }
  });
  // 2. softmax per (row, head).
  parallel_for(pool, n_rows * n_heads, 1, [&](int64_t w0, int64_t w1) {
    for (int64_t w = w0; w < w1; ++w) {
      const int64_t r = w / n_heads, h = w % n_heads;
      softmax(scores.data() + offset[size_t(r)] + h * n_ctx[size_t(r)], n_ctx[size_t(r)]);
    }
  });
  // 3. out[r][h][dims] = sum_p scores[r][h][p] v_p[dims].
  const int64_t hd8 = hd / 8 * 8;
#if defined(__x86_64__)
  const bool avx2 = cpu_has_avx2();
#else
  const bool avx2 = false;
#endif
  // Dimension blocks: whole vectors in blocks of k_pv_vecs, then the tail; the portable path takes all at once.
  std::vector<std::pair<int64_t, int64_t>> dims;
  if (avx2) {
    for (int64_t d0 = 0; d0 < hd8; d0 += 8 * k_pv_vecs) dims.push_back({d0, std::min(hd8, d0 + 8 * k_pv_vecs)});
    if (hd8 < hd) dims.push_back({hd8, hd});
  } else {
    dims.push_back({0, hd});
  }
  const int64_t n_dim_blocks = int64_t(dims.size());
  const int64_t head_blocks = (group + k_pv_heads - 1) / k_pv_heads;
  // The P.V item of row r and KV head kvh over all its positions, heads not yet chosen.
  auto item_of = [&](int64_t r, int64_t kvh) {
    pv_item it;
    it.d = &seqs[size_t(rows[size_t(r)].seq)];
    it.n_ctx = n_ctx[size_t(r)];
    it.p_end = it.n_ctx;
    it.kvh = kvh;
    return it;
  };
  // Its heads: block hb of `width` heads of the KV head's group (weights from the scores, outputs in out).
  auto set_heads = [&](pv_item& it, int64_t r, int64_t hb, int width = k_pv_heads) {
    const int64_t h0 = it.kvh * group + hb * width;
    it.nh = int(std::min<int64_t>(width, (it.kvh + 1) * group - h0));
    float* orow = out + (it.d->first_row + rows[size_t(r)].i) * os;
    for (int h = 0; h < it.nh; ++h) {
      it.w[h] = scores.data() + offset[size_t(r)] + (h0 + h) * it.n_ctx;
      it.o[h] = orow + (h0 + h) * hd;
    }
  };
#if defined(__x86_64__)
  // Many rows (prefill): items of (row, KV head) that walk the positions in runs of k_pv_run, every head and dim
  // block of the group over one run before the next, so the run's value rows are read from L1 rather than once per
  // (head pair, dim block) from L2/L3. Whole vectors only (no tail dims).
  if (avx2 && hd8 == hd && n_rows >= k_pv_run_min_rows) {
    // AVX-512 (hd a multiple of 32): blocks of up to 8 heads by 32 dims (pv_avx512), else pv_avx2's 2 heads.
    const bool wide = hd % 32 == 0 && gemm_detail::cpu_has_avx512();
    const int width = wide ? k_pv512_heads : k_pv_heads;
    const int64_t blocks = (group + width - 1) / width;
    parallel_for(pool, n_rows * n_kv_heads, 1, [&](int64_t w0, int64_t w1) {
      for (int64_t w = w0; w < w1; ++w) {
        const int64_t r = w / n_kv_heads;
        pv_item it = item_of(r, w % n_kv_heads);
        const int64_t n = it.n_ctx;
        for (int64_t pb = 0; pb < n; pb += k_pv_run) {
          it.p_begin = pb;
          it.p_end = std::min(n, pb + k_pv_run);
          it.load = pb > 0;
          for (int64_t hb = 0; hb < blocks; ++hb) {
            set_heads(it, r, hb, width);
            if (wide) {
              for (int64_t d0 = 0; d0 < hd; d0 += 32) pv_avx512_of(vc, it, d0);
            } else {
              for (const auto& [d0, d1] : dims) pv_avx2_of(vc, it, d0, d1, hd8);
            }
          }
        }
      }
    });
    return;
  }
  // Few rows (decode) on AVX-512: items of (row, KV head, 8 heads, 32 dims) over all positions (pv_avx512: each value
  // row converted once for 8 heads rather than once per pair), where there are at least as many items as threads.
  // 1.5B dims (8 heads per KV head), q4_0, 2 threads: a decode at 4,096 positions 33.2 -> 30.8 ms.
  const int64_t wide_blocks = (group + k_pv512_heads - 1) / k_pv512_heads, dim_blocks = hd / 32;
  const int64_t wide_items = n_rows * n_kv_heads * wide_blocks * dim_blocks;
  if (avx2 && hd % 32 == 0 && gemm_detail::cpu_has_avx512() && wide_items >= (pool ? pool->n_threads() : 1)) {
    parallel_for(pool, wide_items, 1, [&](int64_t w0, int64_t w1) {
      for (int64_t w = w0; w < w1; ++w) {
        const int64_t db = w % dim_blocks, hb = (w / dim_blocks) % wide_blocks;
        const int64_t kvh = (w / (dim_blocks * wide_blocks)) % n_kv_heads;
        const int64_t r = w / (dim_blocks * wide_blocks * n_kv_heads);
        pv_item it = item_of(r, kvh);
        set_heads(it, r, hb, k_pv512_heads);
        pv_avx512_of(vc, it, 32 * db);
      }
    });
    return;
  }
#endif
  parallel_for(pool, n_rows * n_kv_heads * head_blocks * n_dim_blocks, 1, [&](int64_t w0, int64_t w1) {
    thread_local std::vector<float> vbuf;
    vbuf.resize(size_t(hd));
    for (int64_t w = w0; w < w1; ++w) {
      const int64_t db = w % n_dim_blocks, hb = (w / n_dim_blocks) % head_blocks;
      const int64_t kvh = (w / (n_dim_blocks * head_blocks)) % n_kv_heads, r = w / (n_dim_blocks * head_blocks * n_kv_heads);
      pv_item it = item_of(r, kvh);
      set_heads(it, r, hb);
      const auto [d0, d1] = dims[size_t(db)];
#if defined(__x86_64__)
      if (avx2) {
        pv_avx2_of(vc, it, d0, d1, hd8);
        continue;
      }
#endif
      pv_portable(vc, it, d0, d1, vbuf.data(), hd);
    }
  });
}

}  // namespace autoglm::cpu::attn
