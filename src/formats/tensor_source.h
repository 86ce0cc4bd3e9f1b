// formats/tensor_source.h: where a model's weights come from, independent of the container. A source maps
// checkpoint names to core tensors (views into memory the source keeps alive: a mapped file today) and says which
// file each came from, so every loading error names the file and the tensor. safetensors' tensor_store implements
// it now; GGUF will be a second source, and the model's weight binding does not change.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"

namespace autoglm {

class tensor_source {
 public:
  // One stored tensor. `shape` is the shape as stored (any rank: a Conv3d kernel has 5 dimensions); `data` views
  // the bytes with that shape when it has at most 4 dimensions, else as [shape[0], product of the rest]. The
  // view owns a reference to its storage, so it stays valid after the source is gone.
  struct entry {
    std::string name;
    std::string file;  // for errors
    std::vector<int64_t> shape;
    tensor data;
    tensor scales;  // [shape[0]] F32 per-row scales when data is I8 (quantized at load), else empty
    // `data` is host memory the source made at load (a conversion, a permuted copy), not a view of a file: a
    // consumer that makes its own copy of it may hand it back with release().
    bool private_copy = false;
  };

  virtual ~tensor_source() = default;
  // What the source reads, for errors about absent tensors ("tests/fixtures/tiny_glm4v").
  virtual const std::string& location() const = 0;
  // The tensor stored under `name`, or nullptr.
  virtual const entry* find(const std::string& name) const = 0;
  virtual std::vector<std::string> names() const = 0;
  // The caller keeps its own copy of `name`'s data from now on: a source holding a private copy of it (entry::
  // private_copy) lets it go, so the memory is freed when the caller's last reference goes. The entry stays (name,
  // shape) with empty data; reading it again is an error. A no-op for views of files.
  virtual void release(const std::string& name) const { (void)name; }

  bool has(const std::string& name) const { return find(name) != nullptr; }

  // The entry; throws autoglm::error "missing tensor 'x' in <location>".
  const entry& at(const std::string& name) const {
    const entry* e = find(name);
    if (!e) throw error("missing tensor '" + name + "' in " + location());
    return *e;
  }

  // The tensor, checked to have exactly `shape` (at most 4 dimensions); throws naming file, tensor and shapes.
  tensor get(const std::string& name, const std::vector<int64_t>& shape) const {
    const entry& e = checked(name, shape);
    AG_CHECK(shape.size() <= size_t(k_max_dims), "tensor_source::get: use get_matrix for more than 4 dimensions");
    return e.data;
  }

  // A weight of any rank checked against `shape` and viewed as the matrix [shape[0], product of the rest] (the
  // input dimensions of a convolution kernel flattened in memory order, so it runs as a linear).
  tensor get_matrix(const std::string& name, const std::vector<int64_t>& shape) const {
    const entry& e = checked(name, shape);
    int64_t cols = 1;
    for (size_t i = 1; i < shape.size(); ++i) cols *= shape[i];
    if (e.data.n_dims() == 2 && e.data.dim(1) == cols) return e.data;
    return e.data.reshape({shape.empty() ? 1 : shape[0], cols});
  }

  static std::string shape_str(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
  }

 private:
  const entry& checked(const std::string& name, const std::vector<int64_t>& shape) const {
    const entry& e = at(name);
    if (e.data.empty())
      throw error(e.file + ": tensor '" + name + "' was handed back to its source by an earlier binding");
    if (e.shape != shape)
      throw error(e.file + ": tensor '" + name + "' has shape " + shape_str(e.shape) + ", expected " +
                  shape_str(shape));
    return e;
  }
};

}  // namespace autoglm
