// core/weights.h: a linear layer's weight as the model holds it: the tensor in its storage format, its bias,
// any separate scales, and how it is sharded for tensor parallelism. The model never branches on the format:
// it hands a linear_weight to ops::linear and the kernel registry picks the kernel for (device, weight dtype).
#pragma once

#include <string>

#include "core/tensor.h"

namespace autoglm {

// Tensor-parallel placement of a linear weight (vLLM's ColumnParallel / RowParallel / VocabParallel).
enum class shard_kind : uint8_t {
  REPLICATED,  // every rank holds the whole weight
  COLUMN,      // output features split across ranks (q/k/v, gate_up): no communication after
  ROW,         // input features split across ranks (o_proj, down_proj): all-reduce after
  VOCAB,       // embedding / lm_head rows split by vocabulary: gather after
};

struct shard_spec {
  shard_kind kind = shard_kind::REPLICATED;
  int32_t rank = 0;
  int32_t n_ranks = 1;
};

struct linear_weight {
  tensor weight;  // [out_features, in_features] in its storage dtype (BF16/F16/F32, I8, or a GGUF block type)
  tensor bias;    // [out_features] F32, or empty
  tensor scales;  // [out_features] F32 per-output-channel scales of an I8 weight, else empty
  // The same values in a layout the backend's LINEAR reads faster, made once at load (REPACK_WEIGHT: on x86 CPUs
  // Q4_0/Q5_0/Q8_0/Q4_K in tiles of 16 interleaved rows, kernels/cpu/quant_repack.h), or empty. Kernels that find it
  // read it instead of `weight`, which stays valid (its pages may have been given back to the file mapping) unless
  // weight_released says otherwise.
  tensor repacked;
  // The weight was a private copy made at load (ops::prepare_linear's private_copy) and its memory was let go once
  // `repacked` was made: `weight` then only carries the shape and dtype (its data pointer is the copy's, whose bytes
  // are NOT in the file's layout). Nothing may read weight.data() then.
  bool weight_released = false;
  shard_spec shard;
  std::string name;  // checkpoint name, for errors and dumps

  bool empty() const { return weight.empty(); }
  int64_t out_features() const { return weight.dim(0); }
  int64_t in_features() const { return weight.dim(1); }
  // Bytes streamed when every row is read once (the decode cost of this layer).
  size_t weight_bytes() const { return weight.n_bytes(); }
};

}  // namespace autoglm
