// GGUF container: write -> read round trips (every metadata type, every block type, custom alignment) give back
// identical metadata and bytes; every malformed file (bad magic/version, counts past the file, truncation at
// every byte, unknown types, overflowing shapes, offsets past the end or misaligned, overlaps, duplicates) is an
// autoglm::error naming the file and the item, never a crash.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>

#include "core/error.h"
#include "formats/gguf.h"

using namespace autoglm;
namespace fs = std::filesystem;

namespace {

std::string temp_dir() {
  auto d = fs::temp_directory_path() / ("autoglm_gguf_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

std::string write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

std::string error_of(const std::string& path) {
  try {
    gguf_file f(path);
  } catch (const error& e) {
    return e.what();
  }
  return "";
}

// Builds GGUF bytes field by field, so a test can write exactly the malformed field it wants.
struct bytes_builder {
  std::string b;
  bytes_builder& u32(uint32_t v) { return raw(v, 4); }
  bytes_builder& u64(uint64_t v) { return raw(v, 8); }
  bytes_builder& raw(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) b.push_back(char((v >> (8 * i)) & 0xff));
    return *this;
  }
  bytes_builder& str(const std::string& s) {
    u64(s.size());
    b += s;
    return *this;
  }
  bytes_builder& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    b += "GGUF";
    u32(version);
    u64(n_tensors);
    return u64(n_kv);
  }
  bytes_builder& kv_u32(const std::string& key, uint32_t v) { return str(key).u32(4).u32(v); }
  // A tensor info: name, dims (innermost first), ggml type, offset.
  bytes_builder& tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
    str(name).u32(uint32_t(ne.size()));
    for (uint64_t d : ne) u64(d);
    return u32(type).u64(offset);
  }
  bytes_builder& pad(size_t alignment) {
    while (b.size() % alignment) b.push_back('\0');
    return *this;
  }
  bytes_builder& data(size_t n, char fill = 1) {
    b.append(n, fill);
    return *this;
  }
};

// One F32 [2, 4] tensor "w" and one u32 key: the smallest useful valid file.
std::string valid_small() {
  bytes_builder f;
  f.header(1, 1).kv_u32("general.k", 7).tensor("w", {4, 2}, 0, 0).pad(32).data(32);
  return f.b;
}

}  // namespace

TEST(gguf, round_trip_metadata_and_tensors) {
  const std::string dir = temp_dir();
  std::mt19937 rng(7);
  gguf_writer w;
  w.set("general.architecture", gguf_value::of_string("glm4"));
  w.set("t.u8", gguf_value::of_uint(gguf_type::U8, 255));
  w.set("t.i8", gguf_value::of_int(gguf_type::I8, -128));
  w.set("t.u16", gguf_value::of_uint(gguf_type::U16, 65535));
  w.set("t.i16", gguf_value::of_int(gguf_type::I16, -32768));
  w.set("t.u32", gguf_value::of_uint(gguf_type::U32, 4000000000u));
  w.set("t.i32", gguf_value::of_int(gguf_type::I32, -2000000000));
  w.set("t.u64", gguf_value::of_uint(gguf_type::U64, ~uint64_t(0)));
  w.set("t.i64", gguf_value::of_int(gguf_type::I64, INT64_MIN));
  w.set("t.f32", gguf_value::of_float(gguf_type::F32, 1e-5));
  w.set("t.f64", gguf_value::of_float(gguf_type::F64, 3.141592653589793));
  w.set("t.bool", gguf_value::of_bool(true));
  w.set("t.empty_string", gguf_value::of_string(""));
  w.set("t.utf8", gguf_value::of_string("你好 \xe2\x96\x81 <|user|>"));
  w.set("t.strings", gguf_value::of_strings({"a", "", "Ġhello", std::string("nul\0inside", 10)}));
  w.set("t.i32s", gguf_value::of_ints(gguf_type::I32, {2, 3, 3, 0, -1}));
  w.set("t.u64s", gguf_value::of_ints(gguf_type::U64, {0, 1, INT64_MAX}));
  w.set("t.bools", gguf_value::of_ints(gguf_type::BOOL, {1, 0, 1}));
  w.set("t.f32s", gguf_value::of_floats(gguf_type::F32, {0.5, -2.25}));
  w.set("t.empty_array", gguf_value::of_ints(gguf_type::U8, {}));
  w.set("t.nested", gguf_value::of_arrays({gguf_value::of_ints(gguf_type::I16, {1, 2}), gguf_value::of_strings({"x"})}));
  w.set("t.u8", gguf_value::of_uint(gguf_type::U8, 254));  // replaced in place, keeps its position

  // Every type autoglm computes with, odd shapes included; bytes are random (the container does not care).
  struct spec {
    std::string name;
    uint32_t type;
    std::vector<int64_t> shape;
  };
  const std::vector<spec> specs = {{"f32", ggml_type_id::F32, {3, 5}},      {"f16", ggml_type_id::F16, {7}},
                                   {"bf16", ggml_type_id::BF16, {2, 3, 4, 5}}, {"q8_0", ggml_type_id::Q8_0, {3, 64}},
                                   {"q4_0", ggml_type_id::Q4_0, {1, 32}},   {"q4_k", ggml_type_id::Q4_K, {2, 256}},
                                   {"q5_k", ggml_type_id::Q5_K, {1, 512}},  {"q6_k", ggml_type_id::Q6_K, {3, 256}},
                                   {"i8", ggml_type_id::I8, {5, 3}},        {"empty", ggml_type_id::F32, {0, 4}},
                                   {"q4_1", ggml_type_id::Q4_1, {2, 64}},   {"q5_0", ggml_type_id::Q5_0, {3, 96}},
                                   {"q5_1", ggml_type_id::Q5_1, {1, 32}},
                                   {"q3_k_foreign", ggml_type_id::Q3_K, {2, 256}}};
  std::vector<std::string> payloads;
  for (const spec& s : specs) {
    std::vector<int64_t> ne(s.shape.rbegin(), s.shape.rend());
    std::string p(size_t(ggml_tensor_bytes(s.type, ne, s.name)), '\0');
    for (char& c : p) c = char(rng());
    payloads.push_back(p);
  }
  for (size_t i = 0; i < specs.size(); ++i) w.add_tensor(specs[i].name, specs[i].type, specs[i].shape, payloads[i].data());
  const std::string path = dir + "/rt.gguf";
  const uint64_t written = w.write(path);
  EXPECT_EQ(written, fs::file_size(path));
  EXPECT_FALSE(fs::exists(path + ".tmp"));

  gguf_file f(path);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  ASSERT_EQ(f.metadata().size(), 21u);
  EXPECT_EQ(f.metadata()[1].first, "t.u8");
  EXPECT_EQ(f.get_uint("t.u8"), 254u);
  EXPECT_EQ(f.get_int("t.i8"), -128);
  EXPECT_EQ(f.get_uint("t.u64"), ~uint64_t(0));
  EXPECT_EQ(f.get_int("t.i64"), INT64_MIN);
  EXPECT_FLOAT_EQ(float(f.get_float("t.f32")), 1e-5f);
  EXPECT_DOUBLE_EQ(f.get_float("t.f64"), 3.141592653589793);
  EXPECT_TRUE(f.get_bool("t.bool"));
  EXPECT_EQ(f.get_string("t.utf8"), "你好 \xe2\x96\x81 <|user|>");
  EXPECT_EQ(f.get_string_array("t.strings")[3], std::string("nul\0inside", 10));
  EXPECT_EQ(f.get_int_array("t.i32s"), (std::vector<int64_t>{2, 3, 3, 0, -1}));
  EXPECT_EQ(f.get_int_array("t.u64s"), (std::vector<int64_t>{0, 1, INT64_MAX}));
  EXPECT_EQ(f.get_float_array("t.f32s"), (std::vector<double>{0.5, -2.25}));
  EXPECT_EQ(f.at("t.nested").as_nested_array("n")[1].as_string_array("n")[0], "x");
  // Metadata identical to what was written, in order.
  for (size_t i = 0; i < f.metadata().size(); ++i) {
    const gguf_value* v = w.find(f.metadata()[i].first);
    ASSERT_NE(v, nullptr) << f.metadata()[i].first;
    EXPECT_TRUE(*v == f.metadata()[i].second) << f.metadata()[i].first << " " << f.metadata()[i].second.str();
  }
  // Tensors: same names, shapes, types, bytes; every one at an aligned offset.
  ASSERT_EQ(f.tensors().size(), specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    const gguf_tensor_info& t = f.tensors()[i];
    EXPECT_EQ(t.name, specs[i].name);
    EXPECT_EQ(t.type, specs[i].type);
    EXPECT_EQ(t.shape(), specs[i].shape);
    EXPECT_EQ(t.offset % 32, 0u);
    EXPECT_EQ((f.data_offset() + t.offset) % 32, 0u);
    ASSERT_EQ(t.n_bytes, payloads[i].size());
    EXPECT_EQ(std::memcmp(t.data, payloads[i].data(), t.n_bytes), 0) << t.name;
  }
  const tensor q4k = f.view(*f.find_tensor("q4_k"));
  EXPECT_EQ(q4k.type(), dtype::Q4_K);
  EXPECT_EQ(q4k.shape(), (std::vector<int64_t>{2, 256}));
  EXPECT_EQ(q4k.row_stride(), 144);
  const tensor bf = f.view(*f.find_tensor("bf16"));
  EXPECT_EQ(bf.type(), dtype::BF16);
  EXPECT_EQ(bf.shape(), (std::vector<int64_t>{2, 3, 4, 5}));
  // The 32-element types llama.cpp falls back to for rows a k-quant cannot hold (Q5_0 in Q4_K files, Q5_1 in Q5_K).
  struct block_view { const char* name; dtype type; int64_t row_bytes; };
  for (const block_view& b : {block_view{"q4_1", dtype::Q4_1, 2 * 20}, block_view{"q5_0", dtype::Q5_0, 3 * 22},
                              block_view{"q5_1", dtype::Q5_1, 24}}) {
    const tensor v = f.view(*f.find_tensor(b.name));
    EXPECT_EQ(v.type(), b.type) << b.name;
    EXPECT_EQ(v.row_stride(), b.row_bytes) << b.name;
  }
  // A type the container knows but autoglm does not compute with: listed, and a clear error when viewed.
  try {
    f.view(*f.find_tensor("q3_k_foreign"));
    FAIL() << "expected an error";
  } catch (const error& e) {
    EXPECT_NE(std::string(e.what()).find("'q3_k_foreign' has type Q3_K"), std::string::npos) << e.what();
  }
}

// ggml type ids <-> core dtypes, both ways, for every type autoglm computes with (ids of ggml.h's enum ggml_type).
TEST(gguf, type_ids_map_both_ways) {
  const std::pair<uint32_t, dtype> known[] = {
      {0, dtype::F32},   {1, dtype::F16},   {30, dtype::BF16}, {8, dtype::Q8_0}, {2, dtype::Q4_0}, {3, dtype::Q4_1},
      {6, dtype::Q5_0},  {7, dtype::Q5_1},  {12, dtype::Q4_K}, {13, dtype::Q5_K}, {14, dtype::Q6_K}, {24, dtype::I8}};
  for (const auto& [id, t] : known) {
    dtype d;
    uint32_t back = 999;
    ASSERT_TRUE(dtype_from_ggml(id, d)) << id;
    EXPECT_EQ(d, t) << id;
    ASSERT_TRUE(ggml_from_dtype(t, back)) << dtype_name(t);
    EXPECT_EQ(back, id) << dtype_name(t);
    const ggml_type_traits* tt = ggml_type_lookup(id);
    ASSERT_NE(tt, nullptr);
    EXPECT_STREQ(tt->name, dtype_name(t));
    EXPECT_EQ(size_t(tt->block_elems), dtype_block_elems(t)) << tt->name;
    EXPECT_EQ(size_t(tt->block_bytes), dtype_block_bytes(t)) << tt->name;
  }
  dtype d;
  EXPECT_FALSE(dtype_from_ggml(ggml_type_id::Q3_K, d));
  EXPECT_FALSE(dtype_from_ggml(9, d));  // Q8_1: an activation type, never stored in a model file
}

TEST(gguf, views_outlive_the_file_object) {
  const std::string dir = temp_dir();
  float data[6] = {1, 2, 3, 4, 5, 6};
  gguf_writer w;
  w.add_tensor("x", ggml_type_id::F32, {2, 3}, data);
  w.write(dir + "/v.gguf");
  tensor t;
  {
    gguf_file f(dir + "/v.gguf");
    t = f.view(f.tensors()[0]);
  }
  EXPECT_EQ(t.ptr<float>()[5], 6.0f);  // the view keeps the mapping alive
}

TEST(gguf, custom_alignment_round_trips) {
  const std::string dir = temp_dir();
  gguf_writer w(64);
  uint8_t a[3] = {1, 2, 3}, b[5] = {4, 5, 6, 7, 8};
  w.add_tensor("a", ggml_type_id::I8, {3}, a);
  w.add_tensor("b", ggml_type_id::I8, {5}, b);
  w.write(dir + "/al.gguf");
  gguf_file f(dir + "/al.gguf");
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.get_uint("general.alignment"), 64u);
  EXPECT_EQ(f.data_offset() % 64, 0u);
  EXPECT_EQ(f.tensors()[1].offset, 64u);
  EXPECT_EQ(f.tensors()[1].data[4], 8);
}

TEST(gguf, writer_refuses_what_readers_would_refuse) {
  gguf_writer w;
  float x[32] = {};
  EXPECT_THROW(w.add_tensor(std::string(64, 'n'), ggml_type_id::F32, {1}, x), error);   // name > 63 bytes
  EXPECT_THROW(w.add_tensor("q", ggml_type_id::Q8_0, {1, 33}, x), error);              // not whole blocks
  EXPECT_THROW(w.add_tensor("d", ggml_type_id::F32, {1, 1, 1, 1, 1}, x), error);       // 5 dimensions
  EXPECT_THROW(w.add_tensor("u", 99, {1}, x), error);                                   // unknown type
  w.add_tensor("ok", ggml_type_id::F32, {1}, x);
  EXPECT_THROW(w.add_tensor("ok", ggml_type_id::F32, {1}, x), error);                   // duplicate
  EXPECT_THROW(w.write("/nonexistent_dir_autoglm/x.gguf"), error);
}

TEST(gguf, every_truncation_is_a_clear_error) {
  const std::string dir = temp_dir();
  gguf_writer w;
  w.set("general.architecture", gguf_value::of_string("glm4"));
  w.set("a.list", gguf_value::of_strings({"x", "yy"}));
  w.set("a.nums", gguf_value::of_ints(gguf_type::I32, {1, 2}));
  float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  w.add_tensor("t", ggml_type_id::F32, {2, 4}, x);
  w.write(dir + "/full.gguf");
  std::ifstream in(dir + "/full.gguf", std::ios::binary);
  const std::string full((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Every proper prefix fails with an error that names the file (the last tensor's bytes end the file).
  for (size_t n = 0; n < full.size(); ++n) {
    const std::string p = write_bytes(dir + "/cut.gguf", full.substr(0, n));
    const std::string e = error_of(p);
    ASSERT_FALSE(e.empty()) << "prefix of " << n << " bytes was accepted";
    EXPECT_NE(e.find(p), std::string::npos) << e;
  }
  EXPECT_EQ(error_of(write_bytes(dir + "/whole.gguf", full)), "");
}

TEST(gguf, malformed_files_are_clear_errors) {
  const std::string dir = temp_dir();
  struct probe {
    std::string name, bytes, expect;  // `expect` must appear in the message
  };
  auto kv_file = [](const std::function<void(bytes_builder&)>& kv, uint64_t n_kv = 1) {
    bytes_builder f;
    f.header(0, n_kv);
    kv(f);
    return f.b;
  };
  auto tensor_file = [](const std::function<void(bytes_builder&)>& tensors, uint64_t n_tensors = 1, size_t data = 64) {
    bytes_builder f;
    f.header(n_tensors, 0);
    tensors(f);
    f.pad(32).data(data);
    return f.b;
  };
  std::string big_endian = valid_small();
  big_endian[4] = 0, big_endian[7] = 3;  // version 3 stored big-endian
  const std::vector<probe> probes = {
      {"empty", "", "not a GGUF file"},
      {"magic", "GGML" + valid_small().substr(4), "not a GGUF file"},
      {"version1", bytes_builder().header(0, 0, 1).b, "version 1 is not supported"},
      {"version4", bytes_builder().header(0, 0, 4).b, "version 4 is not supported"},
      {"byteswapped", big_endian, "byte-swapped"},
      {"n_kv_huge", bytes_builder().header(0, uint64_t(1) << 62).b, "metadata entries but only"},
      {"n_kv_negative", bytes_builder().header(0, ~uint64_t(0)).b, "metadata entries but only"},
      {"n_tensors_huge", bytes_builder().header(uint64_t(1) << 40, 0).b, "tensors but only"},
      {"key_length_huge", kv_file([](bytes_builder& f) { f.u64(uint64_t(1) << 63).data(16); }),
       "metadata entry 0 key length 9223372036854775808 runs past the end"},
      {"key_empty", kv_file([](bytes_builder& f) { f.str("").u32(4).u32(1); }), "empty key"},
      {"string_past_end", kv_file([](bytes_builder& f) { f.str("k").u32(8).u64(1000).data(3); }),
       "metadata 'k' length 1000 runs past the end"},
      {"unknown_value_type", kv_file([](bytes_builder& f) { f.str("k").u32(13).u32(0); }), "unknown value type 13"},
      {"unknown_array_type", kv_file([](bytes_builder& f) { f.str("k").u32(9).u32(77).u64(0); }),
       "metadata 'k' element has unknown value type 77"},
      {"array_count_huge", kv_file([](bytes_builder& f) { f.str("k").u32(9).u32(6).u64(uint64_t(1) << 61); }),
       "claims 2305843009213693952 elements"},
      {"string_array_count_huge", kv_file([](bytes_builder& f) { f.str("k").u32(9).u32(8).u64(1000000).u64(0); }),
       "claims 1000000 elements of type string"},
      {"nested_too_deep",
       kv_file([](bytes_builder& f) {
         f.str("k").u32(9);
         for (int i = 0; i < 5; ++i) f.u32(9).u64(1);
         f.u32(4).u64(0);
       }),
       "nested more than 4 deep"},
      {"bool_not_0_1", kv_file([](bytes_builder& f) { f.str("k").u32(7).raw(2, 1); }), "bool stored as 2"},
      {"duplicate_key", kv_file([](bytes_builder& f) { f.kv_u32("k", 1).kv_u32("k", 2); }, 2), "'k' appears twice"},
      {"alignment_type", kv_file([](bytes_builder& f) { f.str("general.alignment").u32(10).u64(32); }),
       "'general.alignment' is of type u64, must be u32"},
      {"alignment_not_pow2", kv_file([](bytes_builder& f) { f.kv_u32("general.alignment", 48); }),
       "alignment 48 is not a power of two"},
      {"alignment_zero", kv_file([](bytes_builder& f) { f.kv_u32("general.alignment", 0); }),
       "alignment 0 is not a power of two"},
      {"tensor_name_empty", tensor_file([](bytes_builder& f) { f.tensor("", {4}, 0, 0); }), "empty name"},
      {"tensor_name_long", tensor_file([](bytes_builder& f) { f.tensor(std::string(64, 'x'), {4}, 0, 0); }),
       "more than ggml's limit of 63"},
      {"rank_5", tensor_file([](bytes_builder& f) { f.tensor("w", {1, 1, 1, 1, 1}, 0, 0); }), "'w': 5 dimensions"},
      {"negative_dim", tensor_file([](bytes_builder& f) { f.tensor("w", {~uint64_t(0)}, 0, 0); }),
       "'w': dimension 0 is negative"},
      {"shape_overflow", tensor_file([](bytes_builder& f) { f.tensor("w", {uint64_t(1) << 40, uint64_t(1) << 40}, 0, 0); }),
       "'w': size overflows 64 bits"},
      {"bytes_overflow", tensor_file([](bytes_builder& f) { f.tensor("w", {uint64_t(1) << 31, uint64_t(1) << 31}, 0, 0); }),
       "'w': size overflows 64 bits"},
      {"zero_dim_hides_overflow",
       tensor_file([](bytes_builder& f) { f.tensor("w", {uint64_t(1) << 40, uint64_t(1) << 40, 0}, 0, 0); }),
       "'w': size overflows 64 bits"},
      // Holds no bytes, but byte strides of [0, 2^61] F32 overflow int64 in any tensor view of it.
      {"zero_dim_hides_stride_overflow",
       tensor_file([](bytes_builder& f) { f.tensor("w", {uint64_t(1) << 61, 0}, 0, 0); }),
       "'w': size overflows 64 bits"},
      {"unknown_ggml_type", tensor_file([](bytes_builder& f) { f.tensor("w", {4}, 99, 0); }), "'w': unknown ggml type id 99"},
      {"removed_ggml_type", tensor_file([](bytes_builder& f) { f.tensor("w", {32}, 4, 0); }), "unknown ggml type id 4"},
      {"partial_block", tensor_file([](bytes_builder& f) { f.tensor("w", {33, 2}, 8, 0); }),
       "'w': rows of 33 elements are not whole Q8_0 blocks of 32"},
      {"offset_misaligned", tensor_file([](bytes_builder& f) { f.tensor("w", {4}, 0, 4); }),
       "'w': offset 4 is not a multiple of the alignment 32"},
      {"offset_past_end", tensor_file([](bytes_builder& f) { f.tensor("w", {4}, 0, 1 << 20); }),
       "'w': offset 1048576 + 16 bytes runs past the end of the data section (64 bytes)"},
      {"size_past_end", tensor_file([](bytes_builder& f) { f.tensor("w", {100}, 0, 0); }),
       "offset 0 + 400 bytes runs past the end"},
      {"offset_huge", tensor_file([](bytes_builder& f) { f.tensor("w", {4}, 0, ~uint64_t(0) - 31); }),
       "runs past the end of the data section"},
      {"overlap", tensor_file([](bytes_builder& f) { f.tensor("a", {16}, 0, 0).tensor("b", {4}, 0, 32); }, 2, 128),
       "tensors 'a' and 'b' overlap"},
      {"duplicate_tensor", tensor_file([](bytes_builder& f) { f.tensor("a", {4}, 0, 0).tensor("a", {4}, 0, 32); }, 2),
       "tensor 'a' appears twice"},
      {"data_section_past_end",
       [] {
         bytes_builder f;
         f.header(1, 0).tensor("w", {0}, 0, 0);  // no padding written: the data section starts past the end
         return f.b;
       }(),
       "the data section would start at byte"},
  };
  for (const probe& p : probes) {
    const std::string path = write_bytes(dir + "/" + p.name + ".gguf", p.bytes);
    const std::string e = error_of(path);
    EXPECT_NE(e.find(p.expect), std::string::npos) << p.name << ": got \"" << e << "\"";
    EXPECT_NE(e.find(path), std::string::npos) << p.name << ": the error must name the file: " << e;
  }
  // Not a regular file: refused at once, never waited on.
  EXPECT_NE(error_of(dir).find("not a regular file"), std::string::npos);
  EXPECT_NE(error_of(dir + "/missing.gguf").find("cannot open"), std::string::npos);
}

TEST(gguf, typed_getters_name_file_and_key) {
  const std::string dir = temp_dir();
  gguf_writer w;
  w.set("s", gguf_value::of_string("x"));
  w.set("neg", gguf_value::of_int(gguf_type::I32, -3));
  w.set("big", gguf_value::of_uint(gguf_type::U64, ~uint64_t(0)));
  w.set("n", gguf_value::of_ints(gguf_type::I32, {1}));
  w.write(dir + "/g.gguf");
  gguf_file f(dir + "/g.gguf");
  auto msg = [](const std::function<void()>& fn) {
    try {
      fn();
    } catch (const error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  const std::string p = dir + "/g.gguf";
  EXPECT_EQ(msg([&] { f.get_uint("s"); }), p + ": metadata 's' is of type string, expected an integer");
  EXPECT_EQ(msg([&] { f.get_uint("neg"); }), p + ": metadata 'neg' is negative (-3), expected >= 0");
  EXPECT_EQ(msg([&] { f.get_int("big"); }), p + ": metadata 'big' is 18446744073709551615, past the int64 range");
  EXPECT_EQ(msg([&] { f.get_string("absent"); }), p + ": missing metadata 'absent'");
  EXPECT_EQ(msg([&] { f.get_string_array("n"); }), p + ": metadata 'n' is not an array of strings");
  EXPECT_EQ(msg([&] { f.get_float("n"); }), p + ": metadata 'n' is of type array, expected a float");
  EXPECT_EQ(f.get_int("neg"), -3);
}
