// tests/ops/repack_cache_test.cpp: backends' weight copies kept on disk (ops/repack_cache.h): made once, mapped
// after, and every file that disagrees with what it claims ignored and made again, never trusted or crashed on.
#include "ops/repack_cache.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "common/env_scope.h"
#include "formats/quantize.h"
#include "ops/context.h"
#include "ops/ops.h"

namespace autoglm {
namespace {

namespace fs = std::filesystem;

using test_support::env_scope;

// A fresh directory under the test's temporary directory.
std::string fresh_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("autoglm_repack_cache_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(d);
  return d.string();
}

std::vector<uint8_t> pattern(size_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = uint8_t(g());
  return v;
}

// Offers `bytes` for key and fills fresh memory with `data`; returns whether a kept copy was mapped (and then checks
// that it holds `data`).
bool offer_fill_commit(const std::string& dir, const std::string& key, const std::vector<uint8_t>& data,
                       dtype t = dtype::Q4_0, std::vector<int64_t> shape = {16, 512}) {
  repack_cache::entry e(dir, key, t, std::move(shape));
  const repack_memory m = e.offer(int64_t(data.size()));
  EXPECT_TRUE(m.mem) << "a writable directory gives memory";
  if (!m.mem) return false;
  if (m.filled) {
    EXPECT_EQ(std::memcmp(m.mem.get(), data.data(), data.size()), 0) << "the kept copy's bytes";
    return true;
  }
  for (size_t i = 0; i < data.size(); ++i) EXPECT_EQ(m.mem.get()[i], 0) << "fresh memory is zeroed at " << i;
  std::memcpy(m.mem.get(), data.data(), data.size());
  e.commit();
  return false;
}

std::vector<fs::path> cache_files(const std::string& dir) {
  std::vector<fs::path> out;
  for (const auto& f : fs::directory_iterator(dir)) out.push_back(f.path());
  return out;
}

TEST(repack_cache, a_copy_is_made_once_then_mapped) {
  const std::string dir = fresh_dir("once");
  const std::vector<uint8_t> data = pattern(300000, 1);
  const repack_cache::counts before = repack_cache::totals();
  EXPECT_FALSE(offer_fill_commit(dir, "model.gguf 1 2 3 : w", data));
  ASSERT_EQ(cache_files(dir).size(), 1u) << "one file, linked under its name only once complete";
  EXPECT_EQ(fs::file_size(cache_files(dir)[0]), 4096 + data.size());
  EXPECT_TRUE(offer_fill_commit(dir, "model.gguf 1 2 3 : w", data));
  EXPECT_TRUE(offer_fill_commit(dir, "model.gguf 1 2 3 : w", data));
  const repack_cache::counts after = repack_cache::totals();
  EXPECT_EQ(after.written - before.written, 1u);
  EXPECT_EQ(after.mapped - before.mapped, 2u);
  // Another key, dtype or shape is another copy.
  EXPECT_FALSE(offer_fill_commit(dir, "model.gguf 1 2 4 : w", data));
  EXPECT_FALSE(offer_fill_commit(dir, "model.gguf 1 2 3 : w", data, dtype::Q8_0));
  EXPECT_FALSE(offer_fill_commit(dir, "model.gguf 1 2 3 : w", data, dtype::Q4_0, {32, 256}));
  // A new version of the same source (between 0x1f and 0x1e: file_identity's size, mtime, inode) is another copy in
  // the same file: it replaces the old one, which is then made again in its turn.
  const std::string v1 = "model.gguf\x1f" "1 2 3\x1e : w", v2 = "model.gguf\x1f" "1 2 9\x1e : w";
  const std::string vdir = fresh_dir("versions");
  EXPECT_FALSE(offer_fill_commit(vdir, v1, data));
  EXPECT_TRUE(offer_fill_commit(vdir, v1, data));
  EXPECT_FALSE(offer_fill_commit(vdir, v2, pattern(data.size(), 9)));
  EXPECT_EQ(cache_files(vdir).size(), 1u) << "replaced, not piled up";
  EXPECT_TRUE(offer_fill_commit(vdir, v2, pattern(data.size(), 9)));
  EXPECT_FALSE(offer_fill_commit(vdir, v1, data));
  fs::remove_all(vdir);
  // A small copy (under the sampled size) too.
  EXPECT_FALSE(offer_fill_commit(dir, "small", pattern(100, 2)));
  EXPECT_TRUE(offer_fill_commit(dir, "small", pattern(100, 2)));
  fs::remove_all(dir);
}

TEST(repack_cache, a_file_that_disagrees_is_made_again) {
  const std::string dir = fresh_dir("bad");
  const std::vector<uint8_t> data = pattern(1 << 20, 3);
  auto only_file = [&] {
    const auto files = cache_files(dir);
    EXPECT_EQ(files.size(), 1u);
    return files.empty() ? fs::path() : files[0];
  };
  auto damage = [&](const std::string& what, auto&& change) {
    SCOPED_TRACE(what);
    offer_fill_commit(dir, "k", data);  // a valid file to damage (made by the first case, then kept)
    const uint64_t rejected = repack_cache::totals().rejected;
    change(only_file());
    EXPECT_FALSE(offer_fill_commit(dir, "k", data)) << "not trusted";
    EXPECT_EQ(repack_cache::totals().rejected, rejected + 1);
    EXPECT_TRUE(offer_fill_commit(dir, "k", data)) << "made again, then mapped";
  };
  damage("cut short", [](const fs::path& f) { fs::resize_file(f, fs::file_size(f) - 4096); });
  damage("grown", [](const fs::path& f) { fs::resize_file(f, fs::file_size(f) + 4096); });
  auto poke = [](const fs::path& f, int64_t at, uint8_t v) {
    std::fstream s(f, std::ios::in | std::ios::out | std::ios::binary);
    s.seekp(at);
    s.put(char(v));
  };
  damage("bad magic", [&](const fs::path& f) { poke(f, 0, 'X'); });
  damage("another format version", [&](const fs::path& f) { poke(f, 8, 99); });
  damage("a key byte", [&](const fs::path& f) { poke(f, 80, '#'); });
  damage("a shape", [&](const fs::path& f) { poke(f, 24, 17); });
  damage("data never written back (zeros)", [&](const fs::path& f) {
    std::fstream s(f, std::ios::in | std::ios::out | std::ios::binary);
    s.seekp(4096 + 8192);
    const std::vector<char> zeros(1 << 18, 0);
    s.write(zeros.data(), std::streamsize(zeros.size()));
  });
  damage("the first data byte", [&](const fs::path& f) { poke(f, 4096, uint8_t(data[0] ^ 1)); });
  // Not a regular file where the cache file would be: ignored, and the copy made in memory all the same.
  fs::remove(only_file());
  repack_cache::entry probe(dir, "k", dtype::Q4_0, {16, 512});
  const repack_memory m0 = probe.offer(int64_t(data.size()));  // makes a file to learn its name
  ASSERT_TRUE(m0.mem);
  probe.commit();
  const fs::path name = only_file();
  fs::remove(name);
  fs::create_directory(name);
  {
    repack_cache::entry e(dir, "k", dtype::Q4_0, {16, 512});
    const repack_memory m = e.offer(int64_t(data.size()));
    ASSERT_TRUE(m.mem);
    EXPECT_FALSE(m.filled);
    e.commit();  // cannot replace a directory: reported, nothing else
  }
  EXPECT_TRUE(fs::is_directory(name));
  fs::remove_all(dir);
}

TEST(repack_cache, no_directory_means_no_cache_and_no_failure) {
  const std::string dir = fresh_dir("nowhere");
  std::ofstream(dir) << "a file where the directory would be";
  repack_cache::entry e(dir + "/sub", "k", dtype::Q4_0, {16, 512});
  EXPECT_FALSE(e.offer(4096).mem) << "the kernel then allocates its own";
  e.commit();
  repack_cache::entry none("", "k", dtype::Q4_0, {16, 512});
  EXPECT_FALSE(none.offer(4096).mem);
  repack_cache::entry no_key(dir, "", dtype::Q4_0, {16, 512});
  EXPECT_FALSE(no_key.offer(4096).mem);
  fs::remove(dir);
  EXPECT_EQ(repack_cache::file_identity(dir), "");
  EXPECT_NE(repack_cache::file_identity("/proc/self/exe"), "");
}

// Through ops::prepare_linear: the CPU's copy of a Q4_0 weight kept and mapped back, its LINEAR giving the bytes of
// the copy made in memory; nothing kept without a key, or when the backend makes no copy (AUTOGLM_CPU_REPACK=0).
TEST(repack_cache, prepare_linear_keeps_the_cpu_copy) {
  const std::string dir = fresh_dir("linear");
  const env_scope cache("AUTOGLM_REPACK_CACHE", dir.c_str());
  const env_scope repack("AUTOGLM_CPU_REPACK", "1");
  exec_context ctx(device{}, 2);
  const int64_t n = 40, k = 256, m = 3;
  std::vector<float> wf(size_t(n * k)), xf(size_t(m * k));
  std::mt19937 g(5);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (float& v : wf) v = nd(g);
  for (float& v : xf) v = nd(g);
  const tensor w = quant::quantize_tensor(tensor::view(wf.data(), dtype::F32, {n, k}), dtype::Q4_0);
  const tensor x = tensor::view(xf.data(), dtype::F32, {m, k});
  auto run = [&](const linear_weight& lw) {
    std::vector<float> y(size_t(m * n));
    tensor yt = tensor::view(y.data(), dtype::F32, {m, n});
    ops::linear(ctx, x, lw, yt);
    return y;
  };
  const linear_weight plain = ops::prepare_linear(ctx, w, {}, "w", false, "");
  if (plain.repacked.empty()) GTEST_SKIP() << "the CPU backend makes no copy on this machine (no AVX-512 VNNI)";
  EXPECT_FALSE(fs::exists(dir)) << "no key: nothing kept";
  const repack_cache::counts before = repack_cache::totals();
  const linear_weight made = ops::prepare_linear(ctx, w, {}, "w", false, "source 1 : w");
  const linear_weight mapped = ops::prepare_linear(ctx, w, {}, "w", false, "source 1 : w");
  const repack_cache::counts after = repack_cache::totals();
  EXPECT_EQ(after.written - before.written, 1u);
  EXPECT_EQ(after.mapped - before.mapped, 1u);
  ASSERT_EQ(mapped.repacked.n_bytes(), plain.repacked.n_bytes());
  EXPECT_EQ(std::memcmp(made.repacked.data(), plain.repacked.data(), plain.repacked.n_bytes()), 0);
  EXPECT_EQ(std::memcmp(mapped.repacked.data(), plain.repacked.data(), plain.repacked.n_bytes()), 0);
  const std::vector<float> want = run(plain), got = run(mapped);
  EXPECT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)), 0);
  {
    const env_scope off("AUTOGLM_CPU_REPACK", "0");
    EXPECT_TRUE(ops::prepare_linear(ctx, w, {}, "w", false, "source 1 : w").repacked.empty());
    EXPECT_EQ(repack_cache::totals().mapped, after.mapped) << "a backend that makes no copy maps none";
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace autoglm
