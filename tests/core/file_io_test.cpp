// open_regular_file / read_regular_file: regular files only (a FIFO must not block the caller), bounded size,
// errors that name the path.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <vector>

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

namespace autoglm {
namespace {

// The process's resident file-backed memory in kB (/proc/self/status RssFile), or -1.
long rss_file_kb() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("RssFile:", 0) == 0) return std::stol(line.substr(8));
  return -1;
}

// A file of `mib` MiB of `fill` bytes at `path`, mapped read-only and private (MAP_FAILED if it cannot be).
void* map_file_of(const std::string& path, size_t mib, char fill) {
  {
    std::ofstream out(path, std::ios::binary);
    const std::string block(1 << 20, fill);
    for (size_t i = 0; i < mib; ++i) out << block;
  }
  const opened_file f = open_regular_file(path);
  return ::mmap(nullptr, mib << 20, PROT_READ, MAP_PRIVATE, f.fd.get(), 0);
}

// prefault_read maps a file mapping's pages in at once: resident file memory grows by the range (a read fault per
// page would be needed otherwise), the bytes read back unchanged; a null or empty range is refused.
TEST(FileIo, PrefaultReadMapsAFileRangeIn) {
  EXPECT_FALSE(prefault_read(nullptr, 4096));
  // qemu user mode (the aarch64 tests, tests/arm/run_arm_tests.sh) answers madvise with success and does nothing.
  if (std::getenv("AUTOGLM_HARNESS_EMULATED")) GTEST_SKIP() << "under qemu user mode madvise is a no-op";
  temp_dir d;
  const size_t n = size_t(16) << 20;
  void* m = map_file_of((d.path / "w.bin").string(), n >> 20, 'w');
  ASSERT_NE(m, MAP_FAILED);
  EXPECT_FALSE(prefault_read(m, 0));
  const long before = rss_file_kb();
  if (!prefault_read(static_cast<const char*>(m) + 100, n - 200)) {
    ::munmap(m, n);
    GTEST_SKIP() << "this kernel has no MADV_POPULATE_READ";
  }
  const long after = rss_file_kb();
  EXPECT_GE(after - before, long(n / 1024) - 64) << "RssFile " << before << " -> " << after << " kB";
  EXPECT_EQ(static_cast<const char*>(m)[n - 1], 'w');
  ::munmap(m, n);
}

// release_file_pages gives back the pages of a registered read-only file mapping (resident file memory falls, the
// bytes read back from the file unchanged) and touches nothing else: a range not registered, one reaching past the
// mapping's end, or anonymous memory (which would read back as zeros) are refused and keep their bytes.
TEST(FileIo, ReleaseFilePagesOnlyInRegisteredMappings) {
  if (std::getenv("AUTOGLM_HARNESS_EMULATED")) GTEST_SKIP() << "under qemu user mode madvise is a no-op";
  temp_dir d;
  const size_t n = size_t(8) << 20;
  void* m = map_file_of((d.path / "w.bin").string(), n >> 20, 'r');
  ASSERT_NE(m, MAP_FAILED);
  const char* c = static_cast<const char*>(m);
  EXPECT_FALSE(in_file_mapping(c, n));
  EXPECT_FALSE(release_file_pages(c, n)) << "not registered";
  register_file_mapping(m, n);
  EXPECT_TRUE(in_file_mapping(c + 10, n - 10));
  EXPECT_FALSE(in_file_mapping(c + 10, n)) << "past the end";
  EXPECT_FALSE(release_file_pages(c + 10, n));
  long sum = 0;
  for (size_t i = 0; i < n; i += 4096) sum += c[i];
  const long before = rss_file_kb();
  EXPECT_TRUE(release_file_pages(c, n));
  const long after = rss_file_kb();
  // The kernel's RSS counters are batched per thread (a few hundred kB may lag): half the range is the bar.
  EXPECT_LE(after, before - long(n / 1024) / 2) << "RssFile " << before << " -> " << after << " kB";
  long again = 0;
  for (size_t i = 0; i < n; i += 4096) again += c[i];
  EXPECT_EQ(again, sum);
  unregister_file_mapping(m);
  EXPECT_FALSE(in_file_mapping(c, n));
  ::munmap(m, n);

  std::vector<char> heap(n, 'h');
  EXPECT_FALSE(release_file_pages(heap.data(), heap.size()));
  EXPECT_EQ(heap[n / 2], 'h');
}

}  // namespace
}  // namespace autoglm
