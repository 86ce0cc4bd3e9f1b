// core/file_io.cpp: see file_io.h.
#include "core/file_io.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>

#include "core/error.h"

namespace autoglm {

unique_fd& unique_fd::operator=(unique_fd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.release();
  }
  return *this;
}

unique_fd::~unique_fd() {
  if (fd_ >= 0) ::close(fd_);
}

namespace {

const char* file_kind(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a named pipe";
  if (S_ISSOCK(m)) return "a socket";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  return "not a plain file";
}

}  // namespace

opened_file open_regular_file(const std::string& path) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw error(path + ": cannot open: " + std::strerror(errno));
  opened_file out;
  out.fd = unique_fd(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw error(path + ": cannot stat: " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw error(path + ": not a regular file (" + file_kind(st.st_mode) + ")");
  int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  out.size = uint64_t(st.st_size);
  return out;
}

std::string read_regular_file(const std::string& path, uint64_t max_bytes) {
  opened_file f = open_regular_file(path);
  if (f.size > max_bytes)
    throw error(path + ": " + std::to_string(f.size) + " bytes, more than the limit of " + std::to_string(max_bytes));
  std::string data;
  data.resize(size_t(f.size));
  size_t got = 0;
  while (got < data.size()) {
    ssize_t n = ::read(f.fd.get(), data.data() + got, data.size() - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw error(path + ": cannot read: " + std::strerror(errno));
    }
    if (n == 0) break;  // the file shrank while we read it: take what is there
    got += size_t(n);
  }
  data.resize(got);
  // The file grew since fstat: refuse rather than read an unbounded tail.
  char extra;
  ssize_t more = ::read(f.fd.get(), &extra, 1);
  if (more > 0 && got + 1 > max_bytes)
    throw error(path + ": grew past the limit of " + std::to_string(max_bytes) + " bytes while being read");
  if (more > 0) {
    data.push_back(extra);
    char buf[65536];
    for (;;) {
      ssize_t n = ::read(f.fd.get(), buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      if (data.size() + size_t(n) > max_bytes)
        throw error(path + ": grew past the limit of " + std::to_string(max_bytes) + " bytes while being read");
      data.append(buf, size_t(n));
    }
  }
  return data;
}

bool is_regular_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

namespace {

struct file_mappings {
  std::mutex mu;
  std::map<uintptr_t, uintptr_t> ranges;  // begin -> end
};
file_mappings& mappings() {
  static file_mappings m;
  return m;
}

}  // namespace

void register_file_mapping(const void* p, uint64_t n) {
  if (!p || n == 0) return;
  file_mappings& m = mappings();
  std::lock_guard<std::mutex> lock(m.mu);
  m.ranges[uintptr_t(p)] = uintptr_t(p) + n;
}

void unregister_file_mapping(const void* p) {
  file_mappings& m = mappings();
  std::lock_guard<std::mutex> lock(m.mu);
  m.ranges.erase(uintptr_t(p));
}

bool in_file_mapping(const void* p, uint64_t n) {
  if (!p) return false;
  file_mappings& m = mappings();
  std::lock_guard<std::mutex> lock(m.mu);
  auto it = m.ranges.upper_bound(uintptr_t(p));
  if (it == m.ranges.begin()) return false;
  --it;
  return uintptr_t(p) >= it->first && uintptr_t(p) + n <= it->second;
}

bool release_file_pages(const void* p, uint64_t n) noexcept {
  try {
    if (!in_file_mapping(p, n)) return false;
  } catch (...) {
    return false;
  }
  const uintptr_t page = uintptr_t(::sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (uintptr_t(p) + page - 1) / page * page, end = (uintptr_t(p) + n) / page * page;
  return end > begin && ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED) == 0;
}

bool prefault_read(const void* p, uint64_t n) noexcept {
#if defined(__linux__)
  if (!p || n == 0) return false;
  constexpr int k_populate_read = 22;  // MADV_POPULATE_READ (linux/mman.h), absent from older libc headers
  const uintptr_t page = uintptr_t(::sysconf(_SC_PAGESIZE));
  const uintptr_t begin = uintptr_t(p) / page * page, end = (uintptr_t(p) + n + page - 1) / page * page;
  return ::madvise(reinterpret_cast<void*>(begin), end - begin, k_populate_read) == 0;
#else
  (void)p, (void)n;
  return false;
#endif
}

}  // namespace autoglm
