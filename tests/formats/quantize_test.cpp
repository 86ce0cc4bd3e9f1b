// tests/formats/quantize_test.cpp: the GGUF block layouts (core/quant_blocks.h) and the quantizers
// (formats/quantize.h): block sizes against the dtype table, hand-built blocks decoded element by element (the bit
// positions of ggml's layouts, written out independently of the quantizers), the 6-bit scale packing, round-trip
// error bounds per type on random data, the scale searches against plain min/max rounding, determinism, and the
// errors a user can hit (row lengths, non-finite values, targets).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/error.h"
#include "core/quant_blocks.h"
#include "formats/quantize.h"

namespace autoglm::quant {
namespace {

std::vector<float> normal(size_t n, uint64_t seed, float sd = 1.0f) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> d(0.0f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

std::vector<float> round_trip(dtype t, const std::vector<float>& x) {
  std::vector<uint8_t> q(dtype_row_bytes(t, int64_t(x.size())));
  quantize_row(t, x.data(), q.data(), int64_t(x.size()));
  std::vector<float> y(x.size());
  dequantize_row(t, q.data(), y.data(), int64_t(x.size()));
  return y;
}

double rel_rmse(const std::vector<float>& x, const std::vector<float>& y) {
  double se = 0, sx = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    se += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
    sx += double(x[i]) * x[i];
  }
  return std::sqrt(se / sx);
}

const uint16_t k_one = 0x3c00, k_half = 0x3800, k_quarter = 0x3400;  // f16 1.0, 0.5, 0.25

TEST(quant_blocks, sizes_match_the_dtype_table) {
  EXPECT_EQ(dtype_block_bytes(dtype::Q8_0), sizeof(block_q8_0));
  EXPECT_EQ(dtype_block_bytes(dtype::Q4_0), sizeof(block_q4_0));
  EXPECT_EQ(dtype_block_bytes(dtype::Q4_K), sizeof(block_q4_k));
  EXPECT_EQ(dtype_block_bytes(dtype::Q5_K), sizeof(block_q5_k));
  EXPECT_EQ(dtype_block_bytes(dtype::Q6_K), sizeof(block_q6_k));
  EXPECT_EQ(dtype_block_elems(dtype::Q4_0), size_t(qk_0));
  EXPECT_EQ(dtype_block_elems(dtype::Q6_K), size_t(qk_k));
  // Field offsets of the k-quants (ggml: d, dmin, scales, [qh,] qs; Q6_K: ql, qh, scales, d).
  EXPECT_EQ(offsetof(block_q4_k, scales), 4u);
  EXPECT_EQ(offsetof(block_q4_k, qs), 16u);
  EXPECT_EQ(offsetof(block_q5_k, qh), 16u);
  EXPECT_EQ(offsetof(block_q5_k, qs), 48u);
  EXPECT_EQ(offsetof(block_q6_k, qh), 128u);
  EXPECT_EQ(offsetof(block_q6_k, scales), 192u);
  EXPECT_EQ(offsetof(block_q6_k, d), 208u);
  // The 32-element fallback types (ggml: d, [m,] [qh,] qs).
  EXPECT_EQ(dtype_block_bytes(dtype::Q4_1), sizeof(block_q4_1));
  EXPECT_EQ(dtype_block_bytes(dtype::Q5_0), sizeof(block_q5_0));
  EXPECT_EQ(dtype_block_bytes(dtype::Q5_1), sizeof(block_q5_1));
  EXPECT_EQ(offsetof(block_q4_1, qs), 4u);
  EXPECT_EQ(offsetof(block_q5_0, qh), 2u);
  EXPECT_EQ(offsetof(block_q5_0, qs), 6u);
  EXPECT_EQ(offsetof(block_q5_1, qh), 4u);
  EXPECT_EQ(offsetof(block_q5_1, qs), 8u);
  for (dtype t : {dtype::Q4_1, dtype::Q5_0, dtype::Q5_1}) EXPECT_EQ(dtype_block_elems(t), size_t(qk_0));
}

TEST(quant_blocks, six_bit_scale_packing) {
  // Sub-block 5: scale 0b110101 = 53 -> low nibble 0101 in byte 9, top bits 11 in bits 6-7 of byte 1; min
  // 0b011010 = 26 -> high nibble 1010 of byte 9, top bits 01 in bits 6-7 of byte 5.
  uint8_t sc[8] = {1, 2, 3, 63, 4, 53, 0, 63}, m[8] = {5, 6, 7, 0, 8, 26, 63, 1};
  uint8_t s[12];
  k_pack_scale_min(s, sc, m);
  EXPECT_EQ(s[9], 0xa5);
  EXPECT_EQ(s[1] >> 6, 3);
  EXPECT_EQ(s[5] >> 6, 1);
  EXPECT_EQ(s[0] & 63, 1);
  EXPECT_EQ(s[7] & 63, 0);
  std::mt19937 g(7);
  for (int trial = 0; trial < 200; ++trial) {
    for (int j = 0; j < 8; ++j) sc[j] = uint8_t(g() % 64), m[j] = uint8_t(g() % 64);
    k_pack_scale_min(s, sc, m);
    uint8_t all_sc[8], all_m[8];
    k_scales_mins(s, all_sc, all_m);
    for (int j = 0; j < 8; ++j) {
      uint8_t a, b;
      k_scale_min(s, j, a, b);
      ASSERT_EQ(a, sc[j]);
      ASSERT_EQ(b, m[j]);
      ASSERT_EQ(all_sc[j], sc[j]);
      ASSERT_EQ(all_m[j], m[j]);
    }
  }
}

TEST(quant_blocks, hand_built_q8_0_and_q4_0) {
  block_q8_0 b8{};
  b8.d = k_half;
  b8.qs[0] = -128;
  b8.qs[31] = 127;
  b8.qs[7] = -3;
  float y[32];
  dequantize_row(dtype::Q8_0, &b8, y, 32);
  EXPECT_EQ(y[0], -64.0f);
  EXPECT_EQ(y[31], 63.5f);
  EXPECT_EQ(y[7], -1.5f);
  EXPECT_EQ(y[8], 0.0f);

  block_q4_0 b4{};
  b4.d = k_one;
  std::memset(b4.qs, 0x88, 16);  // every element 8 - 8 = 0
  b4.qs[0] = 0x2f;               // element 0: 15 - 8 = 7, element 16: 2 - 8 = -6
  b4.qs[15] = 0x0a;              // element 15: 2, element 31: -8
  dequantize_row(dtype::Q4_0, &b4, y, 32);
  EXPECT_EQ(y[0], 7.0f);
  EXPECT_EQ(y[16], -6.0f);
  EXPECT_EQ(y[15], 2.0f);
  EXPECT_EQ(y[31], -8.0f);
  EXPECT_EQ(y[1], 0.0f);
}

TEST(quant_blocks, hand_built_q4_1_q5_0_and_q5_1) {
  float y[32];
  block_q4_1 b41{};
  b41.d = k_half;
  b41.m = 0xbc00;   // f16 -1.0
  b41.qs[3] = 0xf2;  // element 3: 2, element 19: 15
  dequantize_row(dtype::Q4_1, &b41, y, 32);
  EXPECT_EQ(y[3], 0.5f * 2 - 1.0f);
  EXPECT_EQ(y[19], 0.5f * 15 - 1.0f);
  EXPECT_EQ(y[0], -1.0f);

  // Q5_0: qh is one little-endian word, bit e the fifth bit of element e (bits 16-31: elements 16-31, the high
  // nibbles' elements).
  block_q5_0 b50{};
  b50.d = k_one;
  std::memset(b50.qs, 0, 16);
  b50.qs[1] = 0x7a;   // element 1 low 10, element 17 low 7
  b50.qh[0] = 0x02;   // bit 1: element 1 gets 16
  b50.qh[2] = 0x02;   // bit 17: element 17 gets 16
  b50.qh[3] = 0x80;   // bit 31: element 31 gets 16
  dequantize_row(dtype::Q5_0, &b50, y, 32);
  EXPECT_EQ(y[1], float(26 - 16));
  EXPECT_EQ(y[17], float(23 - 16));
  EXPECT_EQ(y[31], 0.0f);   // 16 - 16
  EXPECT_EQ(y[0], -16.0f);  // 0 - 16
  EXPECT_EQ(y[16], -16.0f);

  block_q5_1 b51{};
  b51.d = k_quarter;
  b51.m = k_half;
  b51.qs[15] = 0xf0;  // element 15 low 0, element 31 low 15
  b51.qh[1] = 0x80;   // bit 15: element 15 gets 16
  b51.qh[3] = 0x80;   // bit 31: element 31 gets 16
  dequantize_row(dtype::Q5_1, &b51, y, 32);
  EXPECT_EQ(y[15], 0.25f * 16 + 0.5f);
  EXPECT_EQ(y[31], 0.25f * 31 + 0.5f);
  EXPECT_EQ(y[14], 0.5f);
}

TEST(quant_blocks, hand_built_q4_k_and_q5_k) {
  // Sub-block j: scale j + 1, min 2 j; d = 1, dmin = 0.25 -> x = (j + 1) q - j / 2.
  uint8_t sc[8], m[8];
  for (int j = 0; j < 8; ++j) sc[j] = uint8_t(j + 1), m[j] = uint8_t(2 * j);
  block_q4_k b{};
  b.d = k_one;
  b.dmin = k_quarter;
  k_pack_scale_min(b.scales, sc, m);
  b.qs[32 * 2 + 7] = 0xa3;  // chunk 2: element 135 (sub-block 4) = 3, element 167 (sub-block 5) = 10
  std::vector<float> y(256);
  dequantize_row(dtype::Q4_K, &b, y.data(), 256);
  EXPECT_EQ(y[128 + 7], 5.0f * 3 - 2.0f);
  EXPECT_EQ(y[160 + 7], 6.0f * 10 - 2.5f);
  EXPECT_EQ(y[0], 0.0f);
  EXPECT_EQ(y[255], -3.5f);

  block_q5_k b5{};
  b5.d = k_one;
  b5.dmin = k_quarter;
  k_pack_scale_min(b5.scales, sc, m);
  b5.qs[32 * 3 + 1] = 0x21;  // chunk 3: element 193 (sub-block 6) low 1, element 225 (sub-block 7) low 2
  b5.qh[1] = 0x80;           // bit 7 = 2*3 + 1: the fifth bit of element 225 only
  b5.qh[2] = 0x04;           // bit 2 = 2*1: element 64 + 2 (sub-block 2)
  dequantize_row(dtype::Q5_K, &b5, y.data(), 256);
  EXPECT_EQ(y[193], 7.0f * 1 - 3.0f);
  EXPECT_EQ(y[225], 8.0f * 18 - 3.5f);
  EXPECT_EQ(y[66], 3.0f * 16 - 1.0f);
  EXPECT_EQ(y[98], -1.5f);  // sub-block 3 of chunk 1 takes bit 3, which is clear
}

TEST(quant_blocks, hand_built_q6_k) {
  block_q6_k b{};
  b.d = k_half;
  for (int j = 0; j < 16; ++j) b.scales[j] = int8_t(j % 2 ? -(j + 1) : j + 1);
  // Every quant 32 (value 0): low nibble 0, high bits 2 -> qh bits 0b10 in each of the 4 positions.
  std::memset(b.qh, 0xaa, 64);
  // Half 1, l = 20: element 128 + 20 low nibble 5 / element 128+64+20 low nibble 9 live in ql[64 + 20];
  // element 128+32+20 and 128+96+20 in ql[64 + 52]; their high bits in qh[32 + 20], 2 bits each.
  b.ql[64 + 20] = 0x95;
  b.ql[64 + 52] = 0x3c;
  b.qh[32 + 20] = uint8_t(0 | (3 << 2) | (1 << 4) | (2 << 6));
  std::vector<float> y(256);
  dequantize_row(dtype::Q6_K, &b, y.data(), 256);
  // scale index = element / 16: 148 -> 9 (-10), 180 -> 11 (-12), 212 -> 13 (-14), 244 -> 15 (-16).
  EXPECT_EQ(y[148], 0.5f * -10 * float((5 | (0 << 4)) - 32));
  EXPECT_EQ(y[180], 0.5f * -12 * float((12 | (3 << 4)) - 32));
  EXPECT_EQ(y[212], 0.5f * -14 * float((9 | (1 << 4)) - 32));
  EXPECT_EQ(y[244], 0.5f * -16 * float((3 | (2 << 4)) - 32));
  EXPECT_EQ(y[0], 0.0f);
  EXPECT_EQ(y[149], 0.0f);
}

// Bounds at roughly 1.3x the measured relative RMSE on N(0, 1) rows (quantize.h lists the typical values).
TEST(quantize, round_trip_error_bounds) {
  struct bound { dtype t; double max_rel_rmse; };
  const std::vector<float> x = normal(256 * 64, 42);
  for (const bound& b : {bound{dtype::Q8_0, 0.006}, bound{dtype::Q4_0, 0.13}, bound{dtype::Q4_1, 0.09},
                         bound{dtype::Q5_0, 0.052}, bound{dtype::Q5_1, 0.044}, bound{dtype::Q4_K, 0.09},
                         bound{dtype::Q5_K, 0.045}, bound{dtype::Q6_K, 0.022}, bound{dtype::F16, 0.0003},
                         bound{dtype::BF16, 0.003}}) {
    const double e = rel_rmse(x, round_trip(b.t, x));
    EXPECT_LT(e, b.max_rel_rmse) << dtype_name(b.t);
    EXPECT_GT(e, 0.0) << dtype_name(b.t);
  }
  // Scaled data: the error is relative (1e-3 puts Q8_0's f16 scales among the subnormals).
  for (float sd : {1e-3f, 30.0f}) {
    const std::vector<float> xs = normal(256 * 16, 9, sd);
    EXPECT_LT(rel_rmse(xs, round_trip(dtype::Q4_K, xs)), 0.09) << sd;
    EXPECT_LT(rel_rmse(xs, round_trip(dtype::Q8_0, xs)), 0.007) << sd;
    EXPECT_LT(rel_rmse(xs, round_trip(dtype::Q5_0, xs)), 0.052) << sd;
    EXPECT_LT(rel_rmse(xs, round_trip(dtype::Q5_1, xs)), 0.044) << sd;
  }
}

TEST(quantize, q8_0_every_element_within_half_a_step) {
  const std::vector<float> x = normal(32 * 100, 3);
  std::vector<block_q8_0> q(100);
  quantize_row(dtype::Q8_0, x.data(), q.data(), int64_t(x.size()));
  std::vector<float> y(x.size());
  dequantize_row(dtype::Q8_0, q.data(), y.data(), int64_t(x.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    const float d = f16_to_f32(q[i / 32].d);
    // Half a step, plus what the f16 rounding of d (2^-11 relative) moves the largest quant (127).
    ASSERT_LE(std::fabs(x[i] - y[i]), d * (0.5f + 127.0f * 0x1p-11f)) << i;
  }
}

TEST(quantize, scale_searches_beat_plain_rounding) {
  const std::vector<float> x = normal(256 * 64, 5);
  // Q4_0 as ggml's reference rounds it (the largest magnitude onto -8, no search), built by hand.
  std::vector<block_q4_0> plain(x.size() / 32);
  for (size_t b = 0; b < plain.size(); ++b) {
    const float* xb = x.data() + 32 * b;
    float mx = 0;
    for (int e = 0; e < 32; ++e)
      if (std::fabs(xb[e]) > std::fabs(mx)) mx = xb[e];
    const float d = mx / -8.0f, id = d != 0 ? 1.0f / d : 0.0f;
    plain[b].d = f32_to_f16(d);
    for (int e = 0; e < 16; ++e) {
      const int lo = std::min(15, int(xb[e] * id + 8.5f)), hi = std::min(15, int(xb[e + 16] * id + 8.5f));
      plain[b].qs[e] = uint8_t(lo | (hi << 4));
    }
  }
  std::vector<float> y(x.size());
  dequantize_row(dtype::Q4_0, plain.data(), y.data(), int64_t(x.size()));
  EXPECT_LT(rel_rmse(x, round_trip(dtype::Q4_0, x)), 0.95 * rel_rmse(x, y));
  // Q4_K against min/max 4-bit rounding per 32 (unquantized scales, so this bound is generous to it).
  double se = 0, sx = 0;
  for (size_t j = 0; j < x.size() / 32; ++j) {
    const float* xj = x.data() + 32 * j;
    float lo = 0, hi = xj[0];
    for (int e = 0; e < 32; ++e) lo = std::min(lo, xj[e]), hi = std::max(hi, xj[e]);
    const float a = (hi - lo) / 15.0f;
    for (int e = 0; e < 32; ++e) {
      const float v = a * std::nearbyint((xj[e] - lo) / a) + lo;
      se += (v - xj[e]) * (v - xj[e]);
      sx += xj[e] * xj[e];
    }
  }
  EXPECT_LT(rel_rmse(x, round_trip(dtype::Q4_K, x)), 0.95 * std::sqrt(se / sx));
  // Q5_0 as ggml's reference rounds it (largest magnitude onto -16), and Q5_1 / Q4_1 as min/max rounding with f16
  // d and m, both written out here: the searches must do better.
  std::vector<float> r50(x.size()), r51(x.size()), r41(x.size());
  for (size_t b = 0; b < x.size() / 32; ++b) {
    const float* xb = x.data() + 32 * b;
    float mx = 0, lo = xb[0], hi = xb[0];
    for (int e = 0; e < 32; ++e) {
      if (std::fabs(xb[e]) > std::fabs(mx)) mx = xb[e];
      lo = std::min(lo, xb[e]), hi = std::max(hi, xb[e]);
    }
    const float d0 = f16_to_f32(f32_to_f16(mx / -16.0f));
    const float m = f16_to_f32(f32_to_f16(lo));
    const float d1 = f16_to_f32(f32_to_f16((hi - lo) / 31.0f)), d4 = f16_to_f32(f32_to_f16((hi - lo) / 15.0f));
    for (int e = 0; e < 32; ++e) {
      r50[32 * b + e] = d0 * float(std::min(31, int(xb[e] / d0 + 16.5f)) - 16);
      r51[32 * b + e] = d1 * float(std::min(31, int((xb[e] - m) / d1 + 0.5f))) + m;
      r41[32 * b + e] = d4 * float(std::min(15, int((xb[e] - m) / d4 + 0.5f))) + m;
    }
  }
  EXPECT_LT(rel_rmse(x, round_trip(dtype::Q5_0, x)), 0.95 * rel_rmse(x, r50));
  EXPECT_LT(rel_rmse(x, round_trip(dtype::Q5_1, x)), 0.95 * rel_rmse(x, r51));
  EXPECT_LT(rel_rmse(x, round_trip(dtype::Q4_1, x)), 0.95 * rel_rmse(x, r41));
}

TEST(quantize, special_blocks) {
  // All zero: exact zeros back. One constant negative block: the min alone represents it.
  std::vector<float> x(512, 0.0f);
  for (dtype t : {dtype::Q8_0, dtype::Q4_0, dtype::Q4_1, dtype::Q5_0, dtype::Q5_1, dtype::Q4_K, dtype::Q5_K,
                  dtype::Q6_K})
    for (float v : round_trip(t, x)) ASSERT_EQ(v, 0.0f) << dtype_name(t);
  for (int e = 0; e < 32; ++e) x[size_t(e)] = -0.75f;
  for (dtype t : {dtype::Q4_K, dtype::Q5_K}) {
    const std::vector<float> y = round_trip(t, x);
    for (int e = 0; e < 32; ++e) EXPECT_NEAR(y[size_t(e)], -0.75f, 1e-3f) << dtype_name(t);
    EXPECT_EQ(y[40], 0.0f);
  }
  // Q4_1 / Q5_1 add a min of either sign: a constant block of either sign is its min alone (f16-exact here).
  for (float v : {-0.75f, 2.5f}) {
    std::vector<float> c(64, v);
    for (int e = 32; e < 64; ++e) c[size_t(e)] = float(e - 48) / 8.0f;  // a second block spanning 0
    for (dtype t : {dtype::Q4_1, dtype::Q5_1}) {
      const std::vector<float> y = round_trip(t, c);
      for (int e = 0; e < 32; ++e) ASSERT_EQ(y[size_t(e)], v) << dtype_name(t);
      for (int e = 32; e < 64; ++e) EXPECT_NEAR(y[size_t(e)], c[size_t(e)], t == dtype::Q5_1 ? 0.03f : 0.07f);
    }
  }
  // One large outlier beside small values keeps its own value closely in the 16-element Q6_K sub-block.
  std::vector<float> o = normal(256, 11, 0.01f);
  o[100] = 5.0f;
  EXPECT_NEAR(round_trip(dtype::Q6_K, o)[100], 5.0f, 0.05f);
}

TEST(quantize, deterministic_and_pool_independent) {
  const int64_t rows = 37, cols = 512;
  const std::vector<float> x = normal(size_t(rows * cols), 77);
  thread_pool pool(3);
  for (dtype t : {dtype::Q8_0, dtype::Q4_0, dtype::Q4_1, dtype::Q5_0, dtype::Q5_1, dtype::Q4_K, dtype::Q5_K,
                  dtype::Q6_K}) {
    const size_t bytes = dtype_row_bytes(t, cols) * size_t(rows);
    std::vector<uint8_t> a(bytes), b(bytes);
    quantize_rows(t, x.data(), a.data(), rows, cols, nullptr);
    quantize_rows(t, x.data(), b.data(), rows, cols, &pool);
    EXPECT_EQ(a, b) << dtype_name(t);
  }
}

TEST(quantize, i8_per_channel) {
  const int64_t rows = 5, cols = 100;
  std::vector<float> x = normal(size_t(rows * cols), 13);
  for (int64_t c = 0; c < cols; ++c) x[size_t(2 * cols + c)] = 0.0f;  // an all-zero row
  std::vector<int8_t> q(x.size());
  std::vector<float> s(static_cast<size_t>(rows));
  quantize_rows_i8(x.data(), q.data(), s.data(), rows, cols);
  EXPECT_EQ(s[2], 0.0f);
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<float> y(static_cast<size_t>(cols));
    dequantize_row_i8(q.data() + r * cols, s[size_t(r)], y.data(), cols);
    for (int64_t c = 0; c < cols; ++c)
      ASSERT_LE(std::fabs(y[size_t(c)] - x[size_t(r * cols + c)]), 0.5f * s[size_t(r)] * 1.0001f);
  }
  tensor src = tensor::view(x.data(), dtype::F32, {rows, cols}), scales;
  tensor out = quantize_tensor(src, dtype::I8, &scales);
  EXPECT_EQ(std::memcmp(out.data(), q.data(), q.size()), 0);
  EXPECT_EQ(scales.ptr<float>()[4], s[4]);
}

TEST(quantize, tensor_from_bf16) {
  const std::vector<float> x = normal(4 * 256, 21);
  std::vector<uint16_t> bf(x.size());
  std::vector<float> xr(x.size());
  for (size_t i = 0; i < x.size(); ++i) bf[i] = f32_to_bf16(x[i]), xr[i] = bf16_to_f32(bf[i]);
  const tensor q = quantize_tensor(tensor::view(bf.data(), dtype::BF16, {4, 256}), dtype::Q4_K);
  std::vector<uint8_t> direct(dtype_row_bytes(dtype::Q4_K, 256) * 4);
  quantize_rows(dtype::Q4_K, xr.data(), direct.data(), 4, 256);
  ASSERT_EQ(q.n_bytes(), direct.size());
  EXPECT_EQ(std::memcmp(q.data(), direct.data(), direct.size()), 0);
}

TEST(quantize, errors_a_user_can_act_on) {
  std::vector<float> x(300, 1.0f);
  std::vector<uint8_t> out(4096);
  try {
    quantize_row(dtype::Q4_K, x.data(), out.data(), 300);
    FAIL() << "a 300-element Q4_K row was accepted";
  } catch (const error& e) {
    EXPECT_NE(std::string(e.what()).find("Q4_K"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("300"), std::string::npos) << e.what();
  }
  EXPECT_THROW(quantize_row(dtype::I32, x.data(), out.data(), 32), error);
  x[40] = NAN;
  try {
    quantize_rows(dtype::Q8_0, x.data(), out.data(), 2, 64);
    FAIL() << "NaN accepted";
  } catch (const error& e) {
    EXPECT_NE(std::string(e.what()).find("row 0"), std::string::npos) << e.what();
  }
  std::vector<float> ok(64, 1.0f);
  EXPECT_THROW(quantize_tensor(tensor::view(ok.data(), dtype::F32, {2, 32}), dtype::I8, nullptr), error);
  std::vector<int32_t> ints(64);
  EXPECT_THROW(quantize_tensor(tensor::view(ints.data(), dtype::I32, {2, 32}), dtype::Q8_0), error);
}

// llama.cpp's rule (llama-quant.cpp): a row that is not whole k-quant blocks goes Q4_K -> Q5_0, Q5_K -> Q5_1,
// Q6_K -> Q8_0, and to F16 when the fallback does not divide it either.
TEST(quantize, fallback_types) {
  EXPECT_EQ(fallback_type(dtype::Q4_K, 4096), dtype::Q4_K);
  EXPECT_EQ(fallback_type(dtype::Q4_K, 13696), dtype::Q5_0);  // the 9B down_proj input width
  EXPECT_EQ(fallback_type(dtype::Q5_K, 13696), dtype::Q5_1);
  EXPECT_EQ(fallback_type(dtype::Q6_K, 13696), dtype::Q8_0);
  EXPECT_EQ(fallback_type(dtype::Q4_K, 128), dtype::Q5_0);
  EXPECT_EQ(fallback_type(dtype::Q5_K, 180), dtype::F16);  // not even 32 divides it
  EXPECT_EQ(fallback_type(dtype::Q8_0, 100), dtype::F16);
  EXPECT_EQ(fallback_type(dtype::Q5_0, 100), dtype::F16);
  EXPECT_EQ(fallback_type(dtype::Q5_1, 64), dtype::Q5_1);
  EXPECT_EQ(fallback_type(dtype::BF16, 7), dtype::BF16);
}

}  // namespace
}  // namespace autoglm::quant
