// CPU kernels against plain references on random inputs, awkward shapes included (1 row, odd widths,
// non-multiples of the tiles). Tolerances are relative to the reference's magnitude.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "kernels/cpu/activations.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/gemm_bf16.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/norm.h"
#include "kernels/cpu/rope.h"

using namespace autoglm;

namespace {

std::vector<float> random_vec(size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

double rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

}  // namespace

// The exact GEMM's F32 bound (the bf16 GEMM, which the default precision takes for BF16 weights from 8 rows, is
// held to its own bound in tests/kernels/gemm_bf16_test.cpp).
TEST(kernels, linear_matches_reference_for_all_dtypes_and_shapes) {
  const cpu::cpu_gemm_precision_scope exact(cpu::cpu_gemm_precision::EXACT);
  std::mt19937 rng(42);
  for (dtype t : {dtype::F32, dtype::BF16, dtype::F16}) {
    for (auto [m, n, k] : std::vector<std::tuple<int, int, int>>{{1, 1, 1}, {1, 7, 13}, {2, 9, 64}, {3, 16, 180}, {5, 37, 129}, {17, 130, 257}}) {
      auto x = random_vec(size_t(m) * k, rng);
      auto wf = random_vec(size_t(n) * k, rng);
      auto bias = random_vec(size_t(n), rng);
      std::vector<uint16_t> w16(wf.size());
      const void* wdata = wf.data();
      if (t == dtype::BF16) {
        for (size_t i = 0; i < wf.size(); ++i) w16[i] = f32_to_bf16(wf[i]);
        wdata = w16.data();
      } else if (t == dtype::F16) {
        for (size_t i = 0; i < wf.size(); ++i) w16[i] = f32_to_f16(wf[i]);
        wdata = w16.data();
      }
      weight_view w{t, wdata, n, k};
      std::vector<float> y(size_t(m) * n, NAN), yr(size_t(m) * n);
      cpu::linear(x.data(), m, w, bias.data(), y.data());
      cpu::linear_ref(x.data(), m, w, bias.data(), yr.data());
      for (float v : y) ASSERT_FALSE(std::isnan(v)) << "unwritten output";
      EXPECT_LT(rel_err(y, yr), 1e-5) << dtype_name(t) << " m=" << m << " n=" << n << " k=" << k;
    }
  }
}

TEST(kernels, linear_writes_with_row_stride) {
  std::mt19937 rng(1);
  auto x = random_vec(4 * 8, rng);
  auto wf = random_vec(5 * 8, rng);
  weight_view w{dtype::F32, wf.data(), 5, 8};
  std::vector<float> y(4 * 9, -7.0f), yr(4 * 5);
  cpu::linear(x.data(), 4, w, nullptr, y.data(), 9);
  cpu::linear_ref(x.data(), 4, w, nullptr, yr.data());
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 5; ++j) EXPECT_NEAR(y[i * 9 + j], yr[i * 5 + j], 1e-4);
    for (int j = 5; j < 9; ++j) EXPECT_EQ(y[i * 9 + j], -7.0f) << "wrote outside the row";
  }
}

TEST(kernels, bf16_and_f16_conversions_round_to_nearest_even) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(3.140625f)), 3.140625f);
  EXPECT_EQ(f32_to_bf16(1.00390625f), 0x3f80);  // exactly half-way: ties to even
  EXPECT_EQ(f32_to_bf16(1.01171875f), 0x3f82);  // half-way above an odd mantissa rounds up
  for (float v : {0.0f, 1.0f, -2.5f, 65504.0f, 6.1035156e-05f, 5.9604645e-08f})
    EXPECT_EQ(f16_to_f32(f32_to_f16(v)), v) << v;
  EXPECT_TRUE(std::isinf(f16_to_f32(f32_to_f16(1e6f))));
}

TEST(kernels, rms_norm_and_layer_norm) {
  std::mt19937 rng(3);
  const int m = 3, n = 37;
  auto x = random_vec(m * n, rng, 2.0f);
  auto w = random_vec(n, rng);
  auto b = random_vec(n, rng);
  std::vector<float> y(m * n), z(m * n);
  cpu::rms_norm(x.data(), w.data(), m, n, 1e-5f, y.data());
  cpu::layer_norm(x.data(), w.data(), b.data(), m, n, 1e-5f, z.data());
  for (int r = 0; r < m; ++r) {
    double ss = 0, s = 0;
    for (int j = 0; j < n; ++j) ss += double(x[r * n + j]) * x[r * n + j], s += x[r * n + j];
    double inv = 1.0 / std::sqrt(ss / n + 1e-5), mean = s / n, var = 0;
    for (int j = 0; j < n; ++j) var += (x[r * n + j] - mean) * (x[r * n + j] - mean);
    double linv = 1.0 / std::sqrt(var / n + 1e-5);
    for (int j = 0; j < n; ++j) {
      EXPECT_NEAR(y[r * n + j], w[j] * x[r * n + j] * inv, 1e-5);
      EXPECT_NEAR(z[r * n + j], (x[r * n + j] - mean) * linv * w[j] + b[j], 1e-5);
    }
  }
}

TEST(kernels, mrope_interleaved_rotates_pairs_by_plane) {
  std::mt19937 rng(5);
  const int n_tok = 3, heads = 2, hd = 16, rot = 8;  // 4 pairs: sections [1, 2, 1]
  const int32_t sections[3] = {1, 2, 1};
  std::vector<int32_t> pt = {0, 5, 9}, ph = {1, 6, 3}, pw = {2, 7, 11};
  auto x = random_vec(n_tok * heads * hd, rng);
  auto y = x;
  cpu::rope_mrope_interleaved(y.data(), n_tok, heads * hd, heads, hd, rot, pt.data(), ph.data(), pw.data(), sections, 10000.0f);
  for (int t = 0; t < n_tok; ++t)
    for (int h = 0; h < heads; ++h)
      for (int d = 0; d < hd; ++d) {
        const float* v = &x[(t * heads + h) * hd];
        float got = y[(t * heads + h) * hd + d];
        if (d >= rot) {
          EXPECT_EQ(got, v[d]);
          continue;
        }
        int i = d / 2;
        int pos = i < 1 ? pt[t] : (i < 3 ? ph[t] : pw[t]);
        double a = pos * std::pow(10000.0, -2.0 * i / rot);
        double expect = d % 2 == 0 ? v[d] * std::cos(a) - v[d + 1] * std::sin(a) : v[d] * std::cos(a) + v[d - 1] * std::sin(a);
        EXPECT_NEAR(got, expect, 1e-4) << t << " " << h << " " << d;
      }
}

TEST(kernels, paged_attention_matches_dense_causal_reference) {
  std::mt19937 rng(7);
  const int n_heads = 4, n_kv = 2, hd = 16, bs = 4, n_past = 5, n_new = 6, n_ctx = n_past + n_new;
  const int n_blocks = 5;
  std::vector<int32_t> table = {3, 0, 4};  // a scrambled block table
  auto q = random_vec(n_new * n_heads * hd, rng);
  auto kall = random_vec(n_ctx * n_kv * hd, rng);
  auto vall = random_vec(n_ctx * n_kv * hd, rng);
  std::vector<float> kpool(n_blocks * bs * n_kv * hd, NAN), vpool(kpool.size(), NAN);
  for (int p = 0; p < n_ctx; ++p)
    for (int e = 0; e < n_kv * hd; ++e) {
      size_t slot = (size_t(table[p / bs]) * bs + p % bs) * n_kv * hd + e;
      kpool[slot] = kall[p * n_kv * hd + e];
      vpool[slot] = vall[p * n_kv * hd + e];
    }
  std::vector<float> out(n_new * n_heads * hd, NAN);
  cpu::paged_kv kv{kpool.data(), vpool.data(), bs, table.data()};
  const float scale = 0.25f;
  cpu::attention_paged(q.data(), n_heads * hd, n_new, n_past, n_heads, n_kv, hd, scale, kv, out.data(), n_heads * hd);
  for (int i = 0; i < n_new; ++i)
    for (int h = 0; h < n_heads; ++h) {
      int kvh = h / (n_heads / n_kv), ctx = n_past + i + 1;
      std::vector<double> s(ctx);
      double mx = -1e30, sum = 0;
      for (int p = 0; p < ctx; ++p) {
        double d = 0;
        for (int e = 0; e < hd; ++e) d += double(q[(i * n_heads + h) * hd + e]) * kall[(p * n_kv + kvh) * hd + e];
        s[p] = d * scale;
        mx = std::max(mx, s[p]);
      }
      for (auto& v : s) sum += (v = std::exp(v - mx));
      for (int e = 0; e < hd; ++e) {
        double o = 0;
        for (int p = 0; p < ctx; ++p) o += s[p] / sum * vall[(p * n_kv + kvh) * hd + e];
        EXPECT_NEAR(out[(i * n_heads + h) * hd + e], o, 1e-5);
      }
    }
}

TEST(kernels, dense_attention_and_activations) {
  std::mt19937 rng(9);
  const int n = 7, heads = 2, hd = 8, stride = 3 * heads * hd;
  auto qkv = random_vec(n * stride, rng);
  std::vector<float> out(n * heads * hd);
  cpu::attention_dense(qkv.data(), qkv.data() + heads * hd, qkv.data() + 2 * heads * hd, stride, n, heads, hd, 0.3f, out.data(), heads * hd);
  for (int i = 0; i < n; ++i)
    for (int h = 0; h < heads; ++h) {
      std::vector<double> s(n);
      double mx = -1e30, sum = 0;
      for (int j = 0; j < n; ++j) {
        double d = 0;
        for (int e = 0; e < hd; ++e) d += double(qkv[i * stride + h * hd + e]) * qkv[j * stride + heads * hd + h * hd + e];
        mx = std::max(mx, s[j] = d * 0.3);
      }
      for (auto& v : s) sum += (v = std::exp(v - mx));
      for (int e = 0; e < hd; ++e) {
        double o = 0;
        for (int j = 0; j < n; ++j) o += s[j] / sum * qkv[j * stride + 2 * heads * hd + h * hd + e];
        EXPECT_NEAR(out[i * heads * hd + h * hd + e], o, 1e-5);
      }
    }
  std::vector<float> gu = {1.0f, -2.0f, 3.0f, 0.5f}, m(2);
  cpu::silu_mul_fused(gu.data(), 1, 2, m.data());
  EXPECT_NEAR(m[0], 1.0 / (1 + std::exp(-1.0)) * 3.0, 1e-6);
  EXPECT_NEAR(m[1], -2.0 / (1 + std::exp(2.0)) * 0.5, 1e-6);
  std::vector<float> g = {-1.0f, 0.0f, 2.0f};
  cpu::gelu_erf(g.data(), 3);
  EXPECT_NEAR(g[0], -0.15865525, 1e-6);
  EXPECT_NEAR(g[2], 1.95449974, 1e-6);
}
