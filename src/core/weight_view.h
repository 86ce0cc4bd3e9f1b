// core/weight_view.h: a read-only 2-D matrix in its storage dtype (usually a slice of a memory-mapped file).
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace autoglm {

// Row-major [rows, cols]; rows are contiguous with stride `cols` elements.
struct weight_view {
  dtype type = dtype::F32;
  const void* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  bool empty() const { return data == nullptr; }
  const uint8_t* row_ptr(int64_t r) const {
    return static_cast<const uint8_t*>(data) + size_t(r) * size_t(cols) * dtype_size(type);
  }
};

}  // namespace autoglm
