// tests/kernels/quant_repack_test.cpp: Q4_0/Q4_1/Q5_0/Q5_1/Q8_0/Q4_K/Q5_K/Q6_K weights in the r16 layout
// (kernels/cpu/quant_repack.h).
//  - Packing then unpacking gives the file's rows back byte for byte (row counts off the 16-row tiles, a strided
//    source, one group); the C++ and AVX-512 packers write the same bytes.
//  - LINEAR, LINEAR_SWIGLU and LINEAR_ADD of a weight with its r16 copy give the bytes of the same weight without it:
//    every row count of the decode (1-3 rows: the AVX-512 r16 decode where the CPU has it) and of the prefill (the
//    AMX tiles under ROUNDED on an AMX host, the file-layout paths on unpacked slabs otherwise), on every ISA path the
//    CPU offers, with and without bias.
//  - The AMX GEMM over r16 rows (emulated tiles everywhere, the real ones on an AMX host) gives the bits of the same
//    GEMM over the file's rows.
//  - The load policy: AUTOGLM_CPU_REPACK=0 never repacks, =1 repacks wherever the r16 decode exists, and the automatic
//    choice never repacks weights that are not in a file mapping.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/env_scope.h"
#include "core/thread_pool.h"
#include "formats/quantize.h"
#include "kernels/cpu/amx.h"
#include "kernels/cpu/convert.h"
#include "kernels/cpu/gemm_amx.h"
#include "kernels/cpu/gemm_bf16.h"
#include "kernels/cpu/quant_linear.h"
#include "kernels/cpu/quant_repack.h"
#include "ops/ops.h"

namespace autoglm::cpu {
namespace {

std::vector<float> normal(size_t n, float scale, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<float> nd(0.0f, scale);
  std::vector<float> v(n);
  for (float& f : v) f = nd(gen);
  return v;
}

tensor quantized(dtype t, int64_t n, int64_t k, uint64_t seed) {
  const std::vector<float> w = normal(size_t(n * k), 0.05f, seed);
  return quant::quantize_tensor(tensor::view(w.data(), dtype::F32, {n, k}), t);
}

using autoglm::test_support::env_scope;

struct isa_scope {
  explicit isa_scope(quant_isa isa) { force_quant_isa(isa); }
  ~isa_scope() { force_quant_isa(quant_isa::COUNT); }
};

TEST(quant_repack, pack_then_unpack_gives_the_rows_back) {
  thread_pool two(2);
  for (dtype t : {dtype::Q4_0, dtype::Q4_1, dtype::Q5_0, dtype::Q5_1, dtype::Q8_0, dtype::Q4_K, dtype::Q5_K,
                  dtype::Q6_K})
    for (int64_t n : {1, 16, 37})
      for (int64_t k : {32, 96, 512}) {
        if (k % int64_t(dtype_block_elems(t))) continue;
        const tensor w = quantized(t, n, k, uint64_t(n * 1000 + k));
        const r16_layout L = r16_layout_of(t, n, k);
        EXPECT_EQ(L.n_tiles, (n + 15) / 16);
        EXPECT_EQ(L.tile_bytes % 64, 0);
        const tensor p = r16_pack(w, &two);
        ASSERT_EQ(p.n_bytes(), size_t(L.bytes()));
        EXPECT_EQ(uintptr_t(p.data()) % 64, 0u);
        const int64_t rb = w.row_stride();
        std::vector<uint8_t> back(size_t(n * rb));
        r16_unpack_rows(L, static_cast<const uint8_t*>(p.data()), 0, n, back.data(), rb);
        EXPECT_EQ(std::memcmp(back.data(), w.data(), back.size()), 0) << dtype_name(t) << " n " << n << " k " << k;
        // The C++ packer (every CPU) writes the bytes of the AVX-512 one, padding included.
        force_portable_kernels(true);
        const tensor pp = r16_pack(w, &two);
        force_portable_kernels(false);
        EXPECT_EQ(std::memcmp(pp.data(), p.data(), p.n_bytes()), 0) << dtype_name(t) << " n " << n << " k " << k;
        // A middle slab, as the prefill's unpacked path takes them.
        if (n > 17) {
          std::vector<uint8_t> part(size_t(5 * rb));
          r16_unpack_rows(L, static_cast<const uint8_t*>(p.data()), 13, 5, part.data(), rb);
          EXPECT_EQ(std::memcmp(part.data(), w.row(13), part.size()), 0);
        }
      }
  // A strided source: every other row of a larger weight.
  const tensor big = quantized(dtype::Q4_0, 40, 64, 3);
  const tensor every_other = big.reshape({20, 128}).cols_view(0, 64);  // row i: the first half, big's row 2i
  const tensor p = r16_pack(every_other, nullptr);
  const r16_layout L = r16_layout_of(dtype::Q4_0, 20, 64);
  const int64_t rb = int64_t(dtype_row_bytes(dtype::Q4_0, 64));
  std::vector<uint8_t> back(size_t(20 * rb));
  r16_unpack_rows(L, static_cast<const uint8_t*>(p.data()), 0, 20, back.data(), rb);
  for (int64_t i = 0; i < 20; ++i) EXPECT_EQ(std::memcmp(back.data() + i * rb, big.row(2 * i), size_t(rb)), 0) << i;
}

// y of LINEAR / LINEAR_SWIGLU / LINEAR_ADD through ops, for a weight with or without its r16 copy.
std::vector<float> run_op(int which, const tensor& x, const linear_weight& lw, int64_t n, int threads) {
  exec_context ctx(device{}, threads);
  const int64_t m = x.rows();
  const int64_t out = which == 1 ? n / 2 : n;
  std::vector<float> y(size_t(m * out), 0.25f), tmp(size_t(m * n));
  tensor yt = tensor::view(y.data(), dtype::F32, {m, out}), tt = tensor::view(tmp.data(), dtype::F32, {m, n});
  if (which == 0) ops::linear(ctx, x, lw, yt);
  else if (which == 1) ops::linear_swiglu(ctx, x, lw, tt, yt);
  else ops::linear_add(ctx, x, lw, tt, yt);
  return y;
}

TEST(quant_repack, linear_with_the_copy_gives_the_bytes_of_the_file_layout) {
  std::vector<quant_isa> isas;
  for (int i = 0; i < int(quant_isa::COUNT); ++i)
    if (quant_isa_available(quant_isa(i))) isas.push_back(quant_isa(i));
  int compared = 0;
  for (dtype t : {dtype::Q4_0, dtype::Q4_1, dtype::Q5_0, dtype::Q5_1, dtype::Q8_0, dtype::Q4_K, dtype::Q5_K,
                  dtype::Q6_K})
    for (int64_t n : {16, 38, 130})
      for (int64_t k : {256, 512}) {
        linear_weight plain;
        plain.weight = quantized(t, n, k, uint64_t(n * 31 + k));
        plain.name = "w";
        const std::vector<float> b = normal(size_t(n), 1.0f, 7);
        linear_weight packed = plain;
        packed.repacked = r16_pack(plain.weight, nullptr);
        for (int64_t m : {1, 2, 3, 4, 17, 40})
          for (bool bias : {false, true})
            for (cpu_gemm_precision prec : {cpu_gemm_precision::EXACT, cpu_gemm_precision::ROUNDED})
              for (quant_isa isa : isas) {
                const cpu_gemm_precision_scope ps(prec);
                const isa_scope is(isa);
                const std::vector<float> xv = normal(size_t(m * k), 1.0f, uint64_t(m));
                const tensor x = tensor::view(xv.data(), dtype::F32, {m, k});
                linear_weight a = plain, r = packed;
                if (bias) a.bias = r.bias = tensor::view(b.data(), dtype::F32, {n});
                for (int which : {0, 1, 2}) {
                  if (which == 1 && n % 2) continue;
                  const std::string what = std::string(dtype_name(t)) + " n " + std::to_string(n) + " k " +
                                           std::to_string(k) + " m " + std::to_string(m) + (bias ? " bias " : " ") +
                                           quant_isa_name(isa) + (prec == cpu_gemm_precision::EXACT ? " exact" : "") +
                                           " op " + std::to_string(which);
                  const std::vector<float> want = run_op(which, x, a, n, 2), got = run_op(which, x, r, n, 2);
                  ASSERT_EQ(std::memcmp(want.data(), got.data(), want.size() * 4), 0) << what;
                  ++compared;
                }
              }
      }
  EXPECT_GT(compared, 0);
}

TEST(quant_repack, amx_gemm_reads_the_layout_as_the_file_rows) {
  thread_pool three(3);
  const bool hw = amx_bf16_usable();
  using gemm_fn = void (*)(thread_pool*, const float*, int64_t, int64_t, const weight_rows&, int64_t, int64_t,
                           const float*, float*, int64_t, const float*);
  for (dtype t : {dtype::Q4_0, dtype::Q4_1, dtype::Q5_0, dtype::Q5_1, dtype::Q8_0, dtype::Q4_K, dtype::Q5_K,
                  dtype::Q6_K})
    for (int64_t n : {16, 40, 97})
      for (int64_t m : {16, 70}) {
        const int64_t k = dtype_block_elems(t) == 256 ? 256 : 96;
        const tensor w = quantized(t, n, k, uint64_t(n + m));
        const tensor p = r16_pack(w, &three);
        const r16_layout L = r16_layout_of(t, n, k);
        const std::vector<float> x = normal(size_t(m * k), 1.0f, 11), b = normal(size_t(n), 1.0f, 12);
        const weight_rows plain{t, static_cast<const uint8_t*>(w.data()), w.row_stride()};
        const weight_rows r16{t, static_cast<const uint8_t*>(p.data()), 0, &L};
        for (gemm_fn fn : {&gemm_bf16_amx_emulated, hw ? &gemm_bf16_amx : &gemm_bf16_amx_emulated})
          for (thread_pool* pool : {&three, static_cast<thread_pool*>(nullptr)}) {
            std::vector<float> want(size_t(m * n)), got(size_t(m * n));
            fn(pool, x.data(), k, m, plain, n, k, b.data(), want.data(), n, nullptr);
            fn(pool, x.data(), k, m, r16, n, k, b.data(), got.data(), n, nullptr);
            EXPECT_EQ(std::memcmp(want.data(), got.data(), want.size() * 4), 0)
                << dtype_name(t) << " n " << n << " m " << m << (pool ? "" : " one thread");
          }
      }
}

TEST(quant_repack, load_policy) {
  const tensor w = quantized(dtype::Q4_0, 32, 64, 5);
  const kernel_context kc;
  {
    env_scope off("AUTOGLM_CPU_REPACK", "0");
    EXPECT_TRUE(repack_weight_kernel(kc, w, true, {}).empty());
  }
  {
    env_scope on("AUTOGLM_CPU_REPACK", "1");
    EXPECT_EQ(repack_weight_kernel(kc, w, false, {}).empty(), !r16_decode_available());
  }
  {
    env_scope automatic("AUTOGLM_CPU_REPACK", "");
    EXPECT_TRUE(repack_weight_kernel(kc, w, false, {}).empty()) << "a weight in process memory would be held twice";
    EXPECT_EQ(repack_weight_kernel(kc, w, true, {}).empty(), !(r16_decode_available() && amx_bf16_usable()));
  }
  // Other types have no layout.
  env_scope on("AUTOGLM_CPU_REPACK", "1");
  EXPECT_TRUE(repack_weight_kernel(kc, tensor::empty_host(dtype::BF16, {4, 256}), true, {}).empty());
}

}  // namespace
}  // namespace autoglm::cpu
