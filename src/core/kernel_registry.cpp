// core/kernel_registry.cpp: the (op, device, dtype) -> kernel table (see kernel_registry.h).
#include "core/kernel_registry.h"

#include "core/error.h"

namespace autoglm {

const char* op_name(op_id op) {
  switch (op) {
    case op_id::LINEAR: return "linear";
    case op_id::LINEAR_SWIGLU: return "linear_swiglu";
    case op_id::LINEAR_ADD: return "linear_add";
    case op_id::RMS_NORM: return "rms_norm";
    case op_id::LAYER_NORM: return "layer_norm";
    case op_id::ROPE_MROPE: return "rope_mrope";
    case op_id::ROPE_2D: return "rope_2d";
    case op_id::KV_STORE: return "kv_store";
    case op_id::ROPE_KV_STORE: return "rope_kv_store";
    case op_id::LINEAR_ROPE_KV_STORE: return "linear_rope_kv_store";
    case op_id::ATTENTION_PAGED: return "attention_paged";
    case op_id::ATTENTION_DENSE: return "attention_dense";
    case op_id::ATTENTION_CROSS: return "attention_cross";
    case op_id::IM2COL_1D: return "im2col_1d";
    case op_id::ADD_SCALED: return "add_scaled";
    case op_id::SILU_MUL: return "silu_mul";
    case op_id::GELU: return "gelu";
    case op_id::ADD: return "add";
    case op_id::EMBEDDING: return "embedding";
    case op_id::SOFTMAX: return "softmax";
    case op_id::COPY: return "copy";
    case op_id::POS_EMBED_BICUBIC: return "pos_embed_bicubic";
    case op_id::IMAGE_PATCHES: return "image_patches";
    case op_id::SAMPLE: return "sample";
    case op_id::RESIDUAL_RMS_NORM: return "residual_rms_norm";
    case op_id::REPACK_WEIGHT: return "repack_weight";
    default: return "?";
  }
}

kernel_registry& kernel_registry::instance() {
  static kernel_registry r;
  return r;
}

void kernel_registry::add(op_id op, device_kind dev, dtype type, void* fn) {
  AG_CHECK(op < op_id::COUNT && dev < device_kind::COUNT && type < dtype::COUNT, "kernel_registry::add: bad key");
  table_[size_t(op)][size_t(dev)][size_t(type)] = fn;
}

void* kernel_registry::find(op_id op, device_kind dev, dtype type) const {
  if (op >= op_id::COUNT || dev >= device_kind::COUNT || type >= dtype::COUNT) return nullptr;
  return table_[size_t(op)][size_t(dev)][size_t(type)];
}

void* kernel_registry::get(op_id op, device_kind dev, dtype type) const {
  void* fn = find(op, dev, type);
  if (!fn)
    throw error(std::string("no kernel for ") + op_name(op) + " on " + device_kind_name(dev) + " with " +
                dtype_name(type) + " operands (not implemented by that backend)");
  return fn;
}

void kernel_registry::set_memory(device_kind dev, const device_memory& mem) {
  AG_CHECK(dev < device_kind::COUNT, "kernel_registry::set_memory: bad device");
  memory_[size_t(dev)] = mem;
}

const device_memory& kernel_registry::memory(device_kind dev) const {
  if (dev >= device_kind::COUNT || !memory_[size_t(dev)].alloc)
    throw error(std::string("no backend for device kind ") + device_kind_name(dev) + " in this build");
  return memory_[size_t(dev)];
}

}  // namespace autoglm
