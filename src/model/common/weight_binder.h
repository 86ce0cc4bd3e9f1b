// model/common/weight_binder.h: binds a checkpoint's tensors for one execution context, for every model family's
// weights.cpp: shapes checked by the tensor source (errors name the file and the tensor), dtypes checked against
// the kernel registry (a weight the device cannot run fails at load, naming tensor, dtype and device), then the
// backend's preparation (on the CPU the mapped tensor itself; on a GPU an upload).
#pragma once

#include <string>
#include <vector>

#include "core/kernel_registry.h"
#include "core/tensor.h"
#include "core/weights.h"
#include "formats/tensor_source.h"
#include "ops/context.h"

namespace autoglm {

class weight_binder {
 public:
  weight_binder(const tensor_source& src, exec_context& ctx) : src_(src), ctx_(ctx) {}

  // A weight of any rank run as [shape[0], product of the rest]; bias_name empty = no bias.
  linear_weight linear(const std::string& name, const std::vector<int64_t>& shape, const std::string& bias_name,
                       shard_kind shard);
  // A norm weight, bias or table converted to F32 on the device.
  tensor param(const std::string& name, const std::vector<int64_t>& shape);
  // A table read by `op` in its storage dtype (the token embedding).
  tensor table(const std::string& name, const std::vector<int64_t>& shape, op_id op);
  // Throws naming the tensor, its dtype and the device when the device has no `op` kernel for `type`.
  void require_kernel(op_id op, const std::string& name, dtype type, const char* role) const;

  const tensor_source& source() const { return src_; }

 private:
  const tensor& float_tensor(const std::string& name, const std::vector<int64_t>& shape);

  const tensor_source& src_;
  exec_context& ctx_;
  tensor held_;
};

}  // namespace autoglm
