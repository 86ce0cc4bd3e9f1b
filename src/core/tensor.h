// core/tensor.h: a tensor = data + dtype + shape (up to 4-D) + byte strides + device, optionally owning its
// storage. The same type describes a memory-mapped weight, an activation in a scratch arena, a KV-cache pool
// and, with the CUDA backend, device memory; kernels and ops never see a raw float* from the model.
//
// Shapes are outermost-first as in PyTorch: a linear weight is [out_features, in_features], activations are
// [n_tokens, width]. Strides are in bytes per dimension. For block (quantized) dtypes the last dimension is a
// packed run of whole blocks; its "stride" is meaningless and rows are addressed through stride(n_dims-2).
// Views (slices, column ranges, reshapes) share the owner of the tensor they come from.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace autoglm {

enum class device_kind : uint8_t { CPU, CUDA, COUNT };
const char* device_kind_name(device_kind k);  // "cpu", "cuda"

struct device {
  device_kind kind = device_kind::CPU;
  int32_t index = 0;
  std::string str() const;  // "cpu", "cuda:0"
  // "cpu", "cuda", "cuda:N"; throws autoglm::error on anything else.
  static device parse(const std::string& s);
  bool operator==(const device& o) const { return kind == o.kind && (kind == device_kind::CPU || index == o.index); }
  bool operator!=(const device& o) const { return !(*this == o); }
};

constexpr int k_max_dims = 4;

class tensor {
 public:
  tensor() = default;

  // A contiguous row-major view of memory someone else owns (a mapped file, a caller's vector).
  static tensor view(const void* data, dtype type, std::initializer_list<int64_t> shape, device dev = {});
  static tensor view(const void* data, dtype type, const std::vector<int64_t>& shape, device dev = {});
  // Allocates contiguous host memory (64-byte aligned, uninitialized) and owns it.
  static tensor empty_host(dtype type, std::initializer_list<int64_t> shape);
  static tensor empty_host(dtype type, const std::vector<int64_t>& shape);
  // A view with explicit byte strides (plain dtypes only), e.g. a permuted activation.
  static tensor strided(const void* data, dtype type, const std::vector<int64_t>& shape,
                        const std::vector<int64_t>& byte_strides, device dev = {});

  bool empty() const { return data_ == nullptr; }
  dtype type() const { return type_; }
  device dev() const { return dev_; }
  int n_dims() const { return n_dims_; }
  // Negative indices count from the end: dim(-1) is the innermost dimension.
  int64_t dim(int i) const;
  int64_t stride(int i) const;  // bytes
  std::vector<int64_t> shape() const { return {shape_.begin(), shape_.begin() + n_dims_}; }
  int64_t n_elements() const;
  std::string shape_str() const;  // "[3, 4096]"

  void* data() const { return data_; }
  template <class T>
  T* ptr() const {
    return static_cast<T*>(data_);
  }

  // Row view: all leading dimensions collapsed. rows() * cols() == n_elements().
  int64_t rows() const;
  int64_t cols() const { return n_dims_ ? shape_[size_t(n_dims_ - 1)] : 1; }
  // Bytes between consecutive rows; requires the leading dimensions to collapse (AG_CHECK).
  int64_t row_stride() const;
  uint8_t* row(int64_t r) const;

  bool is_contiguous() const;
  // Bytes spanned by a contiguous tensor.
  size_t n_bytes() const;

  // Views that share storage. rows_view: rows [begin, begin+n) of the 2-D row view. cols_view: columns
  // [begin, begin+n) of every row (a block type needs whole blocks). reshape: same bytes, new shape
  // (contiguous tensors only). as_2d: [rows(), cols()] with the row stride kept.
  tensor rows_view(int64_t begin, int64_t n) const;
  tensor cols_view(int64_t begin, int64_t n) const;
  tensor reshape(const std::vector<int64_t>& shape) const;
  tensor as_2d() const { return as_2d_view_unchecked(); }

  // The storage owner (null for plain views); lets a view keep its memory alive.
  const std::shared_ptr<void>& owner() const { return owner_; }
  void set_owner(std::shared_ptr<void> o) { owner_ = std::move(o); }

 private:
  void* data_ = nullptr;
  dtype type_ = dtype::F32;
  device dev_;
  int n_dims_ = 0;
  std::array<int64_t, k_max_dims> shape_{};
  std::array<int64_t, k_max_dims> stride_{};
  std::shared_ptr<void> owner_;

  void set_contiguous_strides();
  tensor as_2d_view_unchecked() const;  // [rows(), cols()] keeping strides (no contiguity check)
};

}  // namespace autoglm
