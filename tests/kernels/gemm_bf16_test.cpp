// tests/kernels/gemm_bf16_test.cpp: the AVX-512 BF16 GEMM (kernels/cpu/gemm_bf16.h) and LINEAR's choice of it:
//  - bit for bit equal to a scalar model of its contract (x rounded to bf16 to nearest even, one F32 chain per
//    output: fma of the odd element of each pair, then of the even one; bias added last) on shapes that cut every
//    tile and block (m from 1, k odd and under one pair block, several KC-blocks, row blocks and super-blocks of
//    packed x, n past the 64-row panels), strided x, W and y, 1 and 3 threads;
//  - every output within the bf16 rounding bound of the exact double product, |err| <= (2^-8 + (k + 2) 2^-23)
//    sum_j |x_j w_j| + 2^-23 |y| (x rounded: 2^-8 relative per product; the F32 chain; the bias add);
//  - LINEAR takes it only for BF16 weights, from bf16_gemm_min_rows() rows, with ROUNDED precision, where the CPU
//    offers it and the portable paths are not forced; everything else gets the exact GEMM's bits;
//  - AUTOGLM_CPU_BF16_GEMM's values.
// The kernel cases skip where the CPU lacks AVX-512 BF16; the fallback cases run everywhere.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "core/weight_view.h"
#include "kernels/cpu/convert.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/gemm_amx.h"
#include "kernels/cpu/gemm_bf16.h"
#include "kernels/cpu/linear.h"

#include "gemm_test_util.h"

namespace autoglm::cpu {
namespace {

using test::k_sentinel;
using test::same_bits;
using test::wide_y;

struct problem {
  int64_t m, n, k;
  dtype type;
  int64_t xs, w_row;            // row strides of x (floats) and W (elements), at least k
  std::vector<float> x;         // [m, xs], padding at the sentinel
  std::vector<uint8_t> w;       // [n, w_row] in `type`
  std::vector<float> w_f32;     // [n, k] decoded
  std::vector<float> bias;      // [n] or empty
  weight_rows rows() const { return {type, w.data(), w_row * int64_t(dtype_size(type))}; }
  const float* bias_or_null() const { return bias.empty() ? nullptr : bias.data(); }
};

problem make_problem(int64_t m, int64_t n, int64_t k, dtype type, bool bias, int64_t x_pad, int64_t w_pad,
                     uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  problem p{m, n, k, type, k + x_pad, k + w_pad, {}, {}, {}, {}};
  p.x = test::padded_normal_rows(gen, nd, m, k, p.xs, k_sentinel);
  std::vector<float> w(size_t(n * p.w_row), k_sentinel);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < k; ++j) w[size_t(r * p.w_row + j)] = nd(gen) / std::sqrt(float(std::max<int64_t>(k, 1)));
  p.w.resize(w.size() * dtype_size(type));
  convert_from_f32(type, w.data(), p.w.data(), int64_t(w.size()));
  p.w_f32.resize(size_t(n * k));
  std::vector<float> row(size_t(p.w_row));
  for (int64_t r = 0; r < n; ++r) {
    convert_to_f32_ref(type, p.w.data() + r * p.w_row * int64_t(dtype_size(type)), row.data(), p.w_row);
    std::memcpy(p.w_f32.data() + r * k, row.data(), size_t(k) * 4);
  }
  if (bias) {
    p.bias.resize(size_t(n));
    for (auto& v : p.bias) v = nd(gen);
  }
  return p;
}

// The contract of gemm_bf16.h written out: x rounded to bf16, per pair fma(odd) then fma(even), an odd k's last
// pair completed with (0, 0), bias added last.
std::vector<float> bf16_chain(const problem& p) {
  std::vector<float> y(size_t(p.m * p.n));
  for (int64_t i = 0; i < p.m; ++i)
    for (int64_t r = 0; r < p.n; ++r) {
      const float* x = p.x.data() + i * p.xs;
      const float* w = p.w_f32.data() + r * p.k;
      float acc = 0.0f;
      for (int64_t j = 0; j < p.k; j += 2) {
        const bool odd = j + 1 < p.k;
        acc = std::fma(odd ? round_bf16(x[j + 1]) : 0.0f, odd ? w[j + 1] : 0.0f, acc);
        acc = std::fma(round_bf16(x[j]), w[j], acc);
      }
      y[size_t(i * p.n + r)] = acc + (p.bias.empty() ? 0.0f : p.bias[size_t(r)]);
    }
  return y;
}



std::string describe(const problem& p, const char* extra = "") { return test::describe_mnk(p.m, p.n, p.k) + extra; }

// m, n, k, bias, x padding, W padding. k: 1, 2, odd under one 16-pair block, even and odd over one, over 2-3
// KC-blocks (blocks of up to 1024 pairs for 1 MiB of L2, 256 for the 256 KiB floor); m: 1 to over one row block
// (576 rows) and over one super-block of packed x (8 MiB: 748 rows at k = 5607); n: under, at and past the
// 64-row panels.
using shape = test::gemm_shape;
const shape shapes[] = {{1, 1, 1, true, 0, 0},    {2, 3, 2, false, 1, 1},     {3, 5, 7, true, 0, 0},
                        {5, 25, 17, true, 2, 3},  {6, 64, 32, false, 0, 0},   {7, 65, 33, true, 1, 0},
                        {13, 50, 263, true, 5, 1}, {37, 31, 1000, false, 0, 0}, {64, 129, 64, true, 0, 0},
                        {130, 97, 33, true, 3, 0}, {700, 70, 30, false, 0, 2}, {6, 9, 5607, true, 4, 1},
                        {800, 5, 5607, true, 0, 0}, {1000, 130, 3, false, 0, 0}};

TEST(gemm_bf16, gives_the_bits_of_its_scalar_model) {
  if (!bf16_gemm_available()) GTEST_SKIP() << "no AVX-512 BF16 on this CPU";
  thread_pool three(3);
  for (const shape& s : shapes) {
    const problem p = make_problem(s.m, s.n, s.k, dtype::BF16, s.bias, s.x_pad, s.w_pad, uint64_t(s.m * 7919 + s.k));
    const std::vector<float> want = bf16_chain(p);
    for (thread_pool* pool : {static_cast<thread_pool*>(nullptr), &three}) {
      wide_y y(s.m, s.n);
      gemm_bf16(pool, p.x.data(), p.xs, s.m, p.rows(), s.n, s.k, p.bias_or_null(), y.data(), y.stride);
      const std::string what = describe(p, pool ? ", 3 threads" : ", 1 thread");
      EXPECT_TRUE(same_bits(y.view(), want)) << what;
      EXPECT_TRUE(y.outside_untouched()) << what << ": wrote outside its column view";
    }
  }
}

TEST(gemm_bf16, empty_k_gives_the_bias) {
  if (!bf16_gemm_available()) GTEST_SKIP() << "no AVX-512 BF16 on this CPU";
  const problem p = make_problem(4, 3, 0, dtype::BF16, true, 0, 0, 1);
  wide_y y(4, 3);
  gemm_bf16(nullptr, p.x.data(), 1, 4, p.rows(), 3, 0, p.bias_or_null(), y.data(), y.stride);
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t r = 0; r < 3; ++r) EXPECT_EQ(y.view()[size_t(i * 3 + r)], p.bias[size_t(r)]);
}

TEST(gemm_bf16, within_the_bf16_rounding_bound_of_the_exact_product) {
  if (!bf16_gemm_available()) GTEST_SKIP() << "no AVX-512 BF16 on this CPU";
  thread_pool two(2);
  for (const shape& s : shapes) {
    const problem p = make_problem(s.m, s.n, s.k, dtype::BF16, s.bias, s.x_pad, s.w_pad, uint64_t(s.n * 31 + s.k));
    wide_y y(s.m, s.n);
    gemm_bf16(&two, p.x.data(), p.xs, s.m, p.rows(), s.n, s.k, p.bias_or_null(), y.data(), y.stride);
    const std::vector<float> got = y.view();
    double max_err = 0, max_ref = 0;
    int64_t n_over = 0;
    for (int64_t i = 0; i < s.m; ++i)
      for (int64_t r = 0; r < s.n; ++r) {
        double ref = p.bias.empty() ? 0.0 : p.bias[size_t(r)], abs_sum = 0;
        for (int64_t j = 0; j < s.k; ++j) {
          const double prod = double(p.x[size_t(i * p.xs + j)]) * double(p.w_f32[size_t(r * s.k + j)]);
          ref += prod;
          abs_sum += std::fabs(prod);
        }
        const double err = std::fabs(double(got[size_t(i * s.n + r)]) - ref);
        const double bound = (0x1p-8 + double(s.k + 2) * 0x1p-23) * abs_sum + 0x1p-23 * std::fabs(ref);
        n_over += err > bound;
        max_err = std::max(max_err, err);
        max_ref = std::max(max_ref, std::fabs(ref));
      }
    EXPECT_EQ(n_over, 0) << describe(p) << ": outputs past the bf16 bound";
    std::printf("[bf16 gemm] %-22s normalized max error vs exact x: %.2e\n", describe(p).c_str(), max_err / max_ref);
  }
}

// What LINEAR (the registered kernel's entry, through linear()) computes for BF16 weights: the bf16 GEMM's bits
// when it applies, the exact GEMM's (gemm.h, best ISA) otherwise.
TEST(gemm_bf16, linear_takes_it_only_when_it_applies) {
  thread_pool two(2);
  const problem p = make_problem(40, 70, 101, dtype::BF16, true, 0, 0, 77);
  const weight_view wv{dtype::BF16, p.w.data(), p.n, p.k};
  auto run_linear = [&](int64_t m) {
    std::vector<float> y(size_t(m * p.n));
    linear(p.x.data(), m, wv, p.bias_or_null(), y.data(), 0, &two);
    return y;
  };
  auto exact = [&](int64_t m, gemm_isa isa) {
    std::vector<float> y(size_t(m * p.n));
    gemm_f32(nullptr, isa, p.x.data(), p.xs, m, p.rows(), p.n, p.k, p.bias_or_null(), y.data(), p.n);
    return y;
  };
  std::vector<float> rounded = bf16_chain(p);
  const cpu_gemm_precision_scope on(cpu_gemm_precision::ROUNDED);
  if (use_amx_gemm(dtype::BF16, p.m)) {  // an AMX host takes the tiles from 16 rows: gemm_amx.h
    gemm_bf16_amx(nullptr, p.x.data(), p.xs, p.m, p.rows(), p.n, p.k, p.bias_or_null(), rounded.data(), p.n);
  }
  set_bf16_gemm_min_rows(k_bf16_gemm_default_min_rows);
  ASSERT_GE(p.m, bf16_gemm_min_rows());
  EXPECT_EQ(use_bf16_gemm(dtype::BF16, p.m), bf16_gemm_available());
  EXPECT_TRUE(same_bits(run_linear(p.m), bf16_gemm_available() ? rounded : exact(p.m, gemm_best_isa())));
  // Fewer rows than the threshold: the exact GEMM.
  const int64_t few = bf16_gemm_min_rows() - 1;
  EXPECT_FALSE(use_bf16_gemm(dtype::BF16, few));
  EXPECT_TRUE(same_bits(run_linear(few), exact(few, gemm_best_isa())));
  // Switched off (what AUTOGLM_CPU_BF16_GEMM=0 selects): the exact GEMM.
  {
    const cpu_gemm_precision_scope off(cpu_gemm_precision::EXACT);
    EXPECT_FALSE(use_bf16_gemm(dtype::BF16, p.m));
    EXPECT_TRUE(same_bits(run_linear(p.m), exact(p.m, gemm_best_isa())));
  }
  // The portable paths forced (as on a CPU without the ISA): the portable GEMM.
  force_portable_kernels(true);
  EXPECT_FALSE(bf16_gemm_available());
  EXPECT_FALSE(use_bf16_gemm(dtype::BF16, p.m));
  EXPECT_TRUE(same_bits(run_linear(p.m), exact(p.m, gemm_isa::PORTABLE)));
  force_portable_kernels(false);
  // F16 and F32 weights never: rounding them to bf16 would change the model's weights.
  EXPECT_FALSE(use_bf16_gemm(dtype::F16, p.m));
  EXPECT_FALSE(use_bf16_gemm(dtype::F32, p.m));
  const problem h = make_problem(40, 70, 101, dtype::F16, true, 0, 0, 78);
  std::vector<float> yh(size_t(h.m * h.n)), want(size_t(h.m * h.n));
  linear(h.x.data(), h.m, weight_view{dtype::F16, h.w.data(), h.n, h.k}, h.bias_or_null(), yh.data(), 0, &two);
  gemm_f32(nullptr, gemm_best_isa(), h.x.data(), h.xs, h.m, h.rows(), h.n, h.k, h.bias_or_null(), want.data(), h.n);
  EXPECT_TRUE(same_bits(yh, want));
  // The threshold's floor is the GEMM's own 3 rows.
  set_bf16_gemm_min_rows(1);
  EXPECT_EQ(bf16_gemm_min_rows(), 3);
  set_bf16_gemm_min_rows(k_bf16_gemm_default_min_rows);
}

TEST(gemm_bf16, environment_values) {
  EXPECT_EQ(cpu_gemm_precision_from_env(nullptr), cpu_gemm_precision::ROUNDED);
  EXPECT_EQ(cpu_gemm_precision_from_env("1"), cpu_gemm_precision::ROUNDED);
  for (const char* off : {"0", "off", "OFF", "false", "no"})
    EXPECT_EQ(cpu_gemm_precision_from_env(off), cpu_gemm_precision::EXACT) << off;
}

TEST(gemm_bf16, rows_rounded_to_bf16_give_the_scalar_bits) {
  // convert_from_f32 (AVX2 where present, 8 lanes then a scalar tail) against f32_to_bf16 one value at a time:
  // ties both ways, NaNs with payloads (quieted), infinities, zeros, denormals, the largest finite values, and
  // random bit patterns, at every tail length.
  std::vector<uint32_t> bits = {0x00000000u, 0x80000000u, 0x7f800000u, 0xff800000u, 0x7f800001u, 0xffc00001u,
                                0x7fbfffffu, 0x00000001u, 0x807fffffu, 0x7f7fffffu, 0x7f7f8000u, 0x3f808000u,
                                0x3f818000u, 0x3f807fffu, 0x3f80ffffu, 0x00008000u, 0x7f7fffffu, 0xc0490fdbu};
  std::mt19937 gen(5);
  while (bits.size() < 100003) bits.push_back(uint32_t(gen()));
  std::vector<float> x(bits.size());
  std::memcpy(x.data(), bits.data(), bits.size() * 4);
  for (int64_t n : {int64_t(1), int64_t(7), int64_t(8), int64_t(17), int64_t(x.size())}) {
    std::vector<uint16_t> got(size_t(n) + 1, 0xdead);
    convert_from_f32(dtype::BF16, x.data(), got.data(), n);
    for (int64_t i = 0; i < n; ++i)
      ASSERT_EQ(got[size_t(i)], f32_to_bf16(x[size_t(i)])) << "bits " << std::hex << bits[size_t(i)];
    EXPECT_EQ(got[size_t(n)], 0xdead) << "written past n = " << n;
  }
}

}  // namespace
}  // namespace autoglm::cpu
