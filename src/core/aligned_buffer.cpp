#include "core/aligned_buffer.h"

#include <cstdlib>
#include <new>

namespace autoglm {

aligned_buffer::~aligned_buffer() { std::free(data_); }

void aligned_buffer::resize(size_t bytes) {
  if (bytes <= bytes_) return;
  std::free(data_);
  data_ = nullptr;
  bytes_ = 0;
  size_t rounded = (bytes + 63) / 64 * 64;
  data_ = std::aligned_alloc(64, rounded);
  if (!data_) throw std::bad_alloc();
  bytes_ = rounded;
}

}  // namespace autoglm
