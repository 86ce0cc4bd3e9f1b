// ops/repack_cache.cpp: see repack_cache.h.
#include "ops/repack_cache.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "core/log.h"

namespace autoglm::repack_cache {

namespace {

constexpr char k_magic[8] = {'A', 'G', 'L', 'M', 'R', 'P', 'K', '\0'};
constexpr uint32_t k_format_version = 1;
constexpr int64_t k_header_bytes = 4096;  // the data starts page-aligned after it
constexpr int k_max_dims = 4;
// Header fields' byte offsets; the key fills the rest.
constexpr size_t k_at_version = 8, k_at_dtype = 12, k_at_ndims = 16, k_at_shape = 24, k_at_bytes = 56,
                 k_at_samples = 64, k_at_key_len = 72, k_at_key = 76;
constexpr size_t k_max_key = size_t(k_header_bytes) - k_at_key;
constexpr char k_version_begin = '\x1f', k_version_end = '\x1e';  // file_identity's version part

std::atomic<uint64_t> g_mapped{0}, g_written{0}, g_rejected{0};
std::atomic<bool> g_warned{false};
std::mutex g_dir_mutex;
std::string g_dir;  // set_directory's

// One warning per process: a cache that cannot write says so once, not for each of 300 weights.
void warn_once(const std::string& what) {
  if (!g_warned.exchange(true)) AG_LOG_WARN("repack cache: {} (further cache problems are not reported)", what);
}

uint64_t fnv1a(const void* p, size_t n, uint64_t h = 1469598103934665603ull) {
  const auto* b = static_cast<const uint8_t*>(p);
  for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

// A hash of 256 64-byte pieces spread evenly over the data (first and last included): catches a file whose data was
// never written back (read as zeros) or was cut, at the cost of 256 page reads rather than the whole copy's.
uint64_t sample_hash(const uint8_t* data, int64_t bytes) {
  if (bytes <= 64 * 256) return fnv1a(data, size_t(bytes));
  uint64_t h = fnv1a(&bytes, sizeof bytes);
  for (int64_t i = 0; i < 256; ++i) h = fnv1a(data + (bytes - 64) * i / 255, 64, h);
  return h;
}

template <class T>
T field(const uint8_t* header, size_t at) {
  T v;
  std::memcpy(&v, header + at, sizeof v);
  return v;
}
template <class T>
void set_field(uint8_t* header, size_t at, T v) {
  std::memcpy(header + at, &v, sizeof v);
}

// The executable's identity: a new build may lay copies out differently, so its copies are its own.
const std::string& executable_identity() {
  static const std::string id = file_identity("/proc/self/exe");
  return id;
}

// The key without its versions: what names the file. A copy made from a newer version of the same source (or by a
// newer build) replaces the old file instead of leaving it behind; the header's whole key tells them apart.
std::string unversioned(const std::string& key) {
  std::string out;
  for (size_t i = 0; i < key.size();) {
    const size_t b = key.find(k_version_begin, i);
    if (b == std::string::npos) {
      out.append(key, i, std::string::npos);
      break;
    }
    out.append(key, i, b - i);
    const size_t e = key.find(k_version_end, b);
    if (e == std::string::npos) break;
    i = e + 1;
  }
  return out;
}

std::shared_ptr<uint8_t> mapping(void* p, int64_t bytes) {
  return std::shared_ptr<uint8_t>(static_cast<uint8_t*>(p), [bytes](uint8_t* q) { ::munmap(q, size_t(bytes)); });
}

}  // namespace

std::string directory() {
  {
    const std::lock_guard<std::mutex> lock(g_dir_mutex);
    if (!g_dir.empty()) return g_dir;
  }
  const char* d = std::getenv("AUTOGLM_REPACK_CACHE");
  return d ? std::string(d) : std::string();
}

void set_directory(const std::string& dir) {
  const std::lock_guard<std::mutex> lock(g_dir_mutex);
  g_dir = dir;
}

std::string file_identity(const std::string& path) {
  char real[PATH_MAX];
  struct stat st {};
  if (!::realpath(path.c_str(), real) || ::stat(real, &st) != 0 || !S_ISREG(st.st_mode)) return {};
  // The version (size, mtime, inode) between k_version_begin and k_version_end: left out of the file's name.
  return std::string(real) + k_version_begin + std::to_string(st.st_size) + " " +
         std::to_string(int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec) + " " +
         std::to_string(uint64_t(st.st_ino)) + k_version_end;
}

counts totals() { return {g_mapped.load(), g_written.load(), g_rejected.load()}; }

entry::entry(std::string dir, const std::string& key, dtype t, std::vector<int64_t> shape)
    : dir_(std::move(dir)), type_(t), shape_(std::move(shape)) {
  if (dir_.empty() || key.empty() || executable_identity().empty() || int(shape_.size()) > k_max_dims) return;
  key_ = key + " | built by " + executable_identity();
  if (key_.size() > k_max_key) {
    key_.clear();
    return;
  }
  char name[32];
  const std::string named = unversioned(key_);
  std::snprintf(name, sizeof name, "/%016llx.r16", static_cast<unsigned long long>(fnv1a(named.data(), named.size())));
  path_ = dir_ + name;
}

entry::~entry() {
  if (fd_ >= 0) ::close(fd_);  // an unnamed file not committed vanishes with its last descriptor and mapping
}

repack_memory entry::offer(int64_t bytes) {
  if (path_.empty() || bytes <= 0) return {};
  // A kept copy: every header field and the samples must agree, else it is made again.
  const int old = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (old >= 0) {
    std::string why;
    struct stat st {};
    uint8_t h[k_header_bytes];
    if (::fstat(old, &st) != 0 || !S_ISREG(st.st_mode)) {
      why = "not a regular file";
    } else if (st.st_size != k_header_bytes + bytes) {
      why = "its size is not the copy's";
    } else if (::pread(old, h, sizeof h, 0) != k_header_bytes || std::memcmp(h, k_magic, sizeof k_magic) != 0 ||
               field<uint32_t>(h, k_at_version) != k_format_version) {
      why = "not a cache file of this format";
    } else {
      bool same = field<uint32_t>(h, k_at_dtype) == uint32_t(type_) &&
                  field<uint32_t>(h, k_at_ndims) == uint32_t(shape_.size()) &&
                  field<int64_t>(h, k_at_bytes) == bytes && field<uint32_t>(h, k_at_key_len) == key_.size() &&
                  std::memcmp(h + k_at_key, key_.data(), key_.size()) == 0;
      for (size_t i = 0; same && i < shape_.size(); ++i)
        same = field<int64_t>(h, k_at_shape + 8 * i) == shape_[i];
      if (!same) why = "made from something else (its key, dtype or shape differ)";
      if (same) {
        void* p = ::mmap(nullptr, size_t(bytes), PROT_READ, MAP_SHARED | MAP_POPULATE, old, k_header_bytes);
        if (p == MAP_FAILED) {
          why = std::string("cannot map it: ") + std::strerror(errno);
        } else {
          std::shared_ptr<uint8_t> m = mapping(p, bytes);
          if (sample_hash(m.get(), bytes) == field<uint64_t>(h, k_at_samples)) {
            ::close(old);
            ++g_mapped;
            return {m, true};
          }
          why = "its data does not match its header (cut short or never written back)";
        }
      }
    }
    ::close(old);
    ++g_rejected;
    AG_LOG_INFO("repack cache: ignoring {} ({}); making it again", path_, why);
  }
  // A new unnamed file in the directory, its space allocated before the kernel writes through the mapping.
  ::mkdir(dir_.c_str(), 0755);  // EEXIST or a real failure: the open below tells
  const int fd = ::open(dir_.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0644);
  if (fd < 0) {
    warn_once("cannot make a file in " + dir_ + ": " + std::strerror(errno) + "; loading without it");
    return {};
  }
  if (const int e = ::posix_fallocate(fd, 0, k_header_bytes + bytes); e != 0) {
    ::close(fd);
    warn_once("no room for " + std::to_string(k_header_bytes + bytes) + " bytes in " + dir_ + ": " +
              std::strerror(e) + "; loading without it");
    return {};
  }
  void* p = ::mmap(nullptr, size_t(bytes), PROT_READ | PROT_WRITE, MAP_SHARED, fd, k_header_bytes);
  if (p == MAP_FAILED) {
    ::close(fd);
    warn_once(std::string("cannot map a new file: ") + std::strerror(errno));
    return {};
  }
  fd_ = fd;
  fresh_ = static_cast<const uint8_t*>(p);
  fresh_bytes_ = bytes;
  return {mapping(p, bytes), false};
}

void entry::commit() {
  if (fd_ < 0) return;
  uint8_t h[k_header_bytes] = {};
  std::memcpy(h, k_magic, sizeof k_magic);
  set_field(h, k_at_version, k_format_version);
  set_field(h, k_at_dtype, uint32_t(type_));
  set_field(h, k_at_ndims, uint32_t(shape_.size()));
  for (size_t i = 0; i < shape_.size(); ++i) set_field(h, k_at_shape + 8 * i, shape_[i]);
  set_field(h, k_at_bytes, fresh_bytes_);
  set_field(h, k_at_samples, sample_hash(fresh_, fresh_bytes_));
  set_field(h, k_at_key_len, uint32_t(key_.size()));
  std::memcpy(h + k_at_key, key_.data(), key_.size());
  // Linked under a name of its own first, then renamed over the final one: replacing a rejected file is atomic.
  const std::string proc = "/proc/self/fd/" + std::to_string(fd_);
  static std::atomic<uint64_t> serial{0};  // ranks binding the same replicated weight at once each link their own
  const std::string tmp = path_ + ".tmp" + std::to_string(::getpid()) + "." + std::to_string(serial++);
  bool ok = ::pwrite(fd_, h, sizeof h, 0) == k_header_bytes;
  if (ok) {
    ::unlink(tmp.c_str());  // a leftover of an earlier process with this pid that died between link and rename
    ok = ::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, tmp.c_str(), AT_SYMLINK_FOLLOW) == 0;
  }
  if (ok && ::rename(tmp.c_str(), path_.c_str()) != 0) {
    ::unlink(tmp.c_str());
    ok = false;
  }
  if (ok) ++g_written;
  else warn_once("cannot keep " + path_ + ": " + std::strerror(errno));
  ::close(fd_);
  fd_ = -1;
}

}  // namespace autoglm::repack_cache
