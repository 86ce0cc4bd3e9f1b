// kernels/cpu/register.cpp: the CPU backend's table: host memory and one entry per (op, dtype) it implements.
// The ISA (AVX2+FMA+F16C or portable C++) is chosen inside each kernel at run time.
#include "kernels/cpu/register.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/error.h"
#include "kernels/cpu/activations.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/attention_cross.h"
#include "kernels/cpu/copy.h"
#include "kernels/cpu/im2col.h"
#include "kernels/cpu/inprocess_communicator.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/norm.h"
#include "kernels/cpu/pos_embed.h"
#include "kernels/cpu/quant_embedding.h"
#include "kernels/cpu/quant_linear.h"
#include "kernels/cpu/quant_repack.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/sample.h"

namespace autoglm {

namespace {

constexpr size_t k_host_align = 256;  // the scratch arena's alignment; a multiple of every SIMD width

void* host_alloc(device, size_t bytes) {
  const size_t rounded = std::max<size_t>(k_host_align, (bytes + k_host_align - 1) / k_host_align * k_host_align);
  void* p = std::aligned_alloc(k_host_align, rounded);
  if (!p) throw error("out of host memory allocating " + std::to_string(bytes) + " bytes");
  return p;
}

void host_free(device, void* p) { std::free(p); }

void host_copy(const kernel_context&, void* dst, const void* src, size_t bytes, bool, bool) {
  if (bytes) std::memcpy(dst, src, bytes);
}

void host_synchronize(const kernel_context&) {}

// LINEAR_SWIGLU as the LINEAR kernel of the weight's type into tmp [m, 2n], then SILU_MUL of its halves into y
// (nothing to fuse on the CPU: the GEMM/GEMV dominates).
void linear_then_swiglu(const kernel_context& kc, const tensor& x, const linear_weight& w, tensor& tmp, tensor& y) {
  if (cpu::quant_linear_supports(w.weight.type())) cpu::quant_linear_kernel(kc, x, w, tmp);
  else cpu::linear_kernel(kc, x, w, tmp);
  const int64_t n = y.cols();
  cpu::silu_mul_kernel(kc, tmp.cols_view(0, n), tmp.cols_view(n, n), y);
}

// LINEAR_ADD as the LINEAR kernel of the weight's type into tmp, then ADD into y (the same bytes as the two ops).
void linear_then_add(const kernel_context& kc, const tensor& x, const linear_weight& w, tensor& tmp, tensor& y) {
  if (cpu::quant_linear_supports(w.weight.type())) cpu::quant_linear_kernel(kc, x, w, tmp);
  else cpu::linear_kernel(kc, x, w, tmp);
  cpu::add_kernel(kc, y, tmp);
}

// ROPE_KV_STORE as ROPE_MROPE over qk's heads, then KV_STORE of its k heads and v (one pass each: a CPU has no
// launch to save).
void rope_then_kv_store(const kernel_context& kc, tensor& qk, int32_t n_q_heads, int32_t rot_dim, const tensor& pos,
                        const std::array<int32_t, 3>& sections, float theta, const paged_kv_layer& kv,
                        const tensor& v, const tensor& slots) {
  const int32_t n_kv_heads = int32_t(kv.k.dim(2)), head_dim = int32_t(kv.k.dim(3));
  cpu::rope_mrope_kernel(kc, qk, n_q_heads + n_kv_heads, head_dim, rot_dim, pos, sections, theta);
  const int64_t kw = int64_t(n_kv_heads) * head_dim;
  cpu::kv_store_kernel(kc, kv, qk.cols_view(int64_t(n_q_heads) * head_dim, kw), v, slots);
}

// LINEAR_ROPE_KV_STORE as the LINEAR kernel of the weight's type, then ROPE_KV_STORE of the output's q|k and v
// columns (the cache's type: F32/F16/BF16/Q8_0).
void linear_then_rope_kv_store(const kernel_context& kc, const tensor& x, const linear_weight& w, tensor& y,
                               int32_t n_q_heads, int32_t rot_dim, const tensor& pos,
                               const std::array<int32_t, 3>& sections, float theta, const paged_kv_layer& kv,
                               const tensor& slots) {
  if (cpu::quant_linear_supports(w.weight.type())) cpu::quant_linear_kernel(kc, x, w, y);
  else cpu::linear_kernel(kc, x, w, y);
  const int64_t kvd = kv.k.dim(2) * kv.k.dim(3), qkd = y.cols() - kvd;
  tensor qk = y.cols_view(0, qkd);
  rope_then_kv_store(kc, qk, n_q_heads, rot_dim, pos, sections, theta, kv, y.cols_view(qkd, kvd), slots);
}

}  // namespace

void register_cpu_kernels(kernel_registry& r) {
  device_memory mem;
  mem.alloc = host_alloc;
  mem.free = host_free;
  mem.copy = host_copy;
  mem.synchronize = host_synchronize;
  mem.create_communicators = cpu::create_inprocess_communicators;
  r.set_memory(device_kind::CPU, mem);

  constexpr device_kind cpu = device_kind::CPU;
  for (dtype t : {dtype::F32, dtype::F16, dtype::BF16}) {
    r.add_kernel<kernel_sig::linear>(op_id::LINEAR, cpu, t, cpu::linear_kernel);
    r.add_kernel<kernel_sig::linear_swiglu>(op_id::LINEAR_SWIGLU, cpu, t, linear_then_swiglu);
    r.add_kernel<kernel_sig::linear_add>(op_id::LINEAR_ADD, cpu, t, linear_then_add);
    r.add_kernel<kernel_sig::linear_rope_kv_store>(op_id::LINEAR_ROPE_KV_STORE, cpu, t, linear_then_rope_kv_store);
    r.add_kernel<kernel_sig::embedding>(op_id::EMBEDDING, cpu, t, cpu::embedding_kernel);
    r.add_kernel<kernel_sig::kv_store>(op_id::KV_STORE, cpu, t, cpu::kv_store_kernel);
    r.add_kernel<kernel_sig::rope_kv_store>(op_id::ROPE_KV_STORE, cpu, t, rope_then_kv_store);
    r.add_kernel<kernel_sig::attention_paged>(op_id::ATTENTION_PAGED, cpu, t, cpu::attention_paged_kernel);
  }
  // Quantized weights: integer dot products on activations quantized per call (quant_linear.h).
  for (dtype t : {dtype::I8, dtype::Q8_0, dtype::Q4_0, dtype::Q4_1, dtype::Q5_0, dtype::Q5_1, dtype::Q4_K, dtype::Q5_K,
                  dtype::Q6_K}) {
    r.add_kernel<kernel_sig::linear>(op_id::LINEAR, cpu, t, cpu::quant_linear_kernel);
    r.add_kernel<kernel_sig::linear_swiglu>(op_id::LINEAR_SWIGLU, cpu, t, cpu::quant_linear_swiglu_kernel);
    r.add_kernel<kernel_sig::linear_add>(op_id::LINEAR_ADD, cpu, t, linear_then_add);
    r.add_kernel<kernel_sig::linear_rope_kv_store>(op_id::LINEAR_ROPE_KV_STORE, cpu, t, linear_then_rope_kv_store);
  }
  // Token tables in any GGUF block type (a community file's token_embd): rows dequantized as they are gathered.
  for (dtype t : {dtype::Q8_0, dtype::Q4_0, dtype::Q4_1, dtype::Q5_0, dtype::Q5_1, dtype::Q4_K, dtype::Q5_K,
                  dtype::Q6_K})
    r.add_kernel<kernel_sig::embedding>(op_id::EMBEDDING, cpu, t, cpu::quant_embedding_kernel);
  // A Q8_0 KV cache (head_dim a multiple of 32): the same kernels, rows quantized on store (quant_kv.h).
  r.add_kernel<kernel_sig::kv_store>(op_id::KV_STORE, cpu, dtype::Q8_0, cpu::kv_store_kernel);
  r.add_kernel<kernel_sig::rope_kv_store>(op_id::ROPE_KV_STORE, cpu, dtype::Q8_0, rope_then_kv_store);
  r.add_kernel<kernel_sig::attention_paged>(op_id::ATTENTION_PAGED, cpu, dtype::Q8_0, cpu::attention_paged_kernel);
  for (dtype t : {dtype::F32, dtype::F16, dtype::BF16, dtype::I32})
    r.add_kernel<kernel_sig::copy>(op_id::COPY, cpu, t, cpu::copy_kernel);
  r.add_kernel<kernel_sig::rms_norm>(op_id::RMS_NORM, cpu, dtype::F32, cpu::rms_norm_kernel);
  r.add_kernel<kernel_sig::residual_rms_norm>(op_id::RESIDUAL_RMS_NORM, cpu, dtype::F32,
                                              cpu::residual_rms_norm_kernel);
  r.add_kernel<kernel_sig::layer_norm>(op_id::LAYER_NORM, cpu, dtype::F32, cpu::layer_norm_kernel);
  r.add_kernel<kernel_sig::rope_mrope>(op_id::ROPE_MROPE, cpu, dtype::F32, cpu::rope_mrope_kernel);
  r.add_kernel<kernel_sig::rope_2d>(op_id::ROPE_2D, cpu, dtype::F32, cpu::rope_2d_kernel);
  r.add_kernel<kernel_sig::silu_mul>(op_id::SILU_MUL, cpu, dtype::F32, cpu::silu_mul_kernel);
  r.add_kernel<kernel_sig::gelu>(op_id::GELU, cpu, dtype::F32, cpu::gelu_kernel);
  r.add_kernel<kernel_sig::add>(op_id::ADD, cpu, dtype::F32, cpu::add_kernel);
  r.add_kernel<kernel_sig::softmax>(op_id::SOFTMAX, cpu, dtype::F32, cpu::softmax_kernel);
  r.add_kernel<kernel_sig::attention_cross>(op_id::ATTENTION_CROSS, cpu, dtype::F32, cpu::attention_cross_kernel);
  r.add_kernel<kernel_sig::im2col_1d>(op_id::IM2COL_1D, cpu, dtype::F32, cpu::im2col_1d_kernel);
  r.add_kernel<kernel_sig::add_scaled>(op_id::ADD_SCALED, cpu, dtype::F32, cpu::add_scaled_kernel);
  r.add_kernel<kernel_sig::attention_dense>(op_id::ATTENTION_DENSE, cpu, dtype::F32, cpu::attention_dense_kernel);
  r.add_kernel<kernel_sig::pos_embed_bicubic>(op_id::POS_EMBED_BICUBIC, cpu, dtype::F32,
                                              cpu::pos_embed_bicubic_kernel);
  r.add_kernel<kernel_sig::sample>(op_id::SAMPLE, cpu, dtype::F32, cpu::sample_kernel);
  for (dtype t : {dtype::Q4_0, dtype::Q4_1, dtype::Q5_0, dtype::Q5_1, dtype::Q8_0, dtype::Q4_K, dtype::Q5_K,
                  dtype::Q6_K})
    r.add_kernel<kernel_sig::repack_weight>(op_id::REPACK_WEIGHT, cpu, t, cpu::repack_weight_kernel);
}

}  // namespace autoglm
