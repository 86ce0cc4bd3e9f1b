// ops/repack_cache.h: backends' copies of linear weights (linear_weight::repacked, e.g. the CPU's r16 tiles) kept on
// disk between runs, so that a load maps them instead of making them again.
//
// Why: making the copies is most of a quantized model's load on the CPU, and most of that is the first touch of fresh
// memory: on the 2-core VM measured, the 9B Q4_0's 5 GB of tiles made a load take 2.9-16.3 s, against 0.4-0.5 s
// reading the file in place (bench/results/cpu_xeon_amx_2026-12-07.md). A kept copy is mapped from the page cache
// instead. It is written where it is made: the kernel packs straight into the new file's shared mapping
// (repack_memory), so the first load touches no more memory than it does without the cache.
//
// Opt-in: --repack-cache DIR or AUTOGLM_REPACK_CACHE=DIR (created if missing; it costs as much disk as the copies).
// One file per weight, DIR/<16 hex digits: a hash of the key without its versions>.r16: a 4 KiB header (magic, format
// version, the whole key, dtype, shape, byte count, a hash of 256 sampled 64-byte pieces of the data), then the copy.
// The key names what the copy was made from: the weight's source files (path; version: size, mtime, inode), its name
// and cut, and this executable (path; version: size, mtime, inode; a new build may lay copies out differently); dtype
// and shape are checked beside it. The versions are left out of the file's name, so a copy made from a changed file
// or by a new build replaces the old one rather than piling up beside it. A file is made unnamed (O_TMPFILE), filled,
// and linked under its name only when complete, so a load that dies leaves nothing behind; a file whose header, size
// or samples disagree is ignored and made again: never trusted, never a crash. A new file's space is allocated before
// it is written (posix_fallocate), so a full disk means no cache file, not a fault in the kernel's writes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/kernel_registry.h"

namespace autoglm::repack_cache {

// The cache directory: the one set_directory() gave, else AUTOGLM_REPACK_CACHE ("" when unset or empty: no cache).
std::string directory();
// Sets the directory for this process (the CLI's --repack-cache), ahead of the environment's.
void set_directory(const std::string& dir);
// A source file's identity for keys: its real path, then its version (size, mtime_ns, inode) between the control
// characters 0x1f and 0x1e ("" when it cannot be stat'ed). The version is part of the key but not of the file's
// name, so the copy of a changed source, or one made by another build, replaces the file of the old one.
std::string file_identity(const std::string& path);

// Process-wide counts (tests, load logs): copies mapped from the cache, files written, files found and rejected.
struct counts {
  uint64_t mapped = 0, written = 0, rejected = 0;
};
counts totals();

// The cache file of one weight copy, looked up or made during one REPACK_WEIGHT call.
class entry {
 public:
  // key: what the copy is made from (the executable's identity is added here); t, shape: the source weight's.
  entry(std::string dir, const std::string& key, dtype t, std::vector<int64_t> shape);
  ~entry();
  entry(const entry&) = delete;
  entry& operator=(const entry&) = delete;

  // As a repack_alloc: the kept copy when a valid one of `bytes` exists (filled, mapped read-only); else zeroed memory
  // backed by a new unnamed file in the directory; else nothing (the kernel allocates its own).
  repack_memory offer(int64_t bytes);
  // Once the kernel has filled the new file's memory: writes the header and links the file under its name (replacing
  // a rejected one). Nothing when offer() mapped a kept copy or made no file. Failures leave no file and are reported
  // once per process on stderr; the copy in memory stays valid either way.
  void commit();

 private:
  std::string dir_, key_, path_;
  dtype type_;
  std::vector<int64_t> shape_;
  int fd_ = -1;                   // the new unnamed file, until commit
  const uint8_t* fresh_ = nullptr;  // its mapped data
  int64_t fresh_bytes_ = 0;
};

}  // namespace autoglm::repack_cache
