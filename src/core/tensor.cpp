// core/tensor.cpp: shapes, strides and views of core/tensor.h.
#include "core/tensor.h"

#include <cstdlib>

#include "core/error.h"

namespace autoglm {

const char* device_kind_name(device_kind k) {
  switch (k) {
    case device_kind::CPU: return "cpu";
    case device_kind::CUDA: return "cuda";
    default: return "?";
  }
}

std::string device::str() const {
  if (kind == device_kind::CPU) return "cpu";
  return std::string(device_kind_name(kind)) + ":" + std::to_string(index);
}

device device::parse(const std::string& s) {
  if (s == "cpu") return {};
  if (s == "cuda") return {device_kind::CUDA, 0};
  if (s.rfind("cuda:", 0) == 0 && s.size() > 5 && s.size() <= 8) {
    int32_t idx = 0;
    for (size_t i = 5; i < s.size(); ++i) {
      if (s[i] < '0' || s[i] > '9') throw error("device '" + s + "': expected cpu, cuda or cuda:N");
      idx = idx * 10 + (s[i] - '0');
    }
    return {device_kind::CUDA, idx};
  }
  throw error("device '" + s + "': expected cpu, cuda or cuda:N");
}

namespace {

template <class Shape>
void check_shape(const Shape& shape) {
  AG_CHECK(shape.size() >= 1 && shape.size() <= size_t(k_max_dims), "tensor: 1 to 4 dimensions");
  for (int64_t d : shape) AG_CHECK(d >= 0, "tensor: negative dimension");
}

}  // namespace

void tensor::set_contiguous_strides() {
  const int last = n_dims_ - 1;
  const dtype_traits& t = dtype_info(type_);
  AG_CHECK(dtype_row_fits(type_, shape_[size_t(last)]),
           std::string("tensor: a ") + t.name + " row of " + std::to_string(shape_[size_t(last)]) +
               " elements is not a whole number of blocks");
  stride_[size_t(last)] = t.is_block ? 0 : t.block_bytes;
  int64_t s = int64_t(dtype_row_bytes(type_, shape_[size_t(last)]));
  for (int i = last - 1; i >= 0; --i) {
    stride_[size_t(i)] = s;
    s *= shape_[size_t(i)];
  }
}

tensor tensor::view(const void* data, dtype type, std::initializer_list<int64_t> shape, device dev) {
  return view(data, type, std::vector<int64_t>(shape), dev);
}

tensor tensor::view(const void* data, dtype type, const std::vector<int64_t>& shape, device dev) {
  check_shape(shape);
  tensor t;
  t.data_ = const_cast<void*>(data);
  t.type_ = type;
  t.dev_ = dev;
  t.n_dims_ = int(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) t.shape_[i] = shape[i];
  t.set_contiguous_strides();
  return t;
}

tensor tensor::empty_host(dtype type, std::initializer_list<int64_t> shape) {
  return empty_host(type, std::vector<int64_t>(shape));
}

tensor tensor::empty_host(dtype type, const std::vector<int64_t>& shape) {
  tensor t = view(nullptr, type, shape);
  const size_t bytes = std::max<size_t>(64, (t.n_bytes() + 63) / 64 * 64);
  void* p = std::aligned_alloc(64, bytes);
  if (!p) throw error("out of memory allocating a " + t.shape_str() + " " + dtype_name(type) + " tensor");
  t.owner_ = std::shared_ptr<void>(p, [](void* q) { std::free(q); });
  t.data_ = p;
  return t;
}

tensor tensor::strided(const void* data, dtype type, const std::vector<int64_t>& shape,
                       const std::vector<int64_t>& byte_strides, device dev) {
  check_shape(shape);
  AG_CHECK(shape.size() == byte_strides.size(), "tensor::strided: one stride per dimension");
  AG_CHECK(!dtype_is_block(type), "tensor::strided: block dtypes have packed rows");
  tensor t;
  t.data_ = const_cast<void*>(data);
  t.type_ = type;
  t.dev_ = dev;
  t.n_dims_ = int(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) {
    t.shape_[i] = shape[i];
    t.stride_[i] = byte_strides[i];
  }
  return t;
}

int64_t tensor::dim(int i) const {
  if (i < 0) i += n_dims_;
  AG_CHECK(i >= 0 && i < n_dims_, "tensor::dim: index out of range");
  return shape_[size_t(i)];
}

int64_t tensor::stride(int i) const {
  if (i < 0) i += n_dims_;
  AG_CHECK(i >= 0 && i < n_dims_, "tensor::stride: index out of range");
  return stride_[size_t(i)];
}

int64_t tensor::n_elements() const {
  if (n_dims_ == 0) return 0;
  int64_t n = 1;
  for (int i = 0; i < n_dims_; ++i) n *= shape_[size_t(i)];
  return n;
}

std::string tensor::shape_str() const {
  std::string s = "[";
  for (int i = 0; i < n_dims_; ++i) s += (i ? ", " : "") + std::to_string(shape_[size_t(i)]);
  return s + "]";
}

int64_t tensor::rows() const {
  int64_t r = 1;
  for (int i = 0; i + 1 < n_dims_; ++i) r *= shape_[size_t(i)];
  return r;
}

int64_t tensor::row_stride() const {
  if (n_dims_ <= 1) return int64_t(dtype_row_bytes(type_, cols()));
  // Leading dimensions collapse when each one's stride is the next one's stride times its extent.
  for (int i = 0; i + 2 < n_dims_; ++i)
    AG_CHECK(stride_[size_t(i)] == stride_[size_t(i + 1)] * shape_[size_t(i + 1)],
             "tensor " + shape_str() + ": leading dimensions are not collapsible into rows");
  return stride_[size_t(n_dims_ - 2)];
}

uint8_t* tensor::row(int64_t r) const {
  AG_CHECK(r >= 0 && r < rows(), "tensor::row " + std::to_string(r) + " out of " + std::to_string(rows()));
  return static_cast<uint8_t*>(data_) + r * row_stride();
}

bool tensor::is_contiguous() const {
  if (n_dims_ == 0) return true;
  const dtype_traits& t = dtype_info(type_);
  if (!t.is_block && stride_[size_t(n_dims_ - 1)] != t.block_bytes) return false;
  int64_t s = int64_t(dtype_row_bytes(type_, cols()));
  for (int i = n_dims_ - 2; i >= 0; --i) {
    if (shape_[size_t(i)] > 1 && stride_[size_t(i)] != s) return false;
    s *= shape_[size_t(i)];
  }
  return true;
}

size_t tensor::n_bytes() const {
  if (n_dims_ == 0) return 0;
  return size_t(rows()) * dtype_row_bytes(type_, cols());
}

tensor tensor::rows_view(int64_t begin, int64_t n) const {
  AG_CHECK(begin >= 0 && n >= 0 && begin + n <= rows(), "tensor::rows_view out of range");
  const int64_t rs = row_stride();
  tensor t = *this;
  t.data_ = static_cast<uint8_t*>(data_) + begin * rs;
  t.n_dims_ = 2;
  t.shape_ = {n, cols(), 0, 0};
  t.stride_ = {rs, stride_[size_t(n_dims_ - 1)], 0, 0};
  if (n_dims_ == 1) t.stride_[1] = stride_[0];
  return t;
}

tensor tensor::cols_view(int64_t begin, int64_t n) const {
  AG_CHECK(begin >= 0 && n >= 0 && begin + n <= cols(), "tensor::cols_view out of range");
  AG_CHECK(dtype_row_fits(type_, begin) && dtype_row_fits(type_, n),
           std::string("tensor::cols_view: ") + dtype_name(type_) + " columns must start and end on a block");
  tensor t = as_2d_view_unchecked();
  t.data_ = static_cast<uint8_t*>(data_) + dtype_row_bytes(type_, begin);
  t.shape_[1] = n;
  return t;
}

tensor tensor::reshape(const std::vector<int64_t>& shape) const {
  AG_CHECK(is_contiguous(), "tensor::reshape of a non-contiguous tensor " + shape_str());
  tensor t = view(data_, type_, shape, dev_);
  AG_CHECK(t.n_elements() == n_elements(), "tensor::reshape " + shape_str() + " -> " + t.shape_str());
  t.owner_ = owner_;
  return t;
}

tensor tensor::as_2d_view_unchecked() const {
  tensor t = *this;
  t.n_dims_ = 2;
  t.shape_ = {rows(), cols(), 0, 0};
  t.stride_ = {n_dims_ >= 2 ? row_stride() : int64_t(dtype_row_bytes(type_, cols())), stride_[size_t(n_dims_ - 1)], 0, 0};
  return t;
}

}  // namespace autoglm
