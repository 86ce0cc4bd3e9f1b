// open_regular_file / read_regular_file: regular files only (a FIFO must not block the caller), bounded size,
// errors that name the path.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include "core/error.h"
#include "core/file_io.h"

namespace autoglm {
namespace {

namespace fs = std::filesystem;

struct temp_dir {
  fs::path path;
  temp_dir() {
    char tmpl[] = "/tmp/autoglm-file-io-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~temp_dir() { fs::remove_all(path); }
};

std::string message_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const error& e) {
    return e.what();
  }
  return "";
}

TEST(FileIo, ReadsARegularFile) {
  temp_dir d;
  std::string p = (d.path / "a.txt").string();
  std::ofstream(p) << "hello";
  EXPECT_EQ(read_regular_file(p, 5), "hello");
  EXPECT_TRUE(is_regular_file(p));
  std::string m = message_of([&] { read_regular_file(p, 4); });
  EXPECT_NE(m.find(p), std::string::npos) << m;
  EXPECT_NE(m.find("limit of 4"), std::string::npos) << m;
}

TEST(FileIo, RefusesAFifoWithoutBlocking) {
  temp_dir d;
  std::string p = (d.path / "model.safetensors").string();
  ASSERT_EQ(mkfifo(p.c_str(), 0600), 0);
  EXPECT_FALSE(is_regular_file(p));
  std::string m = message_of([&] { open_regular_file(p); });  // would hang forever with a blocking open
  EXPECT_NE(m.find("not a regular file (a named pipe)"), std::string::npos) << m;
}

TEST(FileIo, RefusesDirectoriesAndDevicesAndMissingFiles) {
  temp_dir d;
  EXPECT_NE(message_of([&] { open_regular_file(d.path.string()); }).find("a directory"), std::string::npos);
  EXPECT_NE(message_of([&] { read_regular_file("/dev/zero", 1 << 20); }).find("character device"), std::string::npos);
  std::string missing = (d.path / "nope.json").string();
  EXPECT_NE(message_of([&] { open_regular_file(missing); }).find(missing + ": cannot open"), std::string::npos);
}

TEST(FileIo, FollowsSymlinksToRegularFiles) {
  temp_dir d;
  std::string target = (d.path / "t").string(), link = (d.path / "l").string();
  std::ofstream(target) << "x";
  fs::create_symlink(target, link);
  EXPECT_EQ(read_regular_file(link, 10), "x");
}

}  // namespace
}  // namespace autoglm
