// tests/kernels/attention_dots_test.cpp: scaled_dots (the scores pass of paged attention, 2 heads x 2 key rows per
// tile on AVX2) gives the bits of fast_dot(q, k, n) * scale one dot at a time, for head and key counts that leave
// odd rows, lengths that are and are not multiples of 16, and a strided output whose gaps stay untouched.
// Paged attention over a prefill chunk gives the bytes of its rows taken one at a time (the two P.V paths).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/cpu/attention_common.h"
#include "kernels/cpu/vec_exp.h"

namespace autoglm::cpu::attn {
namespace {

// out[h * stride + p] holds the bits of fast_dot(q[h], k[p], n) * scale for every query and key, and the gap after
// each head's scores (up to stride) still holds the sentinel.
void expect_fast_dot_bits(const std::vector<const float*>& q, const std::vector<const float*>& k, int64_t n,
                          float scale, const std::vector<float>& out, int64_t stride, float sentinel) {
  const int nq = int(q.size()), nk = int(k.size());
  for (int h = 0; h < nq; ++h) {
    for (int p = 0; p < nk; ++p) {
      const float want = fast_dot(q[size_t(h)], k[size_t(p)], n) * scale;
      const float got = out[size_t(h * stride + p)];
      EXPECT_EQ(std::memcmp(&want, &got, 4), 0)
          << "n " << n << " heads " << nq << " keys " << nk << " at (" << h << ", " << p << "): " << got << " vs "
          << want;
    }
    for (int64_t g = nk; g < stride; ++g) EXPECT_EQ(out[size_t(h * stride + g)], sentinel);
  }
}

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
        expect_fast_dot_bits(q, k, n, scale, out, stride, sentinel);
      }
}

// Key runs of 16 on AVX-512: transpose_keys16 + scaled_dots_keys16 give the bits of fast_dot(q, k, n) * scale for
// every run length 1-16 (lanes past it masked: the output's gaps stay untouched), with inputs of mixed magnitudes
// (rounding differs between summation orders, so a wrong order shows) and infinities / NaN in one key.
TEST(ScaledDots, KeyRunsOf16EqualFastDotBitForBit) {
  if (!key_runs16_usable(16)) GTEST_SKIP() << "no AVX-512 on this CPU";
  std::mt19937 rng(9);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_int_distribution<int> ex(-20, 20);
  for (int64_t n : {16, 32, 128})
    for (int nq : {1, 3, 8})
      for (int nk = 1; nk <= 16; ++nk) {
        std::vector<float> qv(size_t(nq * n)), kv(size_t(nk * n));
        for (float& v : qv) v = std::ldexp(nd(rng), ex(rng));
        for (float& v : kv) v = std::ldexp(nd(rng), ex(rng));
        if (nk > 2) {
          kv[size_t(n + 3)] = INFINITY;
          kv[size_t(2 * n + 5)] = NAN;
        }
        std::vector<const float*> q(static_cast<size_t>(nq)), k(static_cast<size_t>(nk));
        for (int h = 0; h < nq; ++h) q[size_t(h)] = qv.data() + h * n;
        for (int p = 0; p < nk; ++p) k[size_t(p)] = kv.data() + p * n;
        std::vector<float> room(size_t(16 * n) + 16);  // kt, 64-byte aligned inside
        float* ktp = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(room.data()) + 63) / 64 * 64);
        transpose_keys16(k.data(), nk, n, ktp);
        const int64_t stride = 19;  // past the 16 lanes a run may write: a gap after each head's scores
        const float sentinel = -12345.0f, scale = 0.0883883f;
        std::vector<float> out(size_t(nq * stride), sentinel);
        scaled_dots_keys16(q.data(), nq, ktp, nk, n, scale, out.data(), stride);
        expect_fast_dot_bits(q, k, n, scale, out, stride, sentinel);
      }
}

#if defined(__x86_64__)
// softmax's vectorized max and scaling give the bytes of the serial loops they replaced (std::max from -inf, the same
// exponential sum, x *= 1 / sum), for lengths around the 8 / 16 lane steps, with NaN, +0 / -0 ties (a +0 max and a
// -0 max give the same exponentials) and -inf in the row.
TEST(Softmax, VectorMaxAndScaleGiveTheSerialBytes) {
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) GTEST_SKIP() << "no AVX2";
  std::mt19937 rng(13);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  for (int64_t n : {1, 7, 8, 15, 16, 17, 33, 100, 1000})
    for (int variant = 0; variant < 4; ++variant) {
      std::vector<float> x(static_cast<size_t>(n));
      for (float& v : x) v = nd(rng);
      if (variant == 1) x[size_t(n / 2)] = NAN;
      if (variant == 2) {
        for (float& v : x) v = -std::fabs(v);
        x[size_t(n - 1)] = 0.0f;
        x[0] = -0.0f;
      }
      if (variant == 3) x[0] = -INFINITY;
      std::vector<float> want = x, got = x;
      float mx = -INFINITY;
      for (float v : want) mx = std::max(mx, v);
      const float inv = float(1.0 / exp_shifted_sum_avx2(want.data(), long(n), mx));
      for (float& v : want) v *= inv;
      softmax(got.data(), n);
      EXPECT_EQ(std::memcmp(want.data(), got.data(), size_t(n) * 4), 0) << "n " << n << " variant " << variant;
    }
}
#endif

// Paged attention over a prefill chunk (8+ rows: P.V in runs of 64 positions, on AVX-512 8 heads x 32 dims per
// pass) gives the bytes of the same rows taken one at a time (decode: on AVX-512 8 heads x 32 dims over all
// positions; on a pool with more threads than those items, or without AVX-512, P.V split over head pairs and dims),
// for every cache type, a head group of 8 (two passes of 8 for 16) and of 3, block tables out of order.
TEST(PagedAttention, PrefillRowsEqualRowsOneAtATimeBitForBit) {
  struct cfg {
    int64_t heads, kv_heads, hd;
  };
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_int_distribution<int> q8(-127, 127);
  thread_pool many(64);  // more threads than a decode row's 8-head items: the head-pair P.V
  for (const cfg c : {cfg{16, 2, 128}, cfg{32, 2, 128}, cfg{6, 2, 64}})
    for (dtype t : {dtype::F32, dtype::F16, dtype::BF16, dtype::Q8_0}) {
      const int64_t n_past = 70, n_new = 12, bs = 16, n_ctx = n_past + n_new;
      const int64_t n_blocks = (n_ctx + bs - 1) / bs;
      const int64_t rb = int64_t(dtype_row_bytes(t, c.hd));  // bytes per head row
      std::vector<int32_t> table(static_cast<size_t>(n_blocks));
      for (int64_t b = 0; b < n_blocks; ++b) table[size_t(b)] = int32_t(n_blocks - 1 - b);
      std::vector<uint8_t> kbuf(size_t(n_blocks * bs * c.kv_heads * rb)), vbuf(kbuf.size());
      for (auto* buf : {&kbuf, &vbuf})
        for (size_t off = 0; off < buf->size(); off += size_t(rb))
          for (int64_t e = 0; e < c.hd; ++e) {
            uint8_t* row = buf->data() + off;
            const float v = nd(rng);
            if (t == dtype::F32) std::memcpy(row + 4 * e, &v, 4);
            else if (t == dtype::F16 || t == dtype::BF16) {
              const uint16_t h = t == dtype::F16 ? f32_to_f16(v) : f32_to_bf16(v);
              std::memcpy(row + 2 * e, &h, 2);
            } else {
              uint8_t* blk = row + (e / 32) * 34;
              if (e % 32 == 0) {
                const uint16_t d = f32_to_f16(0.01f);
                std::memcpy(blk, &d, 2);
              }
              blk[2 + e % 32] = uint8_t(int8_t(q8(rng)));
            }
          }
      auto view = [&](std::vector<uint8_t>& buf) {
        cache_view v;
        v.type = t;
        v.base = buf.data();
        v.head_stride = rb;
        v.slot_stride = c.kv_heads * rb;
        v.block_stride = bs * c.kv_heads * rb;
        v.n_blocks = n_blocks;
        v.block_size = int32_t(bs);
        return v;
      };
      const cache_view kc = view(kbuf), vc = view(vbuf);
      const int64_t qw = c.heads * c.hd;
      std::vector<float> q(size_t(n_new * qw));
      for (float& x : q) x = nd(rng);
      const std::vector<seq_desc> seqs = {{0, n_new, n_past, table.data(), n_blocks}};
      std::vector<row_ref> all;
      for (int64_t i = 0; i < n_new; ++i) all.push_back({0, i});
      const float scale = 1.0f / std::sqrt(float(c.hd));
      std::vector<float> batch(q.size(), -1.0f), single(q.size(), -2.0f), narrow(q.size(), -3.0f);
      paged_attention_split(nullptr, q.data(), qw, kc, vc, seqs, all, c.heads, c.kv_heads, c.hd, scale, batch.data(), qw);
      for (int64_t i = 0; i < n_new; ++i) {
        paged_attention_split(nullptr, q.data(), qw, kc, vc, seqs, {{0, i}}, c.heads, c.kv_heads, c.hd, scale,
                              single.data(), qw);
        paged_attention_split(&many, q.data(), qw, kc, vc, seqs, {{0, i}}, c.heads, c.kv_heads, c.hd, scale,
                              narrow.data(), qw);
      }
      EXPECT_EQ(std::memcmp(batch.data(), single.data(), batch.size() * sizeof(float)), 0)
          << "heads " << c.heads << " / " << c.kv_heads << ", head_dim " << c.hd << ", cache " << dtype_name(t);
      EXPECT_EQ(std::memcmp(batch.data(), narrow.data(), batch.size() * sizeof(float)), 0)
          << "head pairs: heads " << c.heads << " / " << c.kv_heads << ", head_dim " << c.hd << ", cache "
          << dtype_name(t);
    }
}

}  // namespace
}  // namespace autoglm::cpu::attn
