// core/file_io.h: opening files a user names (model files, templates, images, configs) safely.
//
// Only regular files are accepted: a FIFO, socket or device would block a load forever or never end (a
// `model.safetensors` that is a named pipe hung `serve`). Files are opened with O_NONBLOCK so even the open of
// a FIFO returns at once, then checked with fstat. Reads are bounded: a caller states the largest file it will
// take, and an error names the path and the limit.
#pragma once

#include <cstdint>
#include <string>

namespace autoglm {

// An owned POSIX file descriptor (closed on destruction).
class unique_fd {
 public:
  unique_fd() = default;
  explicit unique_fd(int fd) : fd_(fd) {}
  unique_fd(unique_fd&& o) noexcept : fd_(o.release()) {}
  unique_fd& operator=(unique_fd&& o) noexcept;
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  ~unique_fd();
  int get() const { return fd_; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }

 private:
  int fd_ = -1;
};

struct opened_file {
  unique_fd fd;        // blocking mode restored
  uint64_t size = 0;   // st_size at open
};

// Opens `path` read-only. Throws autoglm::error "<path>: cannot open: <reason>" when it is missing or
// unreadable, and "<path>: not a regular file (<kind>)" for a directory, FIFO, socket or device.
opened_file open_regular_file(const std::string& path);

// Reads a whole regular file. Throws autoglm::error naming the path when it is not a regular file, cannot be
// read, or is larger than max_bytes ("<path>: 123 bytes, more than the limit of 100").
std::string read_regular_file(const std::string& path, uint64_t max_bytes);

// True when `path` names a regular file (following symlinks); false for anything else or nothing.
bool is_regular_file(const std::string& path);

// Maps the pages of [p, p + n) into this process now, reading them as a read fault would (Linux 5.14+'s
// MADV_POPULATE_READ; for a file mapping, from the page cache or the disk): later reads of the range take no page
// faults. Pages only partly inside the range are included. Returns false where the kernel does not do it (older
// kernels, other systems) or refuses the range; nothing else changes then.
bool prefault_read(const void* p, uint64_t n) noexcept;

// Read-only file mappings of this process (formats' mapped_file records its range while it is mapped): their pages
// can be dropped at any time and are read again from the file when next touched, which anonymous memory's are not
// (they would read back as zeros).
void register_file_mapping(const void* p, uint64_t n);
void unregister_file_mapping(const void* p);
// Whether [p, p + n) lies inside one registered read-only file mapping.
bool in_file_mapping(const void* p, uint64_t n);
// Gives back the pages wholly inside [p, p + n) when the range lies in a registered read-only file mapping, so they
// stop counting as this process's memory (a neighbouring tensor's partial pages stay); returns whether it did.
// Nothing happens to any other memory.
bool release_file_pages(const void* p, uint64_t n) noexcept;

}  // namespace autoglm
