// tests/kernels/gemm_test.cpp: the linear kernels' numerics contract (kernels/cpu/gemm.h) checked bit for bit:
// every GEMM micro-kernel family this CPU has (AVX2, AVX-512; NEON on aarch64; the portable one where FMA is
// hardware) and the decode GEMV give exactly the bits of a scalar model of the 8-lane order, on shapes that cut
// every tile and block, on 1 and 3 threads; and m rows in one call equal the same rows one at a time (prefill
// and decode agree, so a prompt's logits do not depend on how it was chunked). The harness (cases_linear.cpp)
// checks the same kernels against the double reference, the portable path included.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "core/weight_view.h"
#include "kernels/cpu/convert.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/gemm_bf16.h"
#include "kernels/cpu/linear.h"

#include "gemm_test_util.h"

namespace autoglm::cpu {
namespace {

using test::same_bits;
using test::wide_y;

struct problem {
  int64_t m, n, k;
  dtype type;
  std::vector<float> x;      // [m, xs]
  int64_t xs;
  std::vector<uint8_t> w;    // [n, k] in `type`
  std::vector<float> w_f32;  // the same values decoded
  std::vector<float> bias;   // [n] or empty
};

problem make_problem(int64_t m, int64_t n, int64_t k, dtype type, bool bias, int64_t x_pad, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  problem p{m, n, k, type, {}, k + x_pad, {}, {}, {}};
  p.x = test::padded_normal_rows(gen, nd, m, k, p.xs, test::k_sentinel);
  std::vector<float> w(size_t(n * k));
  for (auto& v : w) v = nd(gen) / std::sqrt(float(k));
  p.w.resize(w.size() * dtype_size(type));
  convert_from_f32(type, w.data(), p.w.data(), int64_t(w.size()));
  p.w_f32.resize(w.size());
  convert_to_f32_ref(type, p.w.data(), p.w_f32.data(), int64_t(w.size()));
  if (bias) {
    p.bias.resize(size_t(n));
    for (auto& v : p.bias) v = nd(gen);
  }
  return p;
}

// The contract of gemm.h written out independently: 8 lanes of FMAs, the AVX2 lane-sum order, FMA tail, bias.
std::vector<float> canonical(const problem& p) {
  std::vector<float> y(size_t(p.m * p.n));
  const int64_t k8 = p.k / 8 * 8;
  for (int64_t i = 0; i < p.m; ++i)
    for (int64_t r = 0; r < p.n; ++r) {
      const float* x = p.x.data() + i * p.xs;
      const float* w = p.w_f32.data() + r * p.k;
      float a[8] = {};
      for (int64_t j = 0; j < k8; j += 8)
        for (int l = 0; l < 8; ++l) a[l] = std::fma(x[j + l], w[j + l], a[l]);
      float s = ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
      for (int64_t j = k8; j < p.k; ++j) s = std::fma(x[j], w[j], s);
      y[size_t(i * p.n + r)] = s + (p.bias.empty() ? 0.0f : p.bias[size_t(r)]);
    }
  return y;
}


std::vector<gemm_isa> fused_isas() {
  std::vector<gemm_isa> out;
  for (gemm_isa isa : {gemm_isa::AVX2, gemm_isa::AVX512, gemm_isa::NEON})
    if (gemm_isa_available(isa)) out.push_back(isa);
#if defined(FP_FAST_FMAF)
  out.push_back(gemm_isa::PORTABLE);  // its multiply-adds are FMAs here, so it owes the same bits
#endif
  return out;
}

// m, n, k, bias, x row padding: k < 8, k = 8, tails of every length, tiles cut on both sides, several row blocks
// (MC <= 256), several KC-blocks for every family (k 5607: 3 AVX-512 blocks of ~1.9k, ~10 AVX2 ones), output
// blocks of 16-48 with a partial panel.
struct shape {
  int64_t m, n, k;
  bool bias;
  int64_t x_pad;
};
const shape shapes[] = {{3, 5, 7, true, 0},     {4, 13, 8, false, 2},   {5, 25, 17, true, 0},
                        {7, 49, 130, false, 1}, {13, 50, 263, true, 5}, {37, 31, 1000, false, 0},
                        {64, 48, 64, true, 0},  {130, 97, 33, true, 3}, {300, 20, 40, false, 0},
                        {6, 9, 5607, true, 4}};

TEST(gemm, every_isa_gives_the_canonical_bits) {
  const std::vector<gemm_isa> isas = fused_isas();
  ASSERT_FALSE(isas.empty());
  thread_pool three(3);
  for (const shape& s : shapes)
    for (dtype t : {dtype::F32, dtype::F16, dtype::BF16}) {
      const problem p = make_problem(s.m, s.n, s.k, t, s.bias, s.x_pad, uint64_t(s.m * 1000003 + s.k * 31 + int(t)));
      const std::vector<float> want = canonical(p);
      const weight_rows w{t, p.w.data(), int64_t(dtype_row_bytes(t, s.k))};
      for (gemm_isa isa : isas)
        for (thread_pool* pool : {static_cast<thread_pool*>(nullptr), &three}) {
          wide_y y(s.m, s.n, 7);
          gemm_f32(pool, isa, p.x.data(), p.xs, s.m, w, s.n, s.k, p.bias.empty() ? nullptr : p.bias.data(), y.data(),
                   y.stride);
          const std::string what = std::string(gemm_isa_name(isa)) + " " + dtype_name(t) + " m=" +
                                   std::to_string(s.m) + " n=" + std::to_string(s.n) + " k=" + std::to_string(s.k) +
                                   (pool ? " 3 threads" : " 1 thread");
          EXPECT_TRUE(same_bits(y.view(), want)) << what;
          EXPECT_TRUE(y.outside_untouched()) << what << ": wrote outside its column view";
        }
    }
}

// The registered kernel's dispatch: decode rows (the streaming GEMV, 1-2 rows) and prefill rows (the GEMM) of the
// same input give the same bits, which is what the canonical order buys. (The exact precision: ROUNDED sends BF16
// prefill rows through the bf16 GEMM, gemm_bf16_test.cpp.)
TEST(gemm, rows_one_at_a_time_equal_rows_together) {
  const cpu_gemm_precision_scope exact(cpu_gemm_precision::EXACT);
  thread_pool two(2);
  for (const shape& s : shapes)
    for (dtype t : {dtype::F32, dtype::BF16}) {
      if (s.x_pad) continue;  // the legacy entry point takes contiguous x
      const problem p = make_problem(s.m, s.n, s.k, t, s.bias, 0, uint64_t(s.n * 7919 + s.k + int(t)));
      const weight_view w{t, p.w.data(), s.n, s.k};
      const float* bias = p.bias.empty() ? nullptr : p.bias.data();
      std::vector<float> all(size_t(s.m * s.n)), one(size_t(s.m * s.n)), two_rows(size_t(s.m * s.n));
      linear(p.x.data(), s.m, w, bias, all.data(), 0, &two);
      for (int64_t i = 0; i < s.m; ++i) linear(p.x.data() + i * s.k, 1, w, bias, one.data() + i * s.n, 0, &two);
      for (int64_t i = 0; i < s.m; i += 2)
        linear(p.x.data() + i * s.k, std::min<int64_t>(2, s.m - i), w, bias, two_rows.data() + i * s.n, 0, &two);
      const std::string what = std::string(dtype_name(t)) + " m=" + std::to_string(s.m) + " k=" + std::to_string(s.k);
      EXPECT_TRUE(same_bits(all, one)) << what;
      EXPECT_TRUE(same_bits(all, two_rows)) << what;
      if (cpu_has_avx2() || gemm_isa_available(gemm_isa::NEON)) {
        EXPECT_TRUE(same_bits(all, canonical(p))) << what;
      }
    }
}

TEST(gemm, forcing_the_portable_paths_hides_the_isa_kernels) {
  force_portable_kernels(true);
  EXPECT_EQ(gemm_best_isa(), gemm_isa::PORTABLE);
  for (gemm_isa isa : {gemm_isa::AVX2, gemm_isa::AVX512, gemm_isa::NEON}) EXPECT_FALSE(gemm_isa_available(isa));
  force_portable_kernels(false);
  EXPECT_TRUE(gemm_isa_available(gemm_isa::PORTABLE));
}

}  // namespace
}  // namespace autoglm::cpu
