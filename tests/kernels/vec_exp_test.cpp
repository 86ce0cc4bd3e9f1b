// tests/kernels/vec_exp_test.cpp: exp_avx2 and the softmax helpers of kernels/cpu/vec_exp.h against std::exp:
// within 2 ulp over the normal range on a dense sweep and random inputs, 0 below it, NaN kept; the shifted-exp sum
// and the scaled max against scalar loops on every tail length. (The dense attention's kernel is also checked
// end to end against the double reference by the harness, cases_attention.cpp.)
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <algorithm>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "kernels/cpu/convert.h"
#include "kernels/cpu/vec_exp.h"

namespace autoglm::cpu {
namespace {

#if defined(__x86_64__)
int64_t ulps(float a, float b) {
  int32_t ia, ib;
  std::memcpy(&ia, &a, 4);
  std::memcpy(&ib, &b, 4);
  if (ia < 0) ia = int32_t(0x80000000u - uint32_t(ia));
  if (ib < 0) ib = int32_t(0x80000000u - uint32_t(ib));
  return std::llabs(int64_t(ia) - int64_t(ib));
}

__attribute__((target("avx2,fma"))) std::vector<float> exp8(const std::vector<float>& x) {
  std::vector<float> y(x.size());
  for (size_t i = 0; i + 8 <= x.size(); i += 8) _mm256_storeu_ps(&y[i], exp_avx2(_mm256_loadu_ps(&x[i])));
  return y;
}

TEST(VecExp, WithinTwoUlpOfStdExpOverTheNormalRange) {
  if (!cpu_has_avx2()) GTEST_SKIP() << "no AVX2 on this CPU";
  std::vector<float> x;
  for (float v = -87.3f; v <= 88.72f; v += 0.00137f) x.push_back(v);
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-87.3f, 0.0f);
  for (int i = 0; i < 100000; ++i) x.push_back(u(rng));
  for (float v : {0.0f, -0.0f, 1e-8f, -1e-8f, -0.34657359f, 0.34657359f, -87.0f, 88.0f}) x.push_back(v);
  while (x.size() % 8) x.push_back(0.0f);
  const std::vector<float> y = exp8(x);
  int64_t worst = 0;
  float at = 0.0f;
  for (size_t i = 0; i < x.size(); ++i) {
    const int64_t d = ulps(y[i], std::exp(x[i]));
    if (d > worst) worst = d, at = x[i];
  }
  EXPECT_LE(worst, 2) << "at x = " << at;
  std::printf("[vec_exp] worst %lld ulp over %zu inputs (at x = %g)\n", (long long)worst, x.size(), double(at));
}

TEST(VecExp, UnderflowIsZeroOverflowInfinityAndNanStaysNan) {
  if (!cpu_has_avx2()) GTEST_SKIP() << "no AVX2 on this CPU";
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> y = exp8({-87.4f, -100.0f, -1e30f, -inf, nan, 0.0f, 88.72f, 88.8f});
  for (int i = 0; i < 4; ++i) EXPECT_EQ(y[i], 0.0f) << i;
  EXPECT_TRUE(std::isnan(y[4]));
  EXPECT_EQ(y[5], 1.0f);
  EXPECT_LE(ulps(y[6], std::exp(88.72f)), 2);
  EXPECT_EQ(y[7], inf);
  EXPECT_EQ(exp8({100.0f, inf, 0, 0, 0, 0, 0, 0})[1], inf);
}

TEST(VecExp, SoftmaxHelpersMatchScalarLoopsOnEveryTail) {
  if (!cpu_has_avx2()) GTEST_SKIP() << "no AVX2 on this CPU";
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 4.0f);
  for (long n : {1L, 7L, 8L, 9L, 15L, 16L, 17L, 100L, 1027L}) {
    std::vector<float> r(static_cast<size_t>(n)), want(static_cast<size_t>(n));
    for (auto& v : r) v = nd(rng);
    const float scale = 0.0883883f;
    float mx = -std::numeric_limits<float>::infinity();
    for (long j = 0; j < n; ++j) mx = std::max(mx, want[size_t(j)] = r[size_t(j)] * scale);
    EXPECT_EQ(scale_max_avx2(r.data(), n, scale), mx) << n;
    for (long j = 0; j < n; ++j) ASSERT_EQ(r[size_t(j)], want[size_t(j)]) << n;  // the same products
    double sum = 0.0;
    for (long j = 0; j < n; ++j) sum += (want[size_t(j)] = std::exp(want[size_t(j)] - mx));
    const double got = exp_shifted_sum_avx2(r.data(), n, mx);
    EXPECT_NEAR(got, sum, 1e-6 * sum) << n;
    for (long j = 0; j < n; ++j) EXPECT_LE(ulps(r[size_t(j)], want[size_t(j)]), 2) << n << " " << j;
  }
}

TEST(VecExp, SiluMulMatchesScalarAndDoesNotDependOnTheSpan) {
  if (!cpu_has_avx2()) GTEST_SKIP() << "no AVX2 on this CPU";
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  const long n = 1003;
  std::vector<float> g(static_cast<size_t>(n)), u(static_cast<size_t>(n)), whole(g.size()), parts(g.size());
  for (auto& v : g) v = nd(rng);
  for (auto& v : u) v = nd(rng);
  g[0] = 100.0f, g[1] = -100.0f, g[2] = 0.0f;
  silu_mul_avx2(g.data(), u.data(), whole.data(), n);
  for (long a : {0L, 5L, 13L, 500L, 997L}) {  // spans starting anywhere: the same bits
    const long b = std::min(n, a + 37);
    silu_mul_avx2(g.data() + a, u.data() + a, parts.data() + a, b - a);
    for (long j = a; j < b; ++j) ASSERT_EQ(parts[size_t(j)], whole[size_t(j)]) << j;
  }
  for (long j = 0; j < n; ++j) {
    const float want = g[size_t(j)] / (1.0f + std::exp(-g[size_t(j)])) * u[size_t(j)];
    EXPECT_LE(ulps(whole[size_t(j)], want), 4) << "g = " << g[size_t(j)];
  }
}
// exp_avx512, exp_shifted_sum_avx512 and silu_mul_avx512 give their AVX2 versions' bytes: over the normal range, its
// edges, under- and overflow, infinities, NaN, +0 / -0; the sums (and arrays) on every length around the 16-lane step.
__attribute__((target("avx512f"))) std::vector<float> exp16(const std::vector<float>& x) {
  std::vector<float> y(x.size());
  for (size_t i = 0; i + 16 <= x.size(); i += 16) _mm512_storeu_ps(&y[i], exp_avx512(_mm512_loadu_ps(&x[i])));
  return y;
}

TEST(VecExp, Avx512LanesGiveTheAvx2Bytes) {
  if (!__builtin_cpu_supports("avx512f") || !cpu_has_avx2()) GTEST_SKIP() << "no AVX-512 on this CPU";
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> x;
  for (float v = -90.0f; v <= 90.0f; v += 0.00731f) x.push_back(v);
  for (float v : {0.0f, -0.0f, -87.33654f, 88.72283f, -87.34f, 88.73f, -inf, inf, nan, -nan, 1e-30f, -1e30f})
    x.push_back(v);
  while (x.size() % 16) x.push_back(1.0f);
  const std::vector<float> a = exp8(x), b = exp16(x);
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * 4), 0);
  std::mt19937 rng(21);
  std::normal_distribution<float> nd(0.0f, 4.0f);
  for (long n : {1L, 7L, 8L, 15L, 16L, 17L, 24L, 31L, 32L, 33L, 47L, 100L, 1000L, 4097L}) {
    std::vector<float> r(static_cast<size_t>(n));
    for (float& v : r) v = nd(rng);
    r[size_t(n / 3)] = -inf;
    const float mx = *std::max_element(r.begin(), r.end());
    std::vector<float> ra = r, rb = r;
    const double sa = exp_shifted_sum_avx2(ra.data(), n, mx), sb = exp_shifted_sum_avx512(rb.data(), n, mx);
    EXPECT_EQ(std::memcmp(&sa, &sb, 8), 0) << "n " << n;
    EXPECT_EQ(std::memcmp(ra.data(), rb.data(), size_t(n) * 4), 0) << "n " << n;
    std::vector<float> u(static_cast<size_t>(n)), oa(static_cast<size_t>(n)), ob(static_cast<size_t>(n));
    for (float& v : u) v = nd(rng);
    silu_mul_avx2(r.data(), u.data(), oa.data(), n);
    silu_mul_avx512(r.data(), u.data(), ob.data(), n);
    EXPECT_EQ(std::memcmp(oa.data(), ob.data(), size_t(n) * 4), 0) << "silu_mul, n " << n;
  }
}

#endif

}  // namespace
}  // namespace autoglm::cpu
