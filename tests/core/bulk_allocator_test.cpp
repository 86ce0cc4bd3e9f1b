// Tests of bulk_allocator (include/autoglm/bulk_allocator.h): sizing without zeroing, 64-byte alignment, reuse
// of large freed blocks within the stated bounds, and that kept blocks never serve a request they do not fit.
#include "autoglm/bulk_allocator.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <thread>
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

}  // namespace
}  // namespace autoglm
