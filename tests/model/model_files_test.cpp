// Model directory files that are not what they claim: FIFOs, directories, dangling links, oversized or hostile
// shard indexes and safetensors headers. Each is a prompt error naming the file, never a hang or a crash.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "core/error.h"
#include "formats/safetensors.h"
#include "model/model.h"
#include "ops/context.h"
#include "model_files_util.h"

using namespace autoglm;
using namespace autoglm::test;
namespace fs = std::filesystem;

namespace {

// A one-tensor safetensors file.
void write_shard(const std::string& path, const std::string& name) {
  const std::string header = R"({")" + name + R"(":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[size_t(i)] = char((header.size() >> (8 * i)) & 0xff);
  write_text(path, bytes + header + std::string(4, '\0'));
}

std::string open_dir_error(const std::string& dir, const std::string& fifo = "") {
  return error_of_guarded([&] { tensor_store::open_dir(dir); }, fifo);
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST(model_files, fifo_model_safetensors_is_refused_at_once) {
  const std::string dir = scratch_dir();
  make_fifo(dir + "/model.safetensors");
  const std::string msg = open_dir_error(dir, dir + "/model.safetensors");
  EXPECT_TRUE(contains(msg, dir + "/model.safetensors: not a regular file (a named pipe)")) << msg;
}

TEST(model_files, fifo_shard_and_fifo_index_are_refused_at_once) {
  const std::string dir = scratch_dir();
  write_shard(dir + "/s1.safetensors", "a");
  make_fifo(dir + "/s2.safetensors");
  write_text(dir + "/model.safetensors.index.json", R"({"weight_map":{"a":"s1.safetensors","b":"s2.safetensors"}})");
  std::string msg = open_dir_error(dir, dir + "/s2.safetensors");
  EXPECT_TRUE(contains(msg, dir + "/s2.safetensors: not a regular file (a named pipe)")) << msg;

  const std::string index = dir + "/model.safetensors.index.json";
  make_fifo(index);
  msg = open_dir_error(dir, index);
  EXPECT_TRUE(contains(msg, index + ": not a regular file (a named pipe)")) << msg;
}

TEST(model_files, directories_and_dangling_links_are_named) {
  const std::string dir = scratch_dir();
  fs::create_directory(dir + "/model.safetensors");
  EXPECT_TRUE(contains(open_dir_error(dir), "model.safetensors: not a regular file (a directory)")) << open_dir_error(dir);
  fs::remove(dir + "/model.safetensors");
  fs::create_symlink(dir + "/gone.safetensors", dir + "/model.safetensors");
  EXPECT_TRUE(contains(open_dir_error(dir), "model.safetensors: cannot open")) << open_dir_error(dir);
  fs::remove(dir + "/model.safetensors");
  fs::create_symlink(dir + "/gone.json", dir + "/model.safetensors.index.json");
  EXPECT_TRUE(contains(open_dir_error(dir), "model.safetensors.index.json: cannot open")) << open_dir_error(dir);
  fs::remove(dir + "/model.safetensors.index.json");
  fs::create_directory(dir + "/model.safetensors.index.json");
  EXPECT_TRUE(contains(open_dir_error(dir), "model.safetensors.index.json: not a regular file (a directory)"));
}

TEST(model_files, shard_index_json_is_bounded_and_checked) {
  const std::string dir = scratch_dir();
  write_shard(dir + "/s1.safetensors", "a");
  const std::string index = dir + "/model.safetensors.index.json";
  struct bad {
    std::string text;
    std::string expect;
  };
  const bad cases[] = {
      {"[1, 2]", "missing object 'weight_map'"},
      {R"({"metadata": {}})", "missing object 'weight_map'"},
      {R"({"weight_map": ["s1.safetensors"]})", "missing object 'weight_map'"},
      {R"({"weight_map": {"a": 5}})", "weight_map['a'] is not a string"},
      {R"({"weight_map": {"a": "sub/s1.safetensors"}})", "must be a plain file name"},
      {R"({"weight_map": {"a": ""}})", "not a regular file (a directory)"},
      {R"({"weight_map": {"a": "s1.safetensors"}, "x": 1e400})", "not valid JSON"},
      {"{\"weight_map\": {\"a\": \"s1.safetensors\"}, \"x\": " + std::string(100000, '[') + std::string(100000, ']') + "}",
       "nesting deeper than"},
      {R"({"weight_map": {"a": "s1.safetensors")", "not valid JSON"},
  };
  for (const bad& c : cases) {
    write_text(index, c.text);
    const std::string msg = open_dir_error(dir);
    EXPECT_TRUE(contains(msg, c.expect)) << c.text.substr(0, 60) << "\n  got: " << msg;
    EXPECT_TRUE(contains(msg, "model.safetensors.index.json") || contains(msg, dir)) << msg;
  }
  // Larger than the 64 MiB an index may be (sparse: no disk is used).
  std::ofstream(index).close();
  fs::resize_file(index, (uint64_t(64) << 20) + 1);
  const std::string msg = open_dir_error(dir);
  EXPECT_TRUE(contains(msg, index + ": 67108865 bytes, more than the limit of 67108864")) << msg;
  // And a good index still works.
  write_text(index, R"({"metadata": {"total_size": 4}, "weight_map": {"a": "s1.safetensors"}})");
  EXPECT_EQ(open_dir_error(dir), "");
}

TEST(model_files, deeply_nested_safetensors_header_is_refused) {
  const std::string dir = scratch_dir();
  const std::string header = "{\"a\":" + std::string(150000, '[') + std::string(150000, ']') + "}";
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[size_t(i)] = char((header.size() >> (8 * i)) & 0xff);
  write_text(dir + "/model.safetensors", bytes + header);
  const std::string msg = open_dir_error(dir);
  EXPECT_TRUE(contains(msg, dir + "/model.safetensors: header is not valid JSON")) << msg;
  EXPECT_TRUE(contains(msg, "nesting deeper than")) << msg;
}

TEST(model_files, load_model_refuses_a_fifo_config) {
  // config.json as a FIFO in an otherwise complete directory: refused before anything else is read. (Thread counts
  // are checked where they are given now: engine_options, tests/runtime.)
  const std::string tiny = tiny_model_dir();
  const std::string dir = scratch_dir();
  for (const auto& f : fs::directory_iterator(tiny))
    if (f.path().filename() != "config.json") fs::create_symlink(f.path(), dir + "/" + f.path().filename().string());
  make_fifo(dir + "/config.json");
  exec_context ctx(device{}, 1);
  const std::string msg = error_of_guarded([&] { load_model(dir, ctx); }, dir + "/config.json");
  EXPECT_TRUE(contains(msg, dir + "/config.json: not a regular file (a named pipe)")) << msg;
  EXPECT_NO_THROW(load_model(tiny, ctx));
}
