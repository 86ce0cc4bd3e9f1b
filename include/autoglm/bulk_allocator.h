// autoglm/bulk_allocator.h: an allocator for large arrays that are written in full right after they are sized
// (an image's pixel values: 63 MB of floats for one 1080x2400 screenshot, made again for every agent step).
//
// Why: std::vector<float>(n) zero-fills the array before the parallel fill writes it again, and a fresh 63 MB
// allocation is a fresh mmap whose 15,000 pages all fault on first touch. Measured on a 2-core VM: zero-filling a
// 63 MB std::vector took 41-45 ms, writing the same bytes into memory already faulted in 8-10 ms. So:
//  - construct() without arguments default-initializes: resize(n) leaves floats unset (callers write every one);
//  - blocks of 1 MiB and more are kept when freed (a few, bounded in bytes) and handed out again to a request of
//    at least half their size: the next image of a similar size reuses pages that are already mapped.
// Transparent huge pages were tried instead (MADV_HUGEPAGE): 19-26 ms single-threaded but 88-148 ms when two
// threads faulted the same array (direct compaction), so they are not used.
#pragma once

#include <cstddef>
#include <new>
#include <utility>
#include <vector>

namespace autoglm {

// 64-byte aligned; never returns null (throws std::bad_alloc). Implemented in core (core/bulk_allocator.cpp).
void* bulk_allocate(std::size_t bytes);
void bulk_free(void* p) noexcept;
// Bytes of freed blocks kept for reuse right now (tests, metrics).
std::size_t bulk_cached_bytes() noexcept;

// Page-locking of large blocks for device uploads. A host-to-device copy from pageable memory goes through the
// driver's staging buffers: 7.2 ms for a screenshot's 63 MB of pixels on an H100 host (8.8 GB/s), against 1.2 ms
// from page-locked memory (53.5 GB/s). A GPU backend installs pin / unpin (cudaHostRegister / cudaHostUnregister);
// bulk_pin(p) then page-locks the block of 1 MiB or more that starts at p, once: the block stays locked while it is
// kept for reuse, so the next image's array is locked already, and is unlocked (unpin) before it goes back to the
// system. pin returns whether it locked the range; a failure (e.g. the memlock limit) leaves the block as it was.
struct bulk_pin_hooks {
  bool (*pin)(void* p, std::size_t bytes) = nullptr;
  void (*unpin)(void* p) = nullptr;
};
void set_bulk_pin_hooks(const bulk_pin_hooks& hooks) noexcept;
// Whether p is the start of a live block of 1 MiB or more that is page-locked after the call (pinning it now through
// the installed hook if it was not); false for any other pointer (never read), or with no hooks installed.
bool bulk_pin(const void* p) noexcept;

template <class T>
struct bulk_allocator {
  using value_type = T;
  static_assert(alignof(T) <= 64, "bulk_allocate aligns to 64 bytes");

  bulk_allocator() noexcept = default;
  template <class U>
  bulk_allocator(const bulk_allocator<U>&) noexcept {}

  T* allocate(std::size_t n) {
    if (n > std::size_t(-1) / 2 / sizeof(T)) throw std::bad_array_new_length();
    return static_cast<T*>(bulk_allocate(n * sizeof(T)));
  }
  void deallocate(T* p, std::size_t) noexcept { bulk_free(p); }

  // Default-initialization (no zeroing) for value-less construction; anything else as usual.
  template <class U>
  void construct(U* p) noexcept(noexcept(::new (static_cast<void*>(p)) U)) {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }

  template <class U>
  bool operator==(const bulk_allocator<U>&) const noexcept {
    return true;
  }
};

// An image's pixel values (and other large float arrays filled right after sizing).
using pixel_array = std::vector<float, bulk_allocator<float>>;

}  // namespace autoglm
