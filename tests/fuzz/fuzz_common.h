// tests/fuzz/fuzz_common.h: what the libFuzzer targets share — splitting one input into parts, a file that
// holds the input (parsers that only take a path read it through the real open/mmap path), and the oracle for
// exceptions.
//
// Exception policy (core/error.h): bad input must end in autoglm::error (the server answers 400, the CLI prints
// it). Targets catch only autoglm::error; anything else that escapes (nlohmann::json::exception,
// std::length_error, std::out_of_range, ...) reaches std::terminate and libFuzzer records it as a crash, because
// in the server such an exception is a 500 or a dropped connection instead of a clear 400.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>

namespace autoglm::fuzz {

// Inputs made of two parts (a template and its context, a tokenizer.json and a text) are split at the first
// line that reads "%%%%": readable in seed files, and never part of JSON (it is not JSON whitespace) nor of
// any real chat template. Without the separator the whole input is the first part and `has_second` is false.
inline constexpr std::string_view part_separator = "\n%%%%\n";

struct two_parts {
  std::string_view first, second;
  bool has_second = false;
};

inline two_parts split_input(const uint8_t* data, size_t size) {
  std::string_view all(reinterpret_cast<const char*>(data), size);
  size_t at = all.find(part_separator);
  if (at == std::string_view::npos) return {all, {}, false};
  return {all.substr(0, at), all.substr(at + part_separator.size()), true};
}

// A file in memory (memfd) whose path, /proc/self/fd/N, opens as a regular file: code under test goes
// through its real open + fstat + mmap/read path, with no temporary file on disk and no API change. One per
// process, rewritten for each input.
class memory_file {
 public:
  memory_file() {
    fd_ = ::memfd_create("autoglm-fuzz", MFD_CLOEXEC);
    if (fd_ < 0) {
      std::perror("memfd_create");
      std::abort();
    }
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  ~memory_file() { ::close(fd_); }
  memory_file(const memory_file&) = delete;
  memory_file& operator=(const memory_file&) = delete;

  // Replaces the contents with data[0, size) and returns the path to open.
  const std::string& write(const uint8_t* data, size_t size) {
    if (::ftruncate(fd_, 0) != 0 || (size && ::pwrite(fd_, data, size, 0) != ssize_t(size))) {
      std::perror("memory_file");
      std::abort();
    }
    return path_;
  }

 private:
  int fd_ = -1;
  std::string path_;
};

// Reports a broken invariant (a wrong result rather than a crash) and aborts, so libFuzzer saves the input.
[[noreturn]] inline void invariant_failed(const char* what, const std::string& detail = {}) {
  std::fprintf(stderr, "fuzz invariant failed: %s %s\n", what, detail.c_str());
  std::abort();
}

}  // namespace autoglm::fuzz

#define FUZZ_CHECK(cond, ...)                                                              \
  do {                                                                                     \
    if (!(cond)) ::autoglm::fuzz::invariant_failed(#cond, std::string{__VA_ARGS__});       \
  } while (0)
