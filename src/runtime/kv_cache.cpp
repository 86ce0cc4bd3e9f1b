// runtime/kv_cache.cpp: allocation of the per-layer K/V tensors (see kv_cache.h).
#include "runtime/kv_cache.h"

#include "core/error.h"
#include "ops/ops.h"

namespace autoglm {

size_t kv_cache::bytes_per_token(const kv_layout& layout, dtype type) {
  return 2 * size_t(layout.n_layers) * dtype_row_bytes(type, int64_t(layout.n_kv_heads) * layout.head_dim);
}

kv_cache::kv_cache(exec_context& ctx, const kv_layout& layout, int32_t n_blocks, int32_t block_size, dtype type)
    : n_blocks_(n_blocks), block_size_(block_size), type_(type) {
  AG_CHECK(n_blocks > 0 && block_size > 0 && layout.n_layers > 0 && layout.n_kv_heads > 0 && layout.head_dim > 0,
           "bad KV cache geometry");
  // Checked here, at start-up, rather than on the first request: a type the backend cannot store or attend
  // over is a configuration error.
  const kernel_registry& reg = kernel_registry::instance();
  for (op_id op : {op_id::KV_STORE, op_id::ATTENTION_PAGED}) reg.get(op, ctx.dev().kind, type);
  const std::vector<int64_t> shape = {n_blocks, block_size, layout.n_kv_heads, layout.head_dim};
  layers_.reserve(size_t(layout.n_layers));
  for (int32_t l = 0; l < layout.n_layers; ++l)
    layers_.push_back({ops::alloc_persistent(ctx, type, shape), ops::alloc_persistent(ctx, type, shape)});
}

size_t kv_cache::n_bytes() const {
  size_t n = 0;
  for (const paged_kv_layer& l : layers_) n += l.k.n_bytes() + l.v.n_bytes();
  return n;
}

}  // namespace autoglm
