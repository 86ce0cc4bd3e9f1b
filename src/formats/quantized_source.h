// formats/quantized_source.h: a tensor_source that serves another source's tensors converted to the types a
// policy picks. This is how a Hugging Face checkpoint is quantized while it loads (`--quant q8_0`): the model's
// weight binding reads names and shapes as before and receives Q8_0 / Q4_K / ... tensors (and the per-row scales
// of I8 in entry::scales), so the model code never branches on the format. The conversion is, row by row,
// quant::quantize_tensor's (the call `autoglm quantize` makes for its GGUF files), so under the same policy both
// give the same bytes; it runs in slabs of rows, so a BF16 tensor never has a whole F32 copy.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "formats/tensor_source.h"

namespace autoglm {

class thread_pool;

class quantized_source : public tensor_source {
 public:
  // The type to serve tensor `name` (stored with `shape` in `stored`) as; `stored` serves it unchanged (a view of
  // the base source). Any other type must be a quant::can_quantize target or I8.
  using policy = std::function<dtype(const std::string& name, const std::vector<int64_t>& shape, dtype stored)>;

  // Converts every tensor of `base` whose policy type differs from its stored type, now, on `pool` (null: this
  // thread). The converted tensors are owned host copies. With `release_base_pages` (only for a base whose tensors
  // view read-only file mappings, as safetensors' tensor_store: madvise would zero anonymous memory) the mapped
  // pages under each converted tensor are given back to the kernel, so resident memory holds the converted weights
  // only. Throws autoglm::error naming the file and the tensor when a conversion is impossible (a row that is not
  // whole blocks, a non-finite value, a block-type source). `base` must outlive this object.
  quantized_source(const tensor_source& base, const policy& pick, thread_pool* pool = nullptr,
                   bool release_base_pages = false);

  const std::string& location() const override { return base_.location(); }
  const entry* find(const std::string& name) const override;
  std::vector<std::string> names() const override { return base_.names(); }
  void release(const std::string& name) const override;

  // Tensors converted, and their bytes before and after (for a load log).
  int64_t n_converted() const { return int64_t(converted_.size()); }
  uint64_t bytes_before() const { return bytes_before_; }
  uint64_t bytes_after() const { return bytes_after_; }

 private:
  const tensor_source& base_;
  mutable std::map<std::string, entry> converted_;  // release() empties entries
  uint64_t bytes_before_ = 0, bytes_after_ = 0;
};

}  // namespace autoglm
