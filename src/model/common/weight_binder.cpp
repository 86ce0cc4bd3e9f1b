// model/common/weight_binder.cpp: see weight_binder.h.
#include "model/common/weight_binder.h"

#include "core/error.h"
#include "ops/ops.h"

namespace autoglm {

linear_weight weight_binder::linear(const std::string& name, const std::vector<int64_t>& shape,
                                    const std::string& bias_name, shard_kind shard) {
  const tensor w = src_.get_matrix(name, shape);
  require_kernel(op_id::LINEAR, name, w.type(), "a linear weight");
  tensor bias;
  if (!bias_name.empty()) bias = float_tensor(bias_name, {shape[0]});
  linear_weight lw = ops::prepare_linear(ctx_, w, bias, name);
  // An I8 weight's per-row scales come with it (a source that quantized the checkpoint at load).
  if (const tensor& scales = src_.at(name).scales; !scales.empty()) lw.scales = ops::prepare_param_f32(ctx_, scales);
  lw.shard.kind = shard;
  return lw;
}

tensor weight_binder::param(const std::string& name, const std::vector<int64_t>& shape) {
  return ops::prepare_param_f32(ctx_, float_tensor(name, shape));
}

tensor weight_binder::table(const std::string& name, const std::vector<int64_t>& shape, op_id op) {
  const tensor t = src_.get(name, shape);
  require_kernel(op, name, t.type(), "a table");
  return ops::prepare_weight(ctx_, t);
}

const tensor& weight_binder::float_tensor(const std::string& name, const std::vector<int64_t>& shape) {
  held_ = src_.get(name, shape);
  if (!dtype_info(held_.type()).is_float)
    throw error(src_.at(name).file + ": tensor '" + name + "' has dtype " + dtype_name(held_.type()) +
                "; norm weights, biases and tables must be F32, F16 or BF16");
  return held_;
}

void weight_binder::require_kernel(op_id op, const std::string& name, dtype type, const char* role) const {
  const device dev = ctx_.dev();
  if (!kernel_registry::instance().has(op, dev.kind, type))
    throw error(src_.at(name).file + ": tensor '" + name + "' has dtype " + dtype_name(type) + ", which the " +
                dev.str() + " backend cannot run as " + role + " (no " + op_name(op) + " kernel for " +
                dtype_name(type) + " on " + dev.str() + ")");
}

}  // namespace autoglm
