// model/common/weight_binder.h: binds a checkpoint's tensors for one execution context, for every model family's
// weights.cpp: shapes checked by the tensor source (errors name the file and the tensor), dtypes checked against
// the kernel registry (a weight the device cannot run fails at load, naming tensor, dtype and device), then the
// backend's preparation (on the CPU the mapped tensor itself; on a GPU an upload).
//
// Tensor parallelism: a binder for rank r of n cuts each linear weight to the rank's part before preparing it
// (vLLM's column / row / vocabulary-parallel layers): rows for column-parallel weights (given as row ranges, so a
// fused gate|up or a head-aligned q/k/v slice is one call), columns for row-parallel ones (whole blocks for a
// quantized type: an error names the tensor otherwise), vocabulary rows padded with zero rows to an equal share
// for lm_head. Rank 0 of a row-parallel layer keeps its bias (added once after the all-reduce). A rank's parts are
// copies in host memory (a mapped file is never written); with one rank nothing is cut or copied.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/kernel_registry.h"
#include "core/tensor.h"
#include "core/weights.h"
#include "formats/tensor_source.h"
#include "ops/context.h"

namespace autoglm {

class weight_binder {
 public:
  // A binder for rank `rank` of `n_ranks` (1: the whole checkpoint).
  weight_binder(const tensor_source& src, exec_context& ctx, int32_t rank = 0, int32_t n_ranks = 1)
      : src_(src), ctx_(ctx), rank_(rank), n_ranks_(n_ranks) {}

  // A weight of any rank run as [shape[0], product of the rest], whole on every rank (REPLICATED, or any kind
  // with one rank); bias_name empty = no bias.
  linear_weight linear(const std::string& name, const std::vector<int64_t>& shape, const std::string& bias_name,
                       shard_kind shard);
  // Column-parallel: this rank's output rows, the given [first, first + count) ranges of the checkpoint's rows
  // concatenated in order (with the same rows of the bias).
  using row_ranges = std::vector<std::pair<int64_t, int64_t>>;
  linear_weight linear_rows(const std::string& name, const std::vector<int64_t>& shape, const std::string& bias_name,
                            const row_ranges& rows);
  // Row-parallel: input columns [first, first + count) of every row; the bias on rank 0 only.
  linear_weight linear_cols(const std::string& name, const std::vector<int64_t>& shape, const std::string& bias_name,
                            int64_t first, int64_t count);
  // Several column-parallel weights over the same input stacked into one (q | k | v): one GEMV or GEMM instead of
  // several. Each part contributes its `rows` ranges in order (its bias rows too; a part without a bias adds
  // zeros). Empty when the parts are not all of one dtype (with or without I8 scales alike): bind them one by one.
  struct stacked_part {
    std::string name;
    std::vector<int64_t> shape;
    std::string bias_name;
    row_ranges rows;
  };
  linear_weight linear_stacked(const std::string& name, const std::vector<stacked_part>& parts);
  // Vocabulary-parallel (lm_head): rows [rank * share, ...) with share = ceil(shape[0] / n_ranks), the last rank's
  // missing rows zero (their logits are cut off after the gather).
  linear_weight linear_vocab(const std::string& name, const std::vector<int64_t>& shape);

  int32_t rank() const { return rank_; }
  int32_t n_ranks() const { return n_ranks_; }
  // A norm weight, bias or table converted to F32 on the device.
  tensor param(const std::string& name, const std::vector<int64_t>& shape);
  // A table read by `op` in its storage dtype (the token embedding).
  tensor table(const std::string& name, const std::vector<int64_t>& shape, op_id op);
  // Throws naming the tensor, its dtype and the device when the device has no `op` kernel for `type`.
  void require_kernel(op_id op, const std::string& name, dtype type, const char* role) const;

  const tensor_source& source() const { return src_; }

 private:
  const tensor& float_tensor(const std::string& name, const std::vector<int64_t>& shape);
  // The stored matrix of a linear weight, its dtype checked against the device's LINEAR kernels.
  tensor linear_matrix(const std::string& name, const std::vector<int64_t>& shape) const;
  // Prepares a (possibly cut) host weight with its bias and I8 scales for the device. private_copy: w is host
  // memory no one else keeps (a cut or stacked copy made here; ops::prepare_linear). cache_key: what w was made from,
  // for a backend copy kept on disk (ops::prepare_linear); "" for none.
  linear_weight prepare(const std::string& name, const tensor& w, const tensor& bias, const tensor& scales,
                        shard_kind shard, bool private_copy, const std::string& cache_key);
  // The start of a cache key: the identity of the file tensor `name` comes from, and the name ("" when no cache
  // directory is set, or the file cannot be identified: no kept copy then).
  std::string source_key(const std::string& name) const;

  const tensor_source& src_;
  exec_context& ctx_;
  int32_t rank_ = 0, n_ranks_ = 1;
  tensor held_;
};

}  // namespace autoglm
