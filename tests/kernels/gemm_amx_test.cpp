// tests/kernels/gemm_amx_test.cpp: the BF16-weight GEMM on AMX tiles (kernels/cpu/gemm_amx.h).
//  - The kernel over amx_emulated (the tile instructions in plain C++) on every machine, on shapes that cut every
//    tile, block, task group and super-block of packed x (m from 1 past 8 blocks of 32, n and k off the 16/32
//    grids, odd k, strided x, W and y, bias or none, 1 and 3 threads): every output within the F32 summation bound
//    of the exact product of bf16(x) and W, |err| <= (k + 2) 2^-23 sum_j |bf16(x_j) w_j| + 2^-23 |y|; nothing
//    written outside y's view; the same bits whatever the thread count and super-block size.
//  - On an AMX host (unless AUTOGLM_CPU_AMX=0): the real tiles within the same bound, and LINEAR taking them from 16
//    rows.
//  - Rows of every GGUF block type (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K): the bits of the same GEMM over
//    their bf16 dequantization (on 3 threads and on 1, where a dequantized W block is reused by its next task), and
//    LINEAR taking the tiles for them from 16 rows under ROUNDED only.
//  - I8 rows with per-row scales: the GEMM over the integers, then fma(sum, scale, bias); LINEAR likewise.
//  - use_amx_gemm's conditions everywhere.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/quant_blocks.h"
#include "core/thread_pool.h"
#include "core/weight_view.h"
#include "formats/quantize.h"
#include "kernels/cpu/amx.h"
#include "kernels/cpu/convert.h"
#include "kernels/cpu/gemm_amx.h"
#include "kernels/cpu/gemm_bf16.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/quant_linear.h"

#include "gemm_test_util.h"

namespace autoglm::cpu {
namespace {

using test::k_sentinel;
using test::same_bits;
using test::wide_y;

struct problem {
  int64_t m, n, k, xs, w_row;  // row strides of x (floats) and W (elements)
  std::vector<float> x;        // [m, xs], padding at the sentinel
  std::vector<uint16_t> w;     // [n, w_row] bf16, padding a NaN (a tile reading it would poison the sums)
  std::vector<float> bias;     // [n] or empty
  weight_rows rows() const { return {dtype::BF16, reinterpret_cast<const uint8_t*>(w.data()), w_row * 2}; }
  const float* bias_or_null() const { return bias.empty() ? nullptr : bias.data(); }
};

problem make_problem(int64_t m, int64_t n, int64_t k, bool bias, int64_t x_pad, int64_t w_pad, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  problem p{m, n, k, k + x_pad, k + w_pad, {}, {}, {}};
  p.x = test::padded_normal_rows(gen, nd, m, k, p.xs, k_sentinel);
  p.w.assign(size_t(n * p.w_row), uint16_t(0x7fc0));
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < k; ++j)
      p.w[size_t(r * p.w_row + j)] = f32_to_bf16(nd(gen) / std::sqrt(float(std::max<int64_t>(k, 1))));
  if (bias) {
    p.bias.resize(size_t(n));
    for (auto& v : p.bias) v = nd(gen);
  }
  return p;
}


using gemm_fn = void (*)(thread_pool*, const float*, int64_t, int64_t, const weight_rows&, int64_t, int64_t,
                         const float*, float*, int64_t, const float*);

std::vector<float> run(gemm_fn fn, const problem& p, thread_pool* pool, bool* untouched = nullptr) {
  wide_y y(p.m, p.n);
  fn(pool, p.x.data(), p.xs, p.m, p.rows(), p.n, p.k, p.bias_or_null(), y.data(), y.stride, nullptr);
  if (untouched) *untouched = y.outside_untouched();
  return y.view();
}

// Outputs past (k + 2) 2^-23 sum |bf16(x) w| + 2^-23 |y| from the exact product of bf16(x) and W (+ bias).
int64_t outside_bound(const problem& p, const std::vector<float>& got) {
  int64_t over = 0;
  for (int64_t i = 0; i < p.m; ++i)
    for (int64_t r = 0; r < p.n; ++r) {
      double ref = p.bias.empty() ? 0.0 : p.bias[size_t(r)], abs_sum = 0;
      for (int64_t j = 0; j < p.k; ++j) {
        const double prod = double(round_bf16(p.x[size_t(i * p.xs + j)])) * bf16_to_f32(p.w[size_t(r * p.w_row + j)]);
        ref += prod;
        abs_sum += std::fabs(prod);
      }
      const double err = std::fabs(double(got[size_t(i * p.n + r)]) - ref);
      over += err > double(p.k + 2) * 0x1p-23 * abs_sum + 0x1p-23 * std::fabs(ref);
    }
  return over;
}

std::string describe(const problem& p) { return test::describe_mnk(p.m, p.n, p.k); }

using shape = test::gemm_shape;
// m: under one B tile, one, past one block of 32, past one task group (8 blocks); n: under, at and past the 32-row
// W blocks and past one task's 4 of them; k: 1, odd, under / at / past one 32-element step, and multiples of 32 (W
// read in place) with padding.
const shape shapes[] = {{1, 1, 1, true, 0, 0},      {5, 3, 7, false, 1, 2},   {16, 32, 32, true, 0, 0},
                        {17, 33, 33, true, 2, 0},   {33, 31, 64, false, 0, 3}, {40, 70, 101, true, 3, 1},
                        {70, 16, 96, true, 0, 0},   {300, 40, 64, false, 1, 0}, {31, 64, 200, true, 0, 5},
                        {40, 150, 64, true, 0, 0}};

TEST(gemm_amx, emulated_tiles_meet_the_bound_and_stay_in_their_view) {
  thread_pool three(3);
  for (const shape& s : shapes) {
    const problem p = make_problem(s.m, s.n, s.k, s.bias, s.x_pad, s.w_pad, uint64_t(s.m * 131 + s.k));
    bool untouched = false;
    const std::vector<float> one = run(&gemm_bf16_amx_emulated, p, nullptr, &untouched);
    EXPECT_EQ(outside_bound(p, one), 0) << describe(p);
    EXPECT_TRUE(untouched) << describe(p) << ": wrote outside its column view";
    EXPECT_TRUE(same_bits(run(&gemm_bf16_amx_emulated, p, &three), one)) << describe(p) << ": 3 threads";
  }
}

TEST(gemm_amx, super_blocks_of_packed_x_give_the_same_bits) {
  thread_pool two(2);
  const problem p = make_problem(150, 40, 70, true, 2, 1, 5);
  const std::vector<float> whole = run(&gemm_bf16_amx_emulated, p, &two);
  set_amx_gemm_x_pack_bytes(1);  // one block of 32 rows per super-block
  const std::vector<float> cut = run(&gemm_bf16_amx_emulated, p, &two);
  set_amx_gemm_x_pack_bytes(k_amx_gemm_x_pack_bytes);
  EXPECT_TRUE(same_bits(whole, cut));
  EXPECT_EQ(outside_bound(p, cut), 0);
}

TEST(gemm_amx, empty_k_gives_the_bias) {
  const problem p = make_problem(20, 3, 0, true, 0, 0, 1);
  const std::vector<float> y = run(&gemm_bf16_amx_emulated, p, nullptr);
  for (int64_t i = 0; i < 20; ++i)
    for (int64_t r = 0; r < 3; ++r) EXPECT_EQ(y[size_t(i * 3 + r)], p.bias[size_t(r)]);
}

TEST(gemm_amx, taken_for_bf16_weights_from_16_rows_with_rounded_precision) {
  const cpu_gemm_precision_scope rounded(cpu_gemm_precision::ROUNDED);
  EXPECT_FALSE(use_amx_gemm(dtype::BF16, k_amx_gemm_min_rows - 1));
  EXPECT_FALSE(use_amx_gemm(dtype::F16, 512));
  EXPECT_FALSE(use_amx_gemm(dtype::F32, 512));
  EXPECT_EQ(use_amx_gemm(dtype::BF16, k_amx_gemm_min_rows), amx_bf16_usable());
  EXPECT_EQ(use_amx_gemm(dtype::Q4_0, k_amx_gemm_min_rows), amx_bf16_usable());
  EXPECT_EQ(use_amx_gemm(dtype::Q8_0, 512), amx_bf16_usable());
  EXPECT_FALSE(use_amx_gemm(dtype::Q4_0, k_amx_gemm_min_rows - 1));
  EXPECT_EQ(use_amx_gemm(dtype::Q4_K, 512), amx_bf16_usable());
  EXPECT_EQ(use_amx_gemm(dtype::Q5_0, 512), amx_bf16_usable());
  EXPECT_EQ(use_amx_gemm(dtype::Q6_K, 512), amx_bf16_usable());
  EXPECT_EQ(use_amx_gemm(dtype::Q5_K, 512), amx_bf16_usable());
  EXPECT_EQ(use_amx_gemm(dtype::Q4_1, 512), amx_bf16_usable());
  EXPECT_EQ(use_amx_gemm(dtype::Q5_1, 512), amx_bf16_usable());
  EXPECT_EQ(use_amx_gemm(dtype::I8, 512), amx_bf16_usable());
  const cpu_gemm_precision_scope exact(cpu_gemm_precision::EXACT);
  EXPECT_FALSE(use_amx_gemm(dtype::BF16, 512));
}

// LINEAR on quantized weights `lw` (p's x and bias) gives the real tiles' `want` under ROUNDED and something else (the
// integer kernels) under EXACT.
void expect_linear_takes_tiles_when_rounded(const problem& p, linear_weight lw, const std::vector<float>& want,
                                            const std::string& what, thread_pool* pool) {
  if (!p.bias.empty()) lw.bias = tensor::view(p.bias.data(), dtype::F32, {p.n});
  std::vector<float> got(size_t(p.m * p.n));
  const kernel_context kc{device{}, pool, nullptr};
  tensor xt = tensor::view(p.x.data(), dtype::F32, {p.m, p.k});
  tensor yt = tensor::view(got.data(), dtype::F32, {p.m, p.n});
  {
    const cpu_gemm_precision_scope rounded(cpu_gemm_precision::ROUNDED);
    quant_linear_kernel(kc, xt, lw, yt);
    EXPECT_TRUE(same_bits(got, want)) << what << ": LINEAR under ROUNDED";
  }
  const cpu_gemm_precision_scope exact(cpu_gemm_precision::EXACT);
  quant_linear_kernel(kc, xt, lw, yt);
  EXPECT_FALSE(same_bits(got, want)) << what << ": LINEAR under EXACT took the tiles";
}

// Rows of every GGUF block type give the bits of the same GEMM over their bf16 dequantization (core's
// dequantizer, f32_to_bf16), on the emulated tiles everywhere and the real ones on an AMX host; LINEAR on such weights
// takes the tiles from 16 rows under ROUNDED and keeps the integer kernels under EXACT.
TEST(gemm_amx, quantized_rows_give_the_bits_of_their_bf16_dequantization) {
  thread_pool three(3);
  const bool hw = amx_bf16_usable();
  for (dtype t : {dtype::Q4_0, dtype::Q4_1, dtype::Q5_0, dtype::Q5_1, dtype::Q8_0, dtype::Q4_K, dtype::Q5_K,
                  dtype::Q6_K})
    for (shape s : {shape{16, 32, 64, true, 0, 0}, shape{17, 40, 96, false, 0, 0}, shape{70, 33, 256, true, 0, 0},
                    shape{300, 70, 64, true, 0, 0}, shape{300, 200, 96, false, 0, 0}}) {
      if (dtype_block_elems(t) == 256) s.k = (s.k + 255) / 256 * 256;  // whole 256-element blocks
      problem p = make_problem(s.m, s.n, s.k, s.bias, 0, 0, uint64_t(s.m * 7 + s.n));
      std::vector<float> wf(size_t(s.n * s.k));
      for (size_t i = 0; i < wf.size(); ++i) wf[i] = bf16_to_f32(p.w[i]) * 3.0f;
      std::vector<uint8_t> q(dtype_row_bytes(t, s.k) * size_t(s.n));
      quant::quantize_rows(t, wf.data(), q.data(), s.n, s.k);
      std::vector<float> deq(size_t(s.k));
      for (int64_t r = 0; r < s.n; ++r) {  // p.w := bf16 of the dequantized rows
        quant::dequantize_row(t, q.data() + size_t(r) * dtype_row_bytes(t, s.k), deq.data(), s.k);
        for (int64_t j = 0; j < s.k; ++j) p.w[size_t(r * s.k + j)] = f32_to_bf16(deq[size_t(j)]);
      }
      const weight_rows qrows{t, q.data(), int64_t(dtype_row_bytes(t, s.k))};
      const std::string what = std::string(dtype_name(t)) + " " + describe(p);
      // Three threads (a task per chunk) and one (every task in one call: a W block's bf16 copy reused by the task
      // of its next x blocks, m = 300, and not by the next W blocks' task, n = 200).
      for (gemm_fn fn : {&gemm_bf16_amx_emulated, hw ? &gemm_bf16_amx : &gemm_bf16_amx_emulated})
        for (thread_pool* pool : {&three, static_cast<thread_pool*>(nullptr)}) {
          wide_y y(p.m, p.n);
          fn(pool, p.x.data(), p.xs, p.m, qrows, p.n, p.k, p.bias_or_null(), y.data(), y.stride, nullptr);
          EXPECT_TRUE(same_bits(y.view(), run(fn, p, &three))) << what << (pool ? "" : ", one thread");
          EXPECT_TRUE(y.outside_untouched()) << what;
        }
      if (!hw) continue;
      std::vector<float> want(size_t(p.m * p.n));
      gemm_bf16_amx(&three, p.x.data(), p.xs, p.m, qrows, p.n, p.k, p.bias_or_null(), want.data(), p.n);
      linear_weight lw;
      lw.weight = tensor::view(q.data(), t, {s.n, s.k});
      expect_linear_takes_tiles_when_rounded(p, lw, want, what, &three);
    }
}

// I8 rows with their per-row scales: the GEMM over the integers themselves (exact in bf16), each output then
// fma(sum, scale, bias or 0) as the integer kernels apply it; LINEAR on I8 weights takes the tiles from 16 rows under
// ROUNDED only.
TEST(gemm_amx, i8_rows_give_the_integers_gemm_then_their_scales) {
  thread_pool three(3);
  const bool hw = amx_bf16_usable();
  for (shape s : {shape{16, 32, 64, true, 0, 0}, shape{17, 40, 100, false, 0, 0}, shape{300, 200, 96, true, 0, 0}}) {
    problem p = make_problem(s.m, s.n, s.k, s.bias, 0, 0, uint64_t(s.m * 5 + s.n));
    std::mt19937 rng(uint32_t(s.n));
    std::vector<int8_t> q(size_t(s.n * s.k));
    std::vector<float> scale(size_t(s.n));
    for (auto& v : q) v = int8_t(int(rng() % 255) - 127);
    for (auto& v : scale) v = 1e-3f * float(1 + rng() % 1000);
    for (size_t i = 0; i < q.size(); ++i) p.w[i] = f32_to_bf16(float(q[i]));  // p.w := the integers
    // The integers' sums (the same GEMM, same tiles, with no bias), then each scaled as the integer kernels do.
    problem p0 = p;
    p0.bias.clear();
    auto scaled = [&](gemm_fn fn) {
      std::vector<float> out = run(fn, p0, &three);
      for (int64_t i = 0; i < p.m; ++i)
        for (int64_t j = 0; j < p.n; ++j)
          out[size_t(i * p.n + j)] = std::fma(out[size_t(i * p.n + j)], scale[size_t(j)],
                                              p.bias.empty() ? 0.0f : p.bias[size_t(j)]);
      return out;
    };
    const weight_rows rows{dtype::I8, reinterpret_cast<const uint8_t*>(q.data()), s.k};
    const std::string what = "I8 " + describe(p);
    for (gemm_fn fn : {&gemm_bf16_amx_emulated, hw ? &gemm_bf16_amx : &gemm_bf16_amx_emulated}) {
      const std::vector<float> want = scaled(fn);
      for (thread_pool* pool : {&three, static_cast<thread_pool*>(nullptr)}) {
        wide_y y(p.m, p.n);
        fn(pool, p.x.data(), p.xs, p.m, rows, p.n, p.k, p.bias_or_null(), y.data(), y.stride, scale.data());
        EXPECT_TRUE(same_bits(y.view(), want)) << what << (pool ? "" : ", one thread");
        EXPECT_TRUE(y.outside_untouched()) << what;
      }
    }
    if (!hw || s.k % 32 != 0) continue;  // LINEAR takes I8 rows of whole 32-element groups
    linear_weight lw;
    lw.weight = tensor::view(q.data(), dtype::I8, {s.n, s.k});
    lw.scales = tensor::view(scale.data(), dtype::F32, {s.n});
    expect_linear_takes_tiles_when_rounded(p, lw, scaled(&gemm_bf16_amx), what, &three);
  }
}

TEST(gemm_amx, the_tiles_meet_the_bound_and_linear_takes_them) {
  if (!amx_bf16_usable()) GTEST_SKIP() << "this CPU (or this process) has no AMX tiles";
  thread_pool four(4);
  for (const shape& s : shapes) {
    const problem p = make_problem(s.m, s.n, s.k, s.bias, s.x_pad, s.w_pad, uint64_t(s.n * 17 + s.k));
    bool untouched = false;
    const std::vector<float> hw = run(&gemm_bf16_amx, p, &four, &untouched);
    EXPECT_EQ(outside_bound(p, hw), 0) << describe(p);
    EXPECT_TRUE(untouched) << describe(p);
  }
  const problem p = make_problem(40, 70, 101, true, 0, 0, 77);
  const cpu_gemm_precision_scope rounded(cpu_gemm_precision::ROUNDED);
  std::vector<float> y(size_t(p.m * p.n)), want(size_t(p.m * p.n));
  linear(p.x.data(), p.m, weight_view{dtype::BF16, p.w.data(), p.n, p.k}, p.bias_or_null(), y.data(), 0, &four);
  gemm_bf16_amx(&four, p.x.data(), p.xs, p.m, p.rows(), p.n, p.k, p.bias_or_null(), want.data(), p.n);
  EXPECT_TRUE(same_bits(y, want));
}

}  // namespace
}  // namespace autoglm::cpu
