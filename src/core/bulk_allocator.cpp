// core/bulk_allocator.cpp: the blocks behind bulk_allocator (include/autoglm/bulk_allocator.h says why).
// Every block carries its capacity in a 64-byte header in front of the data, so a kept block can serve any
// request between half its size and its size, and bulk_free needs no size from the caller; the header's second
// word says whether the block is page-locked (bulk_pin). Blocks of 1 MiB and more, live or kept, are listed, so
// bulk_pin can tell one of them from any other pointer without reading memory in front of it.
#include "autoglm/bulk_allocator.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <vector>

namespace autoglm {

namespace {

constexpr std::size_t k_header = 64;                       // keeps the data 64-byte aligned
constexpr std::size_t k_keep_from = std::size_t(1) << 20;  // smaller blocks go straight back to malloc
constexpr int k_max_kept = 4;
// Two 1080x2400 screenshots' pixel arrays (63 MB each) with room to spare; a bigger block is never kept.
constexpr std::size_t k_max_kept_bytes = std::size_t(256) << 20;

struct kept_blocks {
  std::mutex mu;
  void* block[k_max_kept] = {};  // header addresses; capacity read from the header
  std::size_t bytes = 0;         // sum of kept capacities
  std::vector<void*> large;      // headers of every block of k_keep_from bytes or more, live or kept
  bulk_pin_hooks hooks;
};

kept_blocks& kept() {
  static kept_blocks* k = new kept_blocks;  // never destroyed: frees may come from static destructors
  return *k;
}

std::size_t capacity_of(void* header) { return *static_cast<std::size_t*>(header); }
std::size_t& pinned_of(void* header) { return static_cast<std::size_t*>(header)[1]; }
void* data_of(void* header) { return static_cast<char*>(header) + k_header; }

// A listed block back to the system (k.mu held): unlocked first if it was locked, then unlisted and freed.
void release(kept_blocks& k, void* header) {
  if (pinned_of(header) && k.hooks.unpin) k.hooks.unpin(data_of(header));
  const auto it = std::find(k.large.begin(), k.large.end(), header);
  if (it != k.large.end()) k.large.erase(it);
  std::free(header);
}

}  // namespace

void* bulk_allocate(std::size_t bytes) {
  if (bytes == 0) bytes = 1;
  if (bytes >= k_keep_from) {
    kept_blocks& k = kept();
    std::lock_guard<std::mutex> lock(k.mu);
    // The smallest kept block that fits and is at most twice the request.
    int best = -1;
    for (int i = 0; i < k_max_kept; ++i) {
      if (!k.block[i]) continue;
      const std::size_t cap = capacity_of(k.block[i]);
      if (cap >= bytes && cap / 2 <= bytes && (best < 0 || cap < capacity_of(k.block[best]))) best = i;
    }
    if (best >= 0) {
      void* header = k.block[best];
      k.block[best] = nullptr;
      k.bytes -= capacity_of(header);
      return static_cast<char*>(header) + k_header;
    }
  }
  const std::size_t rounded = (bytes + 63) / 64 * 64;
  if (rounded > SIZE_MAX - k_header) throw std::bad_alloc();
  void* header = std::aligned_alloc(64, rounded + k_header);
  if (!header) throw std::bad_alloc();
  *static_cast<std::size_t*>(header) = rounded;
  pinned_of(header) = 0;
  if (rounded >= k_keep_from) {
    kept_blocks& k = kept();
    std::lock_guard<std::mutex> lock(k.mu);
    try {
      k.large.push_back(header);
    } catch (...) {
      std::free(header);
      throw;
    }
  }
  return static_cast<char*>(header) + k_header;
}

void bulk_free(void* p) noexcept {
  if (!p) return;
  void* header = static_cast<char*>(p) - k_header;
  const std::size_t cap = capacity_of(header);
  if (cap >= k_keep_from && cap <= k_max_kept_bytes) {
    kept_blocks& k = kept();
    std::lock_guard<std::mutex> lock(k.mu);
    // Evict the smallest kept blocks until this one fits under the byte bound and a slot is free.
    for (;;) {
      int slot = -1, smallest = -1;
      for (int i = 0; i < k_max_kept; ++i) {
        if (!k.block[i]) {
          slot = i;
          continue;
        }
        if (smallest < 0 || capacity_of(k.block[i]) < capacity_of(k.block[smallest])) smallest = i;
      }
      if (slot >= 0 && k.bytes + cap <= k_max_kept_bytes) {
        k.block[slot] = header;
        k.bytes += cap;
        return;
      }
      if (smallest < 0) break;  // nothing kept, and this block alone is over the bound (cannot happen)
      k.bytes -= capacity_of(k.block[smallest]);
      release(k, k.block[smallest]);
      k.block[smallest] = nullptr;
    }
    release(k, header);
    return;
  }
  if (cap >= k_keep_from) {
    kept_blocks& k = kept();
    std::lock_guard<std::mutex> lock(k.mu);
    release(k, header);
    return;
  }
  std::free(header);
}

void set_bulk_pin_hooks(const bulk_pin_hooks& hooks) noexcept {
  kept_blocks& k = kept();
  std::lock_guard<std::mutex> lock(k.mu);
  k.hooks = hooks;
}

bool bulk_pin(const void* p) noexcept {
  if (!p) return false;
  kept_blocks& k = kept();
  std::lock_guard<std::mutex> lock(k.mu);
  if (!k.hooks.pin) return false;
  void* header = static_cast<char*>(const_cast<void*>(p)) - k_header;
  if (std::find(k.large.begin(), k.large.end(), header) == k.large.end()) return false;
  if (!pinned_of(header)) pinned_of(header) = k.hooks.pin(data_of(header), capacity_of(header)) ? 1 : 0;
  return pinned_of(header) != 0;
}

std::size_t bulk_cached_bytes() noexcept {
  kept_blocks& k = kept();
  std::lock_guard<std::mutex> lock(k.mu);
  return k.bytes;
}

}  // namespace autoglm
