// ops: the dispatch point's contract: a missing (op, device, dtype) is an error naming all three, operand
// checks stop mismatched shapes before any kernel runs, the scratch arena keeps handed-out tensors valid while
// it grows and reuses its memory after reset, and CPU host memory is registered.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/kernel_registry.h"
#include "ops/ops.h"

namespace autoglm {
namespace {

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const error& e) {
    return e.what();
  }
  return "";
}

TEST(kernel_registry, missing_kernel_names_op_device_and_dtype) {
  ops::init_backends();
  const std::string msg =
      error_of([] { kernel_registry::instance().get(op_id::EMBEDDING, device_kind::CPU, dtype::I8); });
  EXPECT_NE(msg.find("embedding"), std::string::npos) << msg;
  EXPECT_NE(msg.find("cpu"), std::string::npos) << msg;
  EXPECT_NE(msg.find("I8"), std::string::npos) << msg;
}

TEST(kernel_registry, missing_kernel_through_ops_names_all_three) {
  exec_context ctx;
  // A U8 weight [8, 64]: addressable by the tensor API, but no CPU linear kernel takes raw bytes.
  std::vector<uint8_t> wbytes(dtype_row_bytes(dtype::Q8_0, 64) * 8);
  linear_weight w;
  w.weight = tensor::view(wbytes.data(), dtype::U8, {8, 64});
  w.name = "blk.0.attn_q.weight";
  tensor x = ops::scratch(ctx, dtype::F32, {2, 64}), y = ops::scratch(ctx, dtype::F32, {2, 8});
  const std::string msg = error_of([&] { ops::linear(ctx, x, w, y); });
  EXPECT_NE(msg.find("no kernel for linear on cpu with U8"), std::string::npos) << msg;
  // An I8 embedding table: the linear kernels take I8 (with per-row scales), the gather has no I8 kernel (the
  // GGUF block types have one: kernels/cpu/quant_embedding.h).
  std::vector<int8_t> i8_table(8 * 64);
  tensor bad_table = tensor::view(i8_table.data(), dtype::I8, {8, 64});
  tensor ids = ops::scratch(ctx, dtype::I32, {2}), out = ops::scratch(ctx, dtype::F32, {2, 64});
  std::memset(ids.data(), 0, 8);
  const std::string msg2 = error_of([&] { ops::embedding(ctx, bad_table, ids, out); });
  EXPECT_NE(msg2.find("embedding"), std::string::npos) << msg2;
  EXPECT_NE(msg2.find("I8"), std::string::npos) << msg2;
}

TEST(kernel_registry, a_device_without_backend_is_an_error_naming_it) {
  ops::init_backends();
  if (kernel_registry::instance().has(op_id::SOFTMAX, device_kind::CUDA, dtype::F32)) GTEST_SKIP() << "CUDA built";
  const std::string msg =
      error_of([] { kernel_registry::instance().get(op_id::SOFTMAX, device_kind::CUDA, dtype::F32); });
  EXPECT_NE(msg.find("softmax"), std::string::npos) << msg;
  EXPECT_NE(msg.find("cuda"), std::string::npos) << msg;
  EXPECT_NE(msg.find("F32"), std::string::npos) << msg;
  const std::string ctx_msg = error_of([] { exec_context ctx(device{device_kind::CUDA, 0}); });
  EXPECT_NE(ctx_msg.find("cuda"), std::string::npos) << ctx_msg;
}

TEST(ops_death, mismatched_linear_shapes_stop_before_the_kernel) {
  exec_context ctx(device{}, 1);
  std::vector<float> wv(8 * 16);
  linear_weight w;
  w.weight = tensor::view(wv.data(), dtype::F32, {8, 16});
  w.name = "w";
  tensor x = ops::scratch(ctx, dtype::F32, {2, 15}), y = ops::scratch(ctx, dtype::F32, {2, 8});
  EXPECT_DEATH(ops::linear(ctx, x, w, y), "does not match weight 'w'");
}

TEST(ops, the_cpu_takes_f32_gemm_inputs_and_refuses_bf16_activations) {
  exec_context ctx(device{}, 1);
  for (int64_t rows : {1, 8, 9, 4096}) EXPECT_EQ(ops::gemm_input_type(ctx, rows), dtype::F32) << rows;
  std::vector<float> wv(8 * 16, 0.5f), nw(16, 1.0f);
  linear_weight w;
  w.weight = tensor::view(wv.data(), dtype::F32, {8, 16});
  w.name = "w";
  tensor x16 = ops::scratch(ctx, dtype::BF16, {2, 16}), y = ops::scratch(ctx, dtype::F32, {2, 8});
  EXPECT_DEATH(ops::linear(ctx, x16, w, y), "linear: x must be F32 on cpu, is BF16");
  tensor x = ops::scratch(ctx, dtype::F32, {2, 16}), h16 = ops::scratch(ctx, dtype::BF16, {2, 16});
  EXPECT_DEATH(ops::rms_norm(ctx, x, tensor::view(nw.data(), dtype::F32, {16}), 1e-5f, h16),
               "rms_norm: y must be F32 on cpu, is BF16");
  tensor g16 = ops::scratch(ctx, dtype::BF16, {2, 16});
  EXPECT_DEATH(ops::silu_mul(ctx, g16, g16, g16), "silu_mul: gate must be F32 on cpu, is BF16");
}

TEST(scratch_arena, tensors_stay_valid_while_chunks_are_added) {
  exec_context ctx(device{}, 1);
  scratch_arena& a = ctx.arena();
  tensor first = a.alloc(dtype::F32, {1000});
  for (int i = 0; i < 1000; ++i) first.ptr<float>()[i] = float(i);
  const size_t reserved0 = a.bytes_reserved();
  // Far more than the first chunk: new chunks are added, the first is never moved.
  std::vector<tensor> more;
  for (int i = 0; i < 6; ++i) {
    more.push_back(a.alloc(dtype::F32, {int64_t(1) << 20}));  // 4 MiB each
    std::memset(more.back().data(), 0x5a, more.back().n_bytes());
  }
  EXPECT_GT(a.bytes_reserved(), reserved0);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(first.ptr<float>()[i], float(i));
  for (const tensor& t : more) EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data()) % 256, 0u) << "256-byte aligned";
  EXPECT_GE(a.high_water(), size_t(6) << 22);
}

TEST(scratch_arena, reset_reuses_memory_and_stops_growing) {
  exec_context ctx(device{}, 1);
  scratch_arena& a = ctx.arena();
  auto pass = [&] {
    std::vector<void*> ptrs;
    for (int i = 0; i < 5; ++i) ptrs.push_back(a.alloc(dtype::BF16, {3, int64_t(1) << 20}).data());
    return ptrs;
  };
  pass();
  a.reset();  // merges the chunks of the first pass into one
  const size_t reserved = a.bytes_reserved();
  const std::vector<void*> second = pass();
  a.reset();
  const std::vector<void*> third = pass();
  EXPECT_EQ(a.bytes_reserved(), reserved) << "a pass of the same size must not allocate again";
  EXPECT_EQ(second, third) << "after reset the same allocations land at the same addresses";
}

TEST(ops, cpu_host_memory_is_registered) {
  ops::init_backends();
  const device_memory& mem = kernel_registry::instance().memory(device_kind::CPU);
  void* p = mem.alloc(device{}, 1000);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u);
  const char src[] = "abc";
  mem.copy(kernel_context{}, p, src, 4, true, true);
  mem.synchronize(kernel_context{});
  EXPECT_STREQ(static_cast<char*>(p), "abc");
  mem.free(device{}, p);
}

TEST(ops, host_f32_converts_and_compacts_views) {
  exec_context ctx(device{}, 2);
  tensor t = tensor::empty_host(dtype::BF16, {3, 4});
  for (int i = 0; i < 12; ++i) t.ptr<uint16_t>()[i] = f32_to_bf16(float(i) * 0.5f);
  tensor h = ops::host_f32(ctx, t.cols_view(1, 2));
  ASSERT_EQ(h.shape(), (std::vector<int64_t>{3, 2}));
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 2; ++c) EXPECT_EQ(h.ptr<float>()[r * 2 + c], float(r * 4 + c + 1) * 0.5f);
}

TEST(ops, host_f32_of_a_permuted_view) {
  // [2, 3, 4] read as its (0, 2, 1) permute [2, 4, 3]: leading dims that do not collapse into rows.
  exec_context ctx(device{}, 2);
  std::vector<float> buf(24);
  for (int i = 0; i < 24; ++i) buf[size_t(i)] = float(i);
  tensor p = tensor::strided(buf.data(), dtype::F32, {2, 4, 3}, {48, 4, 16});
  tensor h = ops::host_f32(ctx, p);
  ASSERT_EQ(h.shape(), (std::vector<int64_t>{8, 3}));
  for (int a = 0; a < 2; ++a)
    for (int c = 0; c < 4; ++c)
      for (int b = 0; b < 3; ++b) EXPECT_EQ(h.ptr<float>()[(a * 4 + c) * 3 + b], float(a * 12 + b * 4 + c));
}

}  // namespace
}  // namespace autoglm
