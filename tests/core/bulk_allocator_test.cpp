// Tests of bulk_allocator (include/autoglm/bulk_allocator.h): sizing without zeroing, 64-byte alignment, reuse
// of large freed blocks within the stated bounds, and that kept blocks never serve a request they do not fit.
#include "autoglm/bulk_allocator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <thread>
#include <utility>
#include <vector>

namespace autoglm {
namespace {

constexpr size_t k_mib = size_t(1) << 20;

TEST(BulkAllocator, AlignedAndUsableLikeAVector) {
  pixel_array a;
  a.assign(1000, 1.5f);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a.data()) % 64, 0u);
  for (float v : a) ASSERT_EQ(v, 1.5f);
  a.resize(3000);  // grows, keeps the first 1000
  for (size_t i = 0; i < 1000; ++i) ASSERT_EQ(a[i], 1.5f);
  pixel_array b = a;
  EXPECT_EQ(a, b);
  b.insert(b.end(), a.begin(), a.end());
  EXPECT_EQ(b.size(), 6000u);
  pixel_array z(10, 0.0f);  // an explicit value is still written
  for (float v : z) ASSERT_EQ(v, 0.0f);
}

TEST(BulkAllocator, LargeBlocksAreReusedWithinBounds) {
  const size_t before = bulk_cached_bytes();
  void* p = bulk_allocate(8 * k_mib);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u);
  bulk_free(p);
  EXPECT_GE(bulk_cached_bytes(), before + 8 * k_mib);  // kept for the next array of a similar size
  void* q = bulk_allocate(6 * k_mib);                  // fits, and is more than half: the same block
  EXPECT_EQ(q, p);
  bulk_free(q);
  void* small = bulk_allocate(3 * k_mib);  // under half of the kept block: a new one, the big one stays kept
  EXPECT_NE(small, p);
  void* big = bulk_allocate(9 * k_mib);  // larger than anything kept
  EXPECT_NE(big, p);
  static_cast<char*>(big)[9 * k_mib - 1] = 1;  // the whole requested size is writable
  bulk_free(small);
  bulk_free(big);
  EXPECT_LE(bulk_cached_bytes(), size_t(256) * k_mib);
  // Blocks under 1 MiB and a huge one are never kept.
  const size_t kept = bulk_cached_bytes();
  bulk_free(bulk_allocate(1000));
  bulk_free(bulk_allocate(300 * k_mib));
  EXPECT_EQ(bulk_cached_bytes(), kept);
}

TEST(BulkAllocator, BoundedUnderManyFreesAndThreads) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([t] {
      for (int i = 0; i < 50; ++i) {
        pixel_array a;
        a.resize((size_t(1 + (i + t) % 7) * k_mib) / sizeof(float) * 9);  // 9-63 MB, reused or not
        a.front() = 1.0f, a.back() = 2.0f;
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_LE(bulk_cached_bytes(), size_t(256) * k_mib);
}

// Fake page-locking hooks: the ranges they were asked to lock and unlock (a GPU backend installs real ones).
std::vector<std::pair<void*, size_t>> g_pinned;
std::vector<void*> g_unpinned;
bool g_pin_result = true;

TEST(BulkAllocator, PinLocksALargeBlockOnceKeepsItLockedWhileKeptAndUnlocksItOnRelease) {
  set_bulk_pin_hooks({[](void* p, size_t n) {
                        if (g_pin_result) g_pinned.emplace_back(p, n);
                        return g_pin_result;
                      },
                      [](void* p) { g_unpinned.push_back(p); }});
  g_pinned.clear(), g_unpinned.clear(), g_pin_result = true;
  // Not a block start, a small block, a pointer inside a block: never locked (and never read).
  int on_stack = 0;
  EXPECT_FALSE(bulk_pin(&on_stack));
  EXPECT_FALSE(bulk_pin(nullptr));
  void* small = bulk_allocate(1000);
  EXPECT_FALSE(bulk_pin(small));
  bulk_free(small);
  // A 200 MB block (kept when freed, alone over half the bound: every other kept block is evicted for it).
  void* p = bulk_allocate(200 * k_mib);
  EXPECT_FALSE(bulk_pin(static_cast<char*>(p) + 64));
  EXPECT_TRUE(g_pinned.empty());
  EXPECT_TRUE(bulk_pin(p));
  ASSERT_EQ(g_pinned.size(), 1u);
  EXPECT_EQ(g_pinned[0].first, p);
  EXPECT_GE(g_pinned[0].second, 200 * k_mib);
  EXPECT_TRUE(bulk_pin(p));  // already locked: no second call
  EXPECT_EQ(g_pinned.size(), 1u);
  bulk_free(p);  // kept, still locked
  EXPECT_TRUE(g_unpinned.empty());
  void* q = bulk_allocate(150 * k_mib);  // the same block, locked already
  ASSERT_EQ(q, p);
  EXPECT_TRUE(bulk_pin(q));
  EXPECT_EQ(g_pinned.size(), 1u);
  bulk_free(q);
  // A 90 MB block (under half: a new one) freed while the 200 MB one is kept: over the 256 MB bound together, so the
  // kept one is evicted (unlocked, then freed) to keep the newer one.
  void* r = bulk_allocate(90 * k_mib);
  EXPECT_NE(r, p);
  bulk_free(r);
  ASSERT_EQ(g_unpinned.size(), 1u);
  EXPECT_EQ(g_unpinned[0], p);
  // A block never kept (over the bound) is unlocked when freed; a failed lock is reported and not remembered.
  void* huge = bulk_allocate(300 * k_mib);
  EXPECT_TRUE(bulk_pin(huge));
  bulk_free(huge);
  ASSERT_EQ(g_unpinned.size(), 2u);
  EXPECT_EQ(g_unpinned[1], huge);
  g_pin_result = false;
  void* s = bulk_allocate(2 * k_mib);
  EXPECT_FALSE(bulk_pin(s));
  EXPECT_FALSE(bulk_pin(s));
  bulk_free(s);
  EXPECT_EQ(std::count(g_unpinned.begin(), g_unpinned.end(), s), 0);
  // Without hooks nothing is locked.
  set_bulk_pin_hooks({});
  void* t = bulk_allocate(2 * k_mib);
  EXPECT_FALSE(bulk_pin(t));
  bulk_free(t);
}

}  // namespace
}  // namespace autoglm
