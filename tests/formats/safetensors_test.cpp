// safetensors validation: every malformed file is a clear error naming the file/tensor, never a crash.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "core/error.h"
#include "formats/safetensors.h"

using namespace autoglm;
namespace fs = std::filesystem;

namespace {

std::string temp_dir() {
  auto d = fs::temp_directory_path() / ("autoglm_st_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

// Writes a safetensors file with the given header JSON text and `data_bytes` bytes of payload.
std::string write_file(const std::string& dir, const std::string& header, size_t data_bytes, const char* name = "model.safetensors",
                       int64_t header_len_override = -1) {
  std::string path = dir + "/" + name;
  std::ofstream out(path, std::ios::binary);
  uint64_t len = header_len_override >= 0 ? uint64_t(header_len_override) : header.size();
  for (int i = 0; i < 8; ++i) out.put(char((len >> (8 * i)) & 0xff));
  out << header;
  for (size_t i = 0; i < data_bytes; ++i) out.put(char(i & 0x7f));
  return path;
}

std::string error_of(const std::string& path) {
  try {
    safetensors_file f(path);
  } catch (const error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(safetensors, valid_file_maps_tensors) {
  auto dir = temp_dir();
  auto p = write_file(dir, R"({"a":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,12]},"b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]},"__metadata__":{"format":"pt"}})", 20);
  safetensors_file f(p);
  ASSERT_EQ(f.tensors().size(), 2u);
  EXPECT_EQ(f.tensors().at("a").type, dtype::BF16);
  EXPECT_EQ(f.tensors().at("a").n_elements(), 6);
  EXPECT_EQ(f.tensors().at("b").n_bytes, 8u);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  auto store = tensor_store::open_dir(dir);
  EXPECT_TRUE(store->has("a"));
  EXPECT_THROW(store->get("missing"), error);
  EXPECT_THROW(store->get("a", {3, 2}), error);
}

TEST(safetensors, malformed_files_give_clear_errors) {
  auto dir = temp_dir();
  struct bad {
    std::string header;
    size_t data;
    std::string expect;
    int64_t len_override = -1;
  };
  std::vector<bad> cases = {
      {"{}", 0, "header length", int64_t(1) << 40},
      {"{}", 0, "runs past the end", 1000},
      {"{not json", 0, "not valid JSON"},
      {"[1,2]", 0, "not a JSON object"},
      {R"({"a":{"dtype":"Q9","shape":[2],"data_offsets":[0,4]}})", 4, "unsupported dtype"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", 4, "data_offsets span"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4, "past the end of the data"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", 4, "begin"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8, "starts at byte 4"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 8, "trailing bytes"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4, "starts at byte 0"},
      {R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,4]}})", 4, "overflows"},
      {R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4, "non-negative"},
      {R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", 4, "shape"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", 4, "data_offsets"},
      {R"({"a":5})", 0, "not an object"},
  };
  for (auto& c : cases) {
    auto p = write_file(dir, c.header, c.data, "model.safetensors", c.len_override);
    std::string msg = error_of(p);
    EXPECT_NE(msg.find(c.expect), std::string::npos) << "header " << c.header << " gave: '" << msg << "'";
    EXPECT_NE(msg.find("model.safetensors"), std::string::npos) << msg;
  }
  // Too short to hold the length prefix.
  {
    std::ofstream(dir + "/short.safetensors") << "abc";
    EXPECT_NE(error_of(dir + "/short.safetensors").find("not a safetensors file"), std::string::npos);
  }
  EXPECT_NE(error_of(dir + "/does_not_exist").find("cannot open"), std::string::npos);
}

TEST(safetensors, sharded_index_is_checked) {
  auto dir = temp_dir();
  write_file(dir, R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4, "s1.safetensors");
  write_file(dir, R"({"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4, "s2.safetensors");
  std::ofstream(dir + "/model.safetensors.index.json") << R"({"weight_map":{"a":"s1.safetensors","b":"s2.safetensors"}})";
  auto store = tensor_store::open_dir(dir);
  EXPECT_TRUE(store->has("a") && store->has("b"));
  std::ofstream(dir + "/model.safetensors.index.json") << R"({"weight_map":{"a":"s2.safetensors","b":"s2.safetensors"}})";
  EXPECT_THROW(tensor_store::open_dir(dir), error);
  std::ofstream(dir + "/model.safetensors.index.json") << R"({"weight_map":{"a":"../etc/passwd"}})";
  EXPECT_THROW(tensor_store::open_dir(dir), error);
  std::ofstream(dir + "/model.safetensors.index.json") << R"({"weight_map":{"a":"missing.safetensors"}})";
  EXPECT_THROW(tensor_store::open_dir(dir), error);
  fs::remove(dir + "/model.safetensors.index.json");
  EXPECT_THROW(tensor_store::open_dir(dir), error);  // neither index nor model.safetensors
}
