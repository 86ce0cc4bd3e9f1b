// tests/kernels/dense_attention_problem.h: the problems both bf16 attention tests use (the AMX paths,
// attention_amx_test.cpp; the AVX-512 BF16 paths, attention_avx512bf16_test.cpp): for dense attention, q, k and v as
// strided views of one fused buffer of normal draws, an output with padding columns at a sentinel, and the
// double-precision reference of a segment, exact or under the bf16 contract (Q, K, V and the softmax weights rounded
// to bf16); for the causal prefill, a paged cache and the whole check of a prefill kernel against that contract.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/cpu/attention_common.h"
#include "kernels/cpu/convert.h"
#include "kernels/cpu/kernel_util.h"
#include "kernels/cpu/quant_kv.h"

namespace autoglm::cpu::dense_test {

constexpr float k_sentinel = -777.0f;

struct problem {
  int64_t rows, heads, hd;
  std::vector<float> qkv;  // [rows, 3 * heads * hd]
  std::vector<float> out;  // [rows, heads * hd + 5] (padding columns stay at the sentinel)
  int64_t w() const { return heads * hd; }
  int64_t ld_out() const { return w() + 5; }
  rows_of<const float> part(int i) const { return {qkv.data() + i * w(), 3 * w()}; }
  rows_of<float> out_rows() { return {out.data(), ld_out()}; }
};

inline problem make(int64_t rows, int64_t heads, int64_t hd, uint64_t seed) {
  problem p{rows, heads, hd, {}, {}};
  std::mt19937_64 gen(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  p.qkv.resize(size_t(rows * 3 * p.w()));
  for (float& x : p.qkv) x = nd(gen);
  p.out.assign(size_t(rows * p.ld_out()), k_sentinel);
  return p;
}

// Head h of segment row i (rows [r0, r0 + n)), exact (round = false) or under the kernel's contract (round = true).
inline std::vector<double> reference(const problem& p, int64_t r0, int64_t n, float scale, bool round) {
  auto at = [&](int part, int64_t i, int64_t h, int64_t d) {
    const float x = p.qkv[size_t((r0 + i) * 3 * p.w() + part * p.w() + h * p.hd + d)];
    return double(round ? round_bf16(x) : x);
  };
  std::vector<double> ref(size_t(n * p.w()));
  std::vector<double> s(static_cast<size_t>(n));
  for (int64_t h = 0; h < p.heads; ++h)
    for (int64_t i = 0; i < n; ++i) {
      double mx = -INFINITY;
      for (int64_t j = 0; j < n; ++j) {
        double dot = 0.0;
        for (int64_t d = 0; d < p.hd; ++d) dot += at(0, i, h, d) * at(1, j, h, d);
        s[size_t(j)] = dot * scale;
        mx = std::max(mx, s[size_t(j)]);
      }
      double sum = 0.0;
      for (int64_t j = 0; j < n; ++j) {
        const double e = std::exp(s[size_t(j)] - mx);
        s[size_t(j)] = round ? double(round_bf16(float(e))) : e;
        sum += s[size_t(j)];
      }
      for (int64_t d = 0; d < p.hd; ++d) {
        double acc = 0.0;
        for (int64_t j = 0; j < n; ++j) acc += s[size_t(j)] * at(2, j, h, d);
        ref[size_t(i * p.w() + h * p.hd + d)] = acc / sum;
      }
    }
  return ref;
}

// Largest |out - ref| over rows [r0, r0 + n); every other entry of out must still hold the sentinel.
inline double max_error(const problem& p, int64_t r0, int64_t n, const std::vector<double>& ref) {
  double err = 0.0;
  for (int64_t r = 0; r < p.rows; ++r)
    for (int64_t c = 0; c < p.ld_out(); ++c) {
      const float o = p.out[size_t(r * p.ld_out() + c)];
      if (!(r >= r0 && r < r0 + n && c < p.w())) {
        EXPECT_EQ(o, k_sentinel) << "row " << r << " col " << c << " written outside the segment";
        continue;
      }
      err = std::max(err, std::fabs(double(o) - ref[size_t((r - r0) * p.w() + c)]));
    }
  return err;
}

// A paged cache of one layer: [n_blocks, 16 slots, n_kv heads, hd] in `type`, sequence positions in shuffled blocks.
struct paged_problem {
  dtype type;
  int64_t n_kv, hd, bs = 16, n_blocks;
  std::vector<uint8_t> k, v;
  std::vector<int32_t> table;
  int64_t head_bytes() const { return int64_t(dtype_row_bytes(type, hd)); }
  attn::cache_view view(std::vector<uint8_t>& c) const {
    return {type, c.data(), bs * n_kv * head_bytes(), n_kv * head_bytes(), head_bytes(), n_blocks, int32_t(bs)};
  }
  void put(std::vector<uint8_t>& c, int64_t pos, int64_t head, const float* x) {
    uint8_t* dst = view(c).at(table[size_t(pos / bs)], pos % bs, head);
    if (type == dtype::Q8_0)
      f32_to_q8_0(x, dst, hd);
    else
      convert_from_f32(type, x, dst, hd);
  }
  // The cache's value of a row, as the kernel decodes it.
  std::vector<float> get(std::vector<uint8_t>& c, int64_t pos, int64_t head) {
    std::vector<float> buf(static_cast<size_t>(hd));
    const float* r = attn::f32_row(view(c), view(c).at(table[size_t(pos / bs)], pos % bs, head), buf.data(), hd);
    return std::vector<float>(r, r + hd);
  }
};

// A causal prefill over a paged cache (attention_prefill_avx512bf16's or attention_prefill_amx's signature).
using prefill_fn = void (*)(thread_pool*, const float*, int64_t, const attn::cache_view&, const attn::cache_view&,
                            const attn::seq_desc&, int64_t, int64_t, int64_t, float, float*, int64_t);

// F32, F16, BF16 and Q8_0 caches with shuffled block tables, history before the new rows, grouped query heads,
// strided q and out: each row against the double-precision value of the contract over its own positions (1e-3)
// and exact attention (2e-2); rows and columns outside the sequence untouched.
inline void check_causal_prefill(prefill_fn prefill, int threads) {
  struct shape {
    dtype type;
    int64_t n_heads, n_kv, hd, n_past, n_new;
  };
  const shape shapes[] = {{dtype::F16, 8, 2, 64, 0, 64},
                          {dtype::F32, 4, 1, 128, 37, 100},
                          {dtype::BF16, 6, 3, 96, 70, 65},
                          {dtype::Q8_0, 32, 2, 128, 5, 111}};
  for (const shape& sh : shapes) {
    const int64_t n = sh.n_past + sh.n_new, w = sh.n_heads * sh.hd, qs = w + 7, os = w + 3, first = 2;
    paged_problem c{sh.type, sh.n_kv, sh.hd, 16, (n + 15) / 16 + 3, {}, {}, {}};
    c.k.assign(size_t(c.n_blocks * c.bs * c.n_kv * c.head_bytes()), 0);
    c.v = c.k;
    for (int64_t b = 0; b < (n + 15) / 16; ++b) c.table.push_back(int32_t((b * 5 + 3) % c.n_blocks));
    std::mt19937_64 gen(uint64_t(n * 7 + sh.hd));
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> row(static_cast<size_t>(sh.hd));
    for (int64_t p = 0; p < n; ++p)
      for (int64_t h = 0; h < sh.n_kv; ++h) {
        for (float& x : row) x = nd(gen);
        c.put(c.k, p, h, row.data());
        for (float& x : row) x = nd(gen);
        c.put(c.v, p, h, row.data());
      }
    std::vector<float> q(size_t((first + sh.n_new + 1) * qs));
    for (float& x : q) x = nd(gen);
    std::vector<float> out(size_t((first + sh.n_new + 1) * os), k_sentinel);
    attn::seq_desc d{first, sh.n_new, sh.n_past, c.table.data(), int64_t(c.table.size())};
    const float scale = 1.0f / std::sqrt(float(sh.hd));
    thread_pool pool(threads);
    prefill(&pool, q.data(), qs, c.view(c.k), c.view(c.v), d, sh.n_heads, sh.n_kv, sh.hd, scale, out.data(), os);
    // Reference per (row, head): the decoded cache rows, rounded (contract) or not (exact).
    double err_contract = 0.0, err_exact = 0.0;
    for (int64_t i = 0; i < sh.n_new; ++i)
      for (int64_t h = 0; h < sh.n_heads; ++h) {
        const int64_t kvh = h / (sh.n_heads / sh.n_kv), ctx = sh.n_past + i + 1;
        const float* qi = q.data() + (first + i) * qs + h * sh.hd;
        for (bool round : {true, false}) {
          auto r = [&](float x) { return double(round ? round_bf16(x) : x); };
          std::vector<double> s(static_cast<size_t>(ctx)), o(static_cast<size_t>(sh.hd), 0.0);
          double mx = -INFINITY, sum = 0.0;
          for (int64_t p = 0; p < ctx; ++p) {
            const std::vector<float> kp = c.get(c.k, p, kvh);
            double dot = 0.0;
            for (int64_t e = 0; e < sh.hd; ++e) dot += r(qi[e]) * r(kp[size_t(e)]);
            s[size_t(p)] = dot * scale;
            mx = std::max(mx, s[size_t(p)]);
          }
          for (int64_t p = 0; p < ctx; ++p) {
            const double e = std::exp(s[size_t(p)] - mx);
            const double wgt = round ? double(round_bf16(float(e))) : e;
            sum += wgt;
            const std::vector<float> vp = c.get(c.v, p, kvh);
            for (int64_t e2 = 0; e2 < sh.hd; ++e2) o[size_t(e2)] += wgt * r(vp[size_t(e2)]);
          }
          for (int64_t e = 0; e < sh.hd; ++e) {
            const double err = std::fabs(double(out[size_t((first + i) * os + h * sh.hd + e)]) - o[size_t(e)] / sum);
            (round ? err_contract : err_exact) = std::max(round ? err_contract : err_exact, err);
          }
        }
      }
    const std::string what = std::string(dtype_name(sh.type)) + " n_past=" + std::to_string(sh.n_past) +
                             " n_new=" + std::to_string(sh.n_new) + " hd=" + std::to_string(sh.hd);
    EXPECT_LE(err_contract, 1e-3) << what;
    EXPECT_LE(err_exact, 2e-2) << what;
    for (int64_t r = 0; r < first + sh.n_new + 1; ++r)
      for (int64_t col = 0; col < os; ++col)
        if (r < first || r >= first + sh.n_new || col >= w) {
          ASSERT_EQ(out[size_t(r * os + col)], k_sentinel) << what << ": row " << r << " col " << col;
        }
  }
}

}  // namespace autoglm::cpu::dense_test
