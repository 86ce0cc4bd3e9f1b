// core/aligned_buffer.h: an owning, 64-byte aligned, uninitialized float/byte buffer (activations, scratch).
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

namespace autoglm {

class aligned_buffer {
 public:
  aligned_buffer() = default;
  explicit aligned_buffer(size_t bytes) { resize(bytes); }
  ~aligned_buffer();
  aligned_buffer(aligned_buffer&& o) noexcept : data_(o.data_), bytes_(o.bytes_) { o.data_ = nullptr; o.bytes_ = 0; }
  aligned_buffer& operator=(aligned_buffer&& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(bytes_, o.bytes_);
    return *this;
  }
  aligned_buffer(const aligned_buffer&) = delete;
  aligned_buffer& operator=(const aligned_buffer&) = delete;

  // Grows (never shrinks) the buffer; contents are not preserved.
  void resize(size_t bytes);
  size_t bytes() const { return bytes_; }
  void* data() { return data_; }
  const void* data() const { return data_; }
  float* f32() { return static_cast<float*>(data_); }
  const float* f32() const { return static_cast<const float*>(data_); }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace autoglm
