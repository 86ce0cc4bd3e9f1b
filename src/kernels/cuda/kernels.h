// kernels/cuda/kernels.h: the CUDA backend's registered kernels (host functions with the kernel_sig signatures
// of core/kernel_registry.h; each enqueues on the context's stream and returns without waiting). Semantics are
// the CPU kernels' (kernels/cpu/*.h); where the arithmetic differs it says so.
#pragma once

#include "core/kernel_registry.h"

namespace autoglm::cuda {

// linear.cu. F32/F16/BF16 weights. Up to k_gemv_max_rows rows of x: a bandwidth-bound GEMV in F32 arithmetic on the
// exactly decoded weights (same accuracy as the CPU). More rows: cuBLAS; F16/BF16 weights then multiply x rounded
// to the weight's type (tensor cores, F32 accumulation and output: the precision of torch's bf16 linear), F32
// weights a plain F32 SGEMM.
constexpr int64_t k_gemv_max_rows = 8;
void linear_kernel(const kernel_context& kc, const tensor& x, const linear_weight& w, tensor& y);
// The same GEMV with the gate applied as it stores (4 W rows per block: two gate rows and their up rows); more
// rows: cuBLAS into tmp, then silu_mul.
void linear_swiglu_kernel(const kernel_context& kc, const tensor& x, const linear_weight& w, tensor& tmp, tensor& y);
// y (F32) += x . W^T: more rows than the GEMV takes and no bias, cuBLAS adding into y (beta = 1); else LINEAR into
// tmp, then ADD.
void linear_add_kernel(const kernel_context& kc, const tensor& x, const linear_weight& w, tensor& tmp, tensor& y);

// norm.cu
void rms_norm_kernel(const kernel_context& kc, const tensor& x, const tensor& weight, float eps, tensor& y);
void residual_rms_norm_kernel(const kernel_context& kc, tensor& x, const tensor& y, const tensor& w_post,
                              const tensor& w_next, float eps, tensor& h);
void layer_norm_kernel(const kernel_context& kc, const tensor& x, const tensor& weight, const tensor& bias, float eps,
                       tensor& y);

// rope.cu
void rope_mrope_kernel(const kernel_context& kc, tensor& x, int32_t n_heads, int32_t head_dim, int32_t rot_dim,
                       const tensor& pos, const std::array<int32_t, 3>& sections, float theta);
void rope_2d_kernel(const kernel_context& kc, tensor& x, int32_t n_heads, int32_t head_dim, const tensor& pos,
                    float theta);

// activations.cu
void silu_mul_kernel(const kernel_context& kc, const tensor& gate, const tensor& up, tensor& out);
void gelu_kernel(const kernel_context& kc, tensor& x);
void add_kernel(const kernel_context& kc, tensor& x, const tensor& y);
void add_scaled_kernel(const kernel_context& kc, tensor& x, const tensor& y, float alpha);
void softmax_kernel(const kernel_context& kc, tensor& x, float scale);

// copy.cu: COPY over any strides (F32/F16/BF16/I32, converting), EMBEDDING gathers (F32/F16/BF16 tables); the
// L2 prefetch hint (device_memory::prefetch).
void copy_kernel(const kernel_context& kc, const tensor& src, tensor& dst);
void prefetch_l2(const kernel_context& kc, const void* p, size_t bytes);
void embedding_kernel(const kernel_context& kc, const tensor& table, const tensor& ids, tensor& out);

// attention_paged.cu: KV store into F32/F16/BF16 caches; causal paged attention (flash-style tiles, split over
// positions for decode).
void kv_store_kernel(const kernel_context& kc, const paged_kv_layer& kv, const tensor& k, const tensor& v,
                     const tensor& slots);
// rope.cu: ROPE_KV_STORE, the M-RoPE of a stacked q|k view and the store of its k heads and v in one launch.
void rope_kv_store_kernel(const kernel_context& kc, tensor& qk, int32_t n_q_heads, int32_t rot_dim, const tensor& pos,
                          const std::array<int32_t, 3>& sections, float theta, const paged_kv_layer& kv,
                          const tensor& v, const tensor& slots);
// linear.cu: LINEAR_ROPE_KV_STORE. A decode step's rows (F32, F32/F16/BF16 cache, head_dim a multiple of 4): the
// GEMV rotates q and k and stores k and v as it writes its sums; otherwise LINEAR, then ROPE_KV_STORE.
void linear_rope_kv_store_kernel(const kernel_context& kc, const tensor& x, const linear_weight& w, tensor& y,
                                 int32_t n_q_heads, int32_t rot_dim, const tensor& pos,
                                 const std::array<int32_t, 3>& sections, float theta, const paged_kv_layer& kv,
                                 const tensor& slots);
void attention_paged_kernel(const kernel_context& kc, const tensor& q, const paged_kv_layer& kv,
                            const paged_batch& batch, int32_t n_heads, int32_t n_kv_heads, int32_t head_dim,
                            float scale, tensor& out);

// attention_cross.cu: every query row over every key row, no mask, GQA; F32 (online softmax per warp, 4 warps
// merged), head_dim up to 256.
void attention_cross_kernel(const kernel_context& kc, const tensor& q, const tensor& k, const tensor& v,
                            int32_t n_heads, int32_t n_kv_heads, int32_t head_dim, float scale, tensor& out);

// im2col.cu
void im2col_1d_kernel(const kernel_context& kc, const tensor& x, int32_t kernel_size, int32_t stride, int32_t pad,
                      tensor& out);

// attention_dense.cu: bidirectional attention within segments (the vision tower): F32 below 1024 rows, tensor
// cores (bf16 products: the fused mma.sync flash kernel for head_dim 64/128, cuBLAS otherwise) from 1024 rows
// unless cuda_gemm_precision::SPLIT (register.h).
void attention_dense_kernel(const kernel_context& kc, const tensor& q, const tensor& k, const tensor& v,
                            int32_t n_heads, int32_t head_dim, const tensor& segments, float scale, tensor& out);

// pos_embed.cu
void pos_embed_bicubic_kernel(const kernel_context& kc, const tensor& table, int32_t table_grid, int32_t grid_h,
                              int32_t grid_w, const tensor& pos, tensor& out);

// image.cu: IMAGE_PATCHES: the image and its taps uploaded into the workspace, the two resize passes, the patch
// layout through the byte table.
void image_patches_kernel(const kernel_context& kc, const raw_image& img, int32_t patch, int32_t temporal,
                          int32_t merge, tensor& out);

// sample.cu: SAMPLE (kernels/cpu/sample.h's rule), one block per row, radix selection instead of sorting.
void sample_kernel(const kernel_context& kc, const tensor& logits, const tensor& params, tensor& out);

}  // namespace autoglm::cuda
