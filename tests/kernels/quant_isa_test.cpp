// tests/kernels/quant_isa_test.cpp: the quantized LINEAR kernels on every instruction-set path this CPU offers
// (portable C++, AVX2, AVX-512 VNNI, AVX-512 VNNI + GFNI, NEON dotprod, NEON i8mm), each forced in turn over every
// harness case of its weight type: each matches the reference, and all give the same bytes (they compute the same
// integers and the same float steps, kernels/cpu/quant_linear.h). Also: a row's result does not depend on how many rows
// share the call (decode and prefill tiles agree), i8mm's paired tiles on every remainder and odd W row count, and the
// ISA selection follows the CPU and force_portable_kernels.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "formats/quantize.h"
#include "harness.h"
#include "kernels/cpu/convert.h"
#include "kernels/cpu/cpu_features_arm.h"
#include "kernels/cpu/gemm_bf16.h"
#include "kernels/cpu/quant_gemm.h"
#include "kernels/cpu/quant_linear.h"
#include "ops/ops.h"

namespace autoglm::harness {
namespace {

using cpu::quant_isa;

std::vector<quant_isa> available_isas() {
  std::vector<quant_isa> out;
  for (int i = 0; i < int(quant_isa::COUNT); ++i)
    if (cpu::quant_isa_available(quant_isa(i))) out.push_back(quant_isa(i));
  return out;
}

struct isa_scope {
  explicit isa_scope(quant_isa isa) { cpu::force_quant_isa(isa); }
  ~isa_scope() { cpu::force_quant_isa(quant_isa::COUNT); }
};

class quant_isa_cases : public testing::TestWithParam<dtype> {};

TEST_P(quant_isa_cases, every_path_matches_the_reference_with_the_same_bytes) {
  // The integer kernels on every row count (ROUNDED sends the prefill of several types to AMX tiles where the CPU
  // has them: use_amx_gemm).
  const cpu::cpu_gemm_precision_scope exact(cpu::cpu_gemm_precision::EXACT);
  const dtype t = GetParam();
  const std::vector<quant_isa> isas = available_isas();
  ASSERT_FALSE(isas.empty());
  EXPECT_EQ(isas.front(), quant_isa::PORTABLE);
  int n_cases = 0;
  for (const test_case& c : all_cases()) {
    if (c.perf || c.op != op_id::LINEAR || c.key != t) continue;
    std::vector<uint8_t> first;
    for (quant_isa isa : isas) {
      isa_scope scope(isa);
      exec_context ctx(device{}, 2);
      instance inst = c.make(ctx);
      inst.run();
      const std::string what = std::string(dtype_name(t)) + " [" + c.name + "] on " + cpu::quant_isa_name(isa);
      EXPECT_EQ(inst.check(), "") << what;
      const std::vector<uint8_t> out = inst.output();
      if (first.empty()) first = out;
      else EXPECT_TRUE(out == first) << what << ": bytes differ from the " << cpu::quant_isa_name(isas.front())
                                     << " path";
    }
    ++n_cases;
  }
  EXPECT_GT(n_cases, 0);
}

std::string type_name(const testing::TestParamInfo<dtype>& info) { return dtype_name(info.param); }

INSTANTIATE_TEST_SUITE_P(quant_linear, quant_isa_cases,
                         testing::Values(dtype::I8, dtype::Q8_0, dtype::Q4_0, dtype::Q4_1, dtype::Q5_0, dtype::Q5_1,
                                         dtype::Q4_K, dtype::Q5_K, dtype::Q6_K),
                         type_name);

// Each row computed alone (decode tiles) equals the same row inside a 7-row call (prefill tiles + remainder).
TEST(quant_linear, rows_alone_equal_rows_in_a_batch) {
  const int64_t m = 7, n = 11, k = 512;
  rng r(99);
  const std::vector<float> x = r.normal(size_t(m * k)), w = r.normal(size_t(n * k), 0.05f);
  for (dtype t : {dtype::Q8_0, dtype::Q4_0, dtype::Q4_1, dtype::Q5_0, dtype::Q5_1, dtype::Q4_K, dtype::Q6_K}) {
    exec_context ctx(device{}, 2);
    linear_weight lw;
    lw.weight = quant::quantize_tensor(tensor::view(w.data(), dtype::F32, {n, k}), t);
    std::vector<float> all(static_cast<size_t>(m * n)), one(static_cast<size_t>(n));
    tensor xt = tensor::view(x.data(), dtype::F32, {m, k}), yt = tensor::view(all.data(), dtype::F32, {m, n});
    ops::linear(ctx, xt, lw, yt);
    for (int64_t i = 0; i < m; ++i) {
      tensor xi = xt.rows_view(i, 1), yi = tensor::view(one.data(), dtype::F32, {1, n});
      ops::linear(ctx, xi, lw, yi);
      EXPECT_EQ(std::memcmp(one.data(), all.data() + i * n, size_t(n) * 4), 0) << dtype_name(t) << " row " << i;
    }
  }
}

// LINEAR_SWIGLU on quantized weights gives the bytes of LINEAR into [m, 2n] then SILU_MUL of its halves, for output
// counts off the 16-lane tiles, with and without bias, prefill and decode row counts. Where the wide AVX-512 prefill
// runs (m > 3), the gate is applied in its tiles' store: tmp is left as it was.
TEST(quant_linear, swiglu_equals_linear_then_silu_mul) {
  const int64_t k = 512;
  rng r(17);
  for (dtype t : {dtype::Q8_0, dtype::Q4_0, dtype::Q4_1, dtype::Q5_0, dtype::Q5_1, dtype::Q4_K, dtype::Q5_K,
                  dtype::Q6_K})
    for (int64_t n : {16, 40, 7})
      for (int64_t m : {2, 5, 13})
        for (bool with_bias : {false, true}) {
          const std::vector<float> x = r.normal(size_t(m * k)), w = r.normal(size_t(2 * n * k), 0.05f);
          const std::vector<float> b = r.normal(size_t(2 * n));
          exec_context ctx(device{}, 2);
          linear_weight lw;
          lw.weight = quant::quantize_tensor(tensor::view(w.data(), dtype::F32, {2 * n, k}), t);
          if (with_bias) lw.bias = tensor::view(b.data(), dtype::F32, {2 * n});
          const tensor xt = tensor::view(x.data(), dtype::F32, {m, k});
          std::vector<float> tmp(size_t(m * 2 * n), -7.0f), fused(size_t(m * n)), prod(size_t(m * 2 * n)),
              want(size_t(m * n));
          tensor tmp_t = tensor::view(tmp.data(), dtype::F32, {m, 2 * n}), y = tensor::view(fused.data(), dtype::F32, {m, n});
          ops::linear_swiglu(ctx, xt, lw, tmp_t, y);
          tensor pt = tensor::view(prod.data(), dtype::F32, {m, 2 * n}), wt = tensor::view(want.data(), dtype::F32, {m, n});
          ops::linear(ctx, xt, lw, pt);
          ops::silu_mul(ctx, pt.cols_view(0, n), pt.cols_view(n, n), wt);
          const std::string what = std::string(dtype_name(t)) + " n " + std::to_string(n) + " m " + std::to_string(m) +
                                   (with_bias ? " bias" : "");
          EXPECT_EQ(std::memcmp(fused.data(), want.data(), fused.size() * 4), 0) << what;
          const quant_isa isa = cpu::quant_isa_selected();
          if (m > 3 && (isa == quant_isa::AVX512_VNNI || isa == quant_isa::AVX512_GFNI)) {
            EXPECT_EQ(tmp, std::vector<float>(tmp.size(), -7.0f)) << what << ": the wide path wrote tmp";
          }
        }
}

// Against the unquantized product: the error is that of 8-bit activations and 4-8-bit weights, a few percent at
// most, so a layout mistake (which scrambles the product) cannot pass.
TEST(quant_linear, close_to_the_float_product) {
  const int64_t m = 3, n = 64, k = 1024;
  rng r(5);
  const std::vector<float> x = r.normal(size_t(m * k)), w = r.normal(size_t(n * k));
  std::vector<double> exact(size_t(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t c = 0; c < k; ++c) exact[size_t(i * n + j)] += double(x[size_t(i * k + c)]) * w[size_t(j * k + c)];
  struct bound { dtype t; double nmse; };
  for (const bound& b : {bound{dtype::Q8_0, 1e-4}, bound{dtype::Q6_K, 1e-3}, bound{dtype::Q5_K, 3e-3},
                         bound{dtype::Q4_K, 1e-2}, bound{dtype::Q4_0, 1.5e-2}, bound{dtype::Q4_1, 1e-2},
                         bound{dtype::Q5_0, 4e-3}, bound{dtype::Q5_1, 3e-3}}) {
    exec_context ctx(device{}, 2);
    linear_weight lw;
    lw.weight = quant::quantize_tensor(tensor::view(w.data(), dtype::F32, {n, k}), b.t);
    std::vector<float> y(size_t(m * n));
    tensor yt = tensor::view(y.data(), dtype::F32, {m, n});
    ops::linear(ctx, tensor::view(x.data(), dtype::F32, {m, k}), lw, yt);
    double se = 0, sr = 0;
    for (size_t i = 0; i < y.size(); ++i) se += (y[i] - exact[i]) * (y[i] - exact[i]), sr += exact[i] * exact[i];
    EXPECT_LT(se / sr, b.nmse) << dtype_name(b.t);
  }
}

TEST(quant_linear, isa_selection) {
  const std::vector<quant_isa> isas = available_isas();
  EXPECT_EQ(cpu::quant_isa_selected(), isas.back());  // the best one, listed last
  cpu::force_portable_kernels(true);
  EXPECT_EQ(cpu::quant_isa_selected(), quant_isa::PORTABLE);
  cpu::force_portable_kernels(false);
  {
    isa_scope scope(isas.front());
    EXPECT_EQ(cpu::quant_isa_selected(), isas.front());
  }
  EXPECT_EQ(cpu::quant_isa_selected(), isas.back());
#if defined(__x86_64__)
  EXPECT_EQ(cpu::quant_isa_available(quant_isa::AVX2), bool(__builtin_cpu_supports("avx2")));
  // GFNI's path only beside VNNI's (it is that table with other decode kernels).
  if (cpu::quant_isa_available(quant_isa::AVX512_GFNI)) {
    EXPECT_TRUE(cpu::quant_isa_available(quant_isa::AVX512_VNNI));
    EXPECT_TRUE(__builtin_cpu_supports("gfni"));
  }
  EXPECT_FALSE(cpu::quant_isa_available(quant_isa::NEON_DOTPROD));
  EXPECT_FALSE(cpu::quant_isa_available(quant_isa::NEON_I8MM));
#endif
#if defined(__aarch64__)
  // The CPU's bits (test_cpu_features checks them against the instructions): i8mm only with dotprod, and first.
  const cpu::arm_features& f = cpu::arm_cpu_features();
  EXPECT_EQ(cpu::quant_isa_available(quant_isa::NEON_DOTPROD), f.dotprod);
  EXPECT_EQ(cpu::quant_isa_available(quant_isa::NEON_I8MM), f.dotprod && f.i8mm);
  if (f.dotprod && f.i8mm) {
    EXPECT_EQ(cpu::quant_isa_selected(), quant_isa::NEON_I8MM);
  }
#endif
}

#if defined(__aarch64__)
// The i8mm table is the dotprod one with every prefill entry replaced: decode and the quantizer shared, the packer
// and packed kernels its own (else the byte comparisons here would compare dotprod with itself).
TEST(quant_linear, i8mm_table_replaces_prefill_only) {
  if (!cpu::quant_isa_available(quant_isa::NEON_I8MM)) GTEST_SKIP() << "the CPU has no i8mm";
  const cpu::qgemm::isa_table &a = *cpu::qgemm::table_neon_i8mm(), &d = *cpu::qgemm::table_neon_dotprod();
  EXPECT_STREQ(a.name, "neon-i8mm");
  EXPECT_EQ(a.quantize, d.quantize);
  for (size_t t = 0; t < size_t(cpu::qgemm::wtype::COUNT); ++t) {
    for (int r = 0; r < cpu::qgemm::k_decode_rows; ++r) EXPECT_EQ(a.dk[t][r], d.dk[t][r]) << t;
    EXPECT_NE(a.pack[t], d.pack[t]) << t;
    EXPECT_EQ(a.packed_bytes[t], d.packed_bytes[t]) << t;
    for (int r = 0; r < a.prefill_mr[t]; ++r) EXPECT_NE(a.pk[t][r], d.pk[t][r]) << t;
  }
}
#endif

// i8mm (smmla) computes 2 x rows x 2 W rows per instruction, so its prefill tiles pair both: every remainder of the
// 4-row register tile (m = 4 .. 11: 1 .. 4 rows left, an odd one paired with itself), W row counts that are odd or
// not a multiple of the 8-row tile (the last row repeated), one group and several. Bytes equal the dotprod and
// portable paths' (which the harness cases above check against the reference).
TEST(quant_linear, i8mm_pair_tiles_equal_dotprod_and_portable) {
  if (!cpu::quant_isa_available(quant_isa::NEON_I8MM)) GTEST_SKIP() << "the CPU or build has no i8mm path";
  rng r(17);
  exec_context ctx(device{}, 1);  // one thread: the tiles' coverage, not the split, is under test here
  for (dtype t : {dtype::I8, dtype::Q8_0, dtype::Q4_0, dtype::Q4_1, dtype::Q5_0, dtype::Q5_1, dtype::Q4_K,
                  dtype::Q5_K, dtype::Q6_K}) {
    const int64_t g = t == dtype::Q4_K || t == dtype::Q5_K || t == dtype::Q6_K ? 256 : 32;
    for (int64_t n : {1, 3, 13, 21})
      for (int64_t groups : {1, 3}) {
        const int64_t k = groups * g, m_max = 11;
        const std::vector<float> x = r.normal(size_t(m_max * k)), w = r.normal(size_t(n * k), 0.05f);
        linear_weight lw;
        lw.weight = quant::quantize_tensor(tensor::view(w.data(), dtype::F32, {n, k}), t,
                                           t == dtype::I8 ? &lw.scales : nullptr);
        for (int64_t m = 4; m <= m_max; ++m) {
          std::vector<float> y[3];
          const quant_isa isas[3] = {quant_isa::NEON_I8MM, quant_isa::NEON_DOTPROD, quant_isa::PORTABLE};
          for (int p = 0; p < 3; ++p) {
            isa_scope scope(isas[p]);
            y[p].assign(size_t(m * n), 0.0f);
            tensor yt = tensor::view(y[p].data(), dtype::F32, {m, n});
            ops::linear(ctx, tensor::view(x.data(), dtype::F32, {m, k}), lw, yt);
          }
          const std::string what = std::string(dtype_name(t)) + " m=" + std::to_string(m) + " n=" +
                                   std::to_string(n) + " k=" + std::to_string(k);
          EXPECT_EQ(std::memcmp(y[0].data(), y[1].data(), y[0].size() * 4), 0) << what << ": i8mm != dotprod";
          EXPECT_EQ(std::memcmp(y[0].data(), y[2].data(), y[0].size() * 4), 0) << what << ": i8mm != portable";
        }
      }
  }
}

}  // namespace
}  // namespace autoglm::harness
