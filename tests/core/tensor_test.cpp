// core: the dtype traits table (plain and GGUF block types addressable by row bytes) and tensor views (rows,
// block-aligned columns, reshape, strides), the addressing every kernel relies on.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/tensor.h"

namespace autoglm {
namespace {

TEST(dtype_traits, row_bytes_of_plain_and_block_types) {
  EXPECT_EQ(dtype_row_bytes(dtype::F32, 7), 28u);
  EXPECT_EQ(dtype_row_bytes(dtype::BF16, 7), 14u);
  EXPECT_EQ(dtype_row_bytes(dtype::I8, 7), 7u);
  EXPECT_EQ(dtype_row_bytes(dtype::Q8_0, 4096), 4096u / 32 * 34);
  EXPECT_EQ(dtype_row_bytes(dtype::Q4_0, 64), 2u * 18);
  EXPECT_EQ(dtype_row_bytes(dtype::Q4_K, 512), 2u * 144);
  EXPECT_EQ(dtype_row_bytes(dtype::Q5_K, 256), 176u);
  EXPECT_EQ(dtype_row_bytes(dtype::Q6_K, 256), 210u);
  EXPECT_TRUE(dtype_row_fits(dtype::Q4_K, 768));
  EXPECT_FALSE(dtype_row_fits(dtype::Q4_K, 100));
  EXPECT_FALSE(dtype_row_fits(dtype::Q8_0, -32));
  EXPECT_TRUE(dtype_is_block(dtype::Q6_K));
  EXPECT_FALSE(dtype_is_block(dtype::BF16));
}

TEST(dtype_traits, names_parse_case_insensitively) {
  dtype t = dtype::F32;
  ASSERT_TRUE(dtype_from_name("q4_k", t));
  EXPECT_EQ(t, dtype::Q4_K);
  ASSERT_TRUE(dtype_from_name("Bf16", t));
  EXPECT_EQ(t, dtype::BF16);
  EXPECT_FALSE(dtype_from_name("q4", t));
  EXPECT_FALSE(dtype_from_safetensors("Q4_K", t)) << "safetensors has no GGUF block types";
}

TEST(dtype_traits_death, element_size_of_a_block_type_is_a_programmer_error) {
  EXPECT_DEATH(dtype_size(dtype::Q8_0), "block type");
  EXPECT_DEATH(dtype_row_bytes(dtype::Q4_K, 100), "whole blocks");
}

TEST(dtype_conversions, f16_round_trip_and_rounding) {
  for (float f : {0.0f, 1.0f, -2.5f, 65504.0f, 0x1p-24f, 0x1p-14f, 3.140625f}) EXPECT_EQ(f16_to_f32(f32_to_f16(f)), f) << f;
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00) << "overflow rounds to infinity";
  EXPECT_EQ(f32_to_f16(1.0f + 0x1p-11f), f32_to_f16(1.0f)) << "tie to even";
  EXPECT_EQ(f32_to_bf16(1.0f + 0x1p-8f), 0x3f80) << "tie to even";
  EXPECT_EQ(f32_to_bf16(1.0f + 0x1.8p-8f), 0x3f81);
}

TEST(tensor, contiguous_strides_and_rows) {
  std::vector<float> buf(2 * 3 * 4);
  tensor t = tensor::view(buf.data(), dtype::F32, {2, 3, 4});
  EXPECT_EQ(t.stride(0), 48);
  EXPECT_EQ(t.stride(1), 16);
  EXPECT_EQ(t.stride(-1), 4);
  EXPECT_EQ(t.rows(), 6);
  EXPECT_EQ(t.cols(), 4);
  EXPECT_EQ(t.row_stride(), 16);
  EXPECT_EQ(t.row(5), reinterpret_cast<uint8_t*>(buf.data() + 20));
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_EQ(t.n_bytes(), 96u);
}

TEST(tensor, rows_view_and_cols_view_share_storage) {
  std::vector<float> buf(5 * 8);
  tensor t = tensor::view(buf.data(), dtype::F32, {5, 8});
  tensor r = t.rows_view(1, 3);
  EXPECT_EQ(r.shape(), (std::vector<int64_t>{3, 8}));
  EXPECT_EQ(r.data(), buf.data() + 8);
  tensor c = t.cols_view(2, 3);
  EXPECT_EQ(c.shape(), (std::vector<int64_t>{5, 3}));
  EXPECT_EQ(c.data(), buf.data() + 2);
  EXPECT_EQ(c.row_stride(), 32) << "a column view keeps the parent's row stride";
  EXPECT_FALSE(c.is_contiguous());
  // A column view of a row view: both offsets apply.
  tensor rc = t.rows_view(2, 2).cols_view(5, 3);
  EXPECT_EQ(rc.data(), buf.data() + 2 * 8 + 5);
  EXPECT_EQ(rc.row(1), reinterpret_cast<uint8_t*>(buf.data() + 3 * 8 + 5));
}

TEST(tensor, block_dtype_rows_and_columns_are_addressed_by_blocks) {
  // Q8_0 [3, 128]: 4 blocks of 34 bytes per row.
  std::vector<uint8_t> buf(3 * 4 * 34);
  tensor t = tensor::view(buf.data(), dtype::Q8_0, {3, 128});
  EXPECT_EQ(t.row_stride(), 136);
  EXPECT_EQ(t.n_bytes(), buf.size());
  EXPECT_EQ(t.row(2), buf.data() + 272);
  tensor c = t.cols_view(32, 64);  // blocks 1 and 2 of every row
  EXPECT_EQ(c.data(), buf.data() + 34);
  EXPECT_EQ(c.row_stride(), 136);
  EXPECT_EQ(c.cols(), 64);
  tensor r = t.rows_view(1, 2);
  EXPECT_EQ(r.data(), buf.data() + 136);
  tensor k = tensor::view(buf.data(), dtype::Q4_K, {1, 512});
  EXPECT_EQ(k.n_bytes(), 288u);
}

TEST(tensor_death, block_columns_must_start_and_end_on_a_block) {
  std::vector<uint8_t> buf(3 * 4 * 34);
  tensor t = tensor::view(buf.data(), dtype::Q8_0, {3, 128});
  EXPECT_DEATH(t.cols_view(16, 32), "start and end on a block");
  EXPECT_DEATH(tensor::view(buf.data(), dtype::Q8_0, {3, 100}), "whole number of blocks");
}

TEST(tensor, reshape_keeps_bytes_and_owner) {
  tensor t = tensor::empty_host(dtype::BF16, {2, 3, 4});
  tensor r = t.reshape({6, 4});
  EXPECT_EQ(r.data(), t.data());
  EXPECT_EQ(r.owner(), t.owner());
  EXPECT_EQ(r.row_stride(), 8);
  tensor q = tensor::empty_host(dtype::Q4_0, {4, 64}).reshape({2, 128});
  EXPECT_EQ(q.row_stride(), 4 * 18);
}

TEST(tensor_death, reshape_of_a_strided_view_is_refused) {
  tensor t = tensor::empty_host(dtype::F32, {4, 6});
  EXPECT_DEATH(t.cols_view(0, 3).reshape({12}), "non-contiguous");
  EXPECT_DEATH(t.reshape({5, 5}), "reshape");
}

TEST(tensor, strided_views_describe_permutes) {
  // [2, 3] read as its transpose [3, 2].
  std::vector<float> buf = {0, 1, 2, 3, 4, 5};
  tensor t = tensor::strided(buf.data(), dtype::F32, {3, 2}, {4, 12});
  EXPECT_FALSE(t.is_contiguous());
  EXPECT_EQ(t.stride(0), 4);
  EXPECT_EQ(t.stride(1), 12);
  EXPECT_EQ(t.n_elements(), 6);
}

TEST(device, parse_and_print) {
  EXPECT_EQ(device::parse("cpu").str(), "cpu");
  EXPECT_EQ(device::parse("cuda").str(), "cuda:0");
  EXPECT_EQ(device::parse("cuda:3").str(), "cuda:3");
  EXPECT_THROW(device::parse("gpu"), error);
  EXPECT_THROW(device::parse("cuda:x"), error);
}

}  // namespace
}  // namespace autoglm
