// tests/kernels/attention_dots_test.cpp: scaled_dots (the scores pass of paged attention, 2 heads x 2 key rows per
// tile on AVX2) gives the bits of fast_dot(q, k, n) * scale one dot at a time, for head and key counts that leave
// odd rows, lengths that are and are not multiples of 16, and a strided output whose gaps stay untouched.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/cpu/attention_common.h"

namespace autoglm::cpu::attn {
namespace {

TEST(ScaledDots, EqualFastDotTimesScaleBitForBit) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (int64_t n : {16, 32, 128, 40, 7})
    for (int nq : {1, 2, 3, 8})
      for (int nk : {1, 2, 5, 8}) {
        std::vector<float> qv(size_t(nq * n)), kv(size_t(nk * n));
        for (float& v : qv) v = nd(rng);
        for (float& v : kv) v = nd(rng);
        std::vector<const float*> q(static_cast<size_t>(nq)), k(static_cast<size_t>(nk));
        for (int h = 0; h < nq; ++h) q[size_t(h)] = qv.data() + h * n;
        for (int p = 0; p < nk; ++p) k[size_t(p)] = kv.data() + p * n;
        const int64_t stride = nk + 3;  // a gap after each head's scores
        const float sentinel = -12345.0f, scale = 0.0883883f;
        std::vector<float> out(size_t(nq * stride), sentinel);
        scaled_dots(q.data(), nq, k.data(), nk, n, scale, out.data(), stride);
        for (int h = 0; h < nq; ++h) {
          for (int p = 0; p < nk; ++p) {
            const float want = fast_dot(q[size_t(h)], k[size_t(p)], n) * scale;
            const float got = out[size_t(h * stride + p)];
            EXPECT_EQ(std::memcmp(&want, &got, 4), 0)
                << "n " << n << " heads " << nq << " keys " << nk << " at (" << h << ", " << p << "): " << got
                << " vs " << want;
          }
          for (int64_t g = nk; g < stride; ++g) EXPECT_EQ(out[size_t(h * stride + g)], sentinel);
        }
      }
}

}  // namespace
}  // namespace autoglm::cpu::attn
