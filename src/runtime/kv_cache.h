// runtime/kv_cache.h: the paged KV cache's storage. One K and one V tensor per decoder layer, each
// [n_blocks, block_size, n_kv_heads, head_dim] on the engine's device, in the element type chosen at creation
// (F32, F16, BF16 or Q8_0 on the CPU: any type with kv_store / attention kernels registered for it). Which
// block belongs to which sequence is the block manager's business; the model only sees the layers.
#pragma once

#include <cstdint>
#include <vector>

#include "core/kernel_registry.h"
#include "model/model.h"
#include "ops/context.h"

namespace autoglm {

class kv_cache {
 public:
  // Throws autoglm::error when the context's backend has no kv_store or paged-attention kernel for `type`
  // (the message names op, device and dtype) or the device is out of memory.
  kv_cache(exec_context& ctx, const kv_layout& layout, int32_t n_blocks, int32_t block_size, dtype type);

  // Bytes one token takes over all layers, K and V (sizes the cache from a memory budget).
  static size_t bytes_per_token(const kv_layout& layout, dtype type);

  const std::vector<paged_kv_layer>& layers() const { return layers_; }
  int32_t n_blocks() const { return n_blocks_; }
  int32_t block_size() const { return block_size_; }
  dtype type() const { return type_; }
  size_t n_bytes() const;

 private:
  std::vector<paged_kv_layer> layers_;
  int32_t n_blocks_ = 0, block_size_ = 0;
  dtype type_ = dtype::F32;
};

}  // namespace autoglm
