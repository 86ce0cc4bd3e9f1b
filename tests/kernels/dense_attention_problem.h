// tests/kernels/dense_attention_problem.h: the dense-attention problem both bf16 attention tests use (the AMX path,
// attention_amx_test.cpp; the AVX-512 BF16 path, attention_avx512bf16_test.cpp): q, k and v as strided views of one
// fused buffer of normal draws, an output with padding columns at a sentinel, and the double-precision reference
// of a segment, exact or under the bf16 contract (Q, K, V and the softmax weights rounded to bf16).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "kernels/cpu/kernel_util.h"

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

}  // namespace autoglm::cpu::dense_test
