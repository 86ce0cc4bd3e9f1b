// ops/ops.h: the one dispatch point between model code and kernels. Each op checks its operands' shapes and
// devices (a mismatch is a programmer error: AG_CHECK), picks the kernel registered for (op, device, dtype)
// (a missing one is an autoglm::error naming all three) and runs it on the context's pool or stream.
// Model code calls only these; it never sees a backend, an ISA or a dtype branch.
//
// Shapes: activations are [n_tokens, width] F32 unless stated; "views" may have a row stride wider than
// their width (q/k/v inside one fused qkv buffer, gate/up inside gate_up).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/kernel_registry.h"
#include "core/tensor.h"
#include "core/weights.h"
#include "ops/context.h"

namespace autoglm::ops {

// Registers the backends compiled into this build (CPU always, CUDA when built). Idempotent.
void init_backends();
// "" when `dev` can run kernels in this build on this machine; otherwise a sentence saying why not ("cuda:1: this
// machine has 1 CUDA device (cuda:0)", "cuda: this build has no CUDA backend (...)").
std::string device_problem(const device& dev);

// ---- memory -----------------------------------------------------------------------------------------------
// An activation in the context's scratch arena (uninitialized; valid until the arena is reset).
tensor scratch(exec_context& ctx, dtype type, const std::vector<int64_t>& shape);
// A tensor on the context's device holding a copy of `host` (scratch memory). On the CPU, host tensors are
// already there: returns `host` itself.
tensor to_device(exec_context& ctx, const tensor& host);
// Persistent device memory (weights, caches): owned by the returned tensor.
tensor alloc_persistent(exec_context& ctx, dtype type, const std::vector<int64_t>& shape);
// Copies a contiguous tensor's bytes to host memory (waits for the device).
void to_host(exec_context& ctx, const tensor& src, void* dst, size_t dst_bytes);
// Waits until everything queued on the context (its stream on a GPU) has run; reports a bad index a kernel found.
// A tensor one context produced may be read by another context only after this (the vision worker's embeddings).
void synchronize(exec_context& ctx);
// A hint: the next ops read w's weights (a decode step's projection after its attention), so a GPU backend starts
// moving them into its cache while the ops in between run. No result depends on it; nothing on the CPU.
void prefetch(exec_context& ctx, const linear_weight& w);
// Free and total bytes of the context's device; false where the backend cannot say (the CPU).
bool memory_info(exec_context& ctx, size_t& free_bytes, size_t& total_bytes);
// Rows a row-wise pass (an MLP over thousands of patches) should take at once when its intermediates cost
// bytes_per_row per row: `cache_rows` on the CPU (a panel whose intermediates stay in cache), on a GPU as many as
// a scratch budget of 1 GiB (at most an eighth of the free memory) holds, never fewer than cache_rows: GEMMs of a
// hundred rows leave most of a GPU idle.
int64_t rows_per_pass(exec_context& ctx, int64_t bytes_per_row, int64_t cache_rows);
// The type of the activations that go into a GEMM (a norm's output, SwiGLU's product) for a pass of `rows` rows:
// F32 on the CPU; on CUDA BF16 when the pass runs on tensor cores (more rows than the decode GEMV takes, ROUNDED
// precision), since those multiply x rounded to bf16 anyway: the kernel that writes such an activation rounds it
// once, instead of each GEMM reading F32 and rounding it in a pass of its own (torch's bf16 modules round there
// too). The residual stream, attention and everything else stay F32; decode steps keep F32 into their GEMVs.
dtype gemm_input_type(const exec_context& ctx, int64_t rows);
// A host F32 copy [rows, cols] of any tensor (dumps and tests).
tensor host_f32(exec_context& ctx, const tensor& src);

// ---- weights ----------------------------------------------------------------------------------------------
// A weight ready for this context's backend: on the CPU the mapped tensor itself; on a GPU an uploaded copy.
tensor prepare_weight(exec_context& ctx, const tensor& w);
// A small parameter (norm weight, bias) converted to F32 on the context's device.
tensor prepare_param_f32(exec_context& ctx, const tensor& p);
// A linear weight for this context's backend, with the backend's faster layout of it where the backend makes one
// (linear_weight::repacked). private_copy: w is host memory made at load that no one else keeps once the caller and
// its source let go (a tensor-parallel cut, a stacked or permuted copy, a quantization at load); where a copy is
// made of such a weight, the returned `weight` no longer holds w's memory (core/weights.h). cache_key: what w was made
// from (source files' repack_cache::file_identity, name, cut), for the copy kept on disk where AUTOGLM_REPACK_CACHE
// is set (ops/repack_cache.h); empty: none kept.
linear_weight prepare_linear(exec_context& ctx, const tensor& w, const tensor& bias, std::string name,
                             bool private_copy = false, const std::string& cache_key = "");

// ---- compute ----------------------------------------------------------------------------------------------
// y [m, out] = x [m, in] . W^T (+ bias). y may be a column view of a wider buffer. x and y are F32, or either may be
// of gemm_input_type (BF16 on CUDA: y is then rounded once from the F32 accumulation).
void linear(exec_context& ctx, const tensor& x, const linear_weight& w, tensor& y);
// y [m, n] = silu(x . W[0:n]^T) * (x . W[n:2n]^T) for a stacked gate|up weight of 2n rows (bias likewise stacked):
// linear then silu_mul, fused where the backend can (a decode step's GEMV applies the gate as it stores). tmp
// [m, 2n] F32 is scratch for backends that form the product first; its contents are undefined afterwards. x and y may be
// of gemm_input_type; a BF16 y is formed from gate and up rounded to bf16 (as torch's bf16 MLP).
void linear_swiglu(exec_context& ctx, const tensor& x, const linear_weight& w, tensor& tmp, tensor& y);
// y (F32) += x . W^T (+ bias): linear then add, fused where the backend can (on a GPU the GEMM adds its product to y
// as it writes it, cuBLAS's beta = 1: the product is not written and read back). tmp F32 [m, n] is scratch for
// backends that form the product first; its contents are undefined afterwards. x F32 or of gemm_input_type.
void linear_add(exec_context& ctx, const tensor& x, const linear_weight& w, tensor& tmp, tensor& y);
// y = rms_norm(x) * weight; y F32 (may be x) or of gemm_input_type.
void rms_norm(exec_context& ctx, const tensor& x, const tensor& weight, float eps, tensor& y);
// x += rms_norm(y) * w_post; then, when w_next is given, h = rms_norm(x) * w_next: a sandwich-normed block's
// residual add and the next block's input norm in one pass (h must not alias x or y; F32 or of gemm_input_type).
void residual_rms_norm(exec_context& ctx, tensor& x, const tensor& y, const tensor& w_post, const tensor& w_next,
                       float eps, tensor& h);
void layer_norm(exec_context& ctx, const tensor& x, const tensor& weight, const tensor& bias, float eps, tensor& y);
// In place on x [n, >= n_heads*head_dim]; pos I32 [3, n].
void rope_mrope(exec_context& ctx, tensor& x, int32_t n_heads, int32_t head_dim, int32_t rot_dim, const tensor& pos,
                const std::array<int32_t, 3>& sections, float theta);
// In place on x [n, >= n_heads*head_dim] (F32, or gemm_input_type where the backend registers it); pos I32 [2, n].
void rope_2d(exec_context& ctx, tensor& x, int32_t n_heads, int32_t head_dim, const tensor& pos, float theta);
void kv_store(exec_context& ctx, const paged_kv_layer& kv, const tensor& k, const tensor& v, const tensor& slots);
// rope_mrope over the n_q_heads + n_kv_heads heads of qk [n, (n_q_heads + n_kv_heads)*head_dim] (a stacked q|k
// view; n_kv_heads and head_dim are the cache's), then kv_store of its k heads and v: one launch on a GPU.
void rope_kv_store(exec_context& ctx, tensor& qk, int32_t n_q_heads, int32_t rot_dim, const tensor& pos,
                   const std::array<int32_t, 3>& sections, float theta, const paged_kv_layer& kv, const tensor& v,
                   const tensor& slots);
// linear(x, w, y) of a stacked q|k|v projection (y F32 [n, (n_q_heads + 2 n_kv_heads)*head_dim]), then
// rope_kv_store of y's q|k columns and its v columns: on a GPU a decode step's GEMV rotates q and k and stores k
// and v as it writes them (one launch instead of two).
void linear_rope_kv_store(exec_context& ctx, const tensor& x, const linear_weight& w, tensor& y, int32_t n_q_heads,
                          int32_t rot_dim, const tensor& pos, const std::array<int32_t, 3>& sections, float theta,
                          const paged_kv_layer& kv, const tensor& slots);
void attention_paged(exec_context& ctx, const tensor& q, const paged_kv_layer& kv, const paged_batch& batch,
                     int32_t n_heads, int32_t n_kv_heads, int32_t head_dim, float scale, tensor& out);
// Bidirectional attention within segments (I32 [n_seg + 1] row offsets): q, k, v F32 or all of gemm_input_type (they
// feed tensor-core products as a GEMM's inputs do); out F32, or of gemm_input_type when a GEMM reads it next.
void attention_dense(exec_context& ctx, const tensor& q, const tensor& k, const tensor& v, int32_t n_heads,
                     int32_t head_dim, const tensor& segments, float scale, tensor& out);
// q [nq, >= n_heads*head_dim] over all rows of k, v [nk, >= n_kv_heads*head_dim] (no mask, GQA); out [nq, ...].
void attention_cross(exec_context& ctx, const tensor& q, const tensor& k, const tensor& v, int32_t n_heads,
                     int32_t n_kv_heads, int32_t head_dim, float scale, tensor& out);
// out [t_out, c*kernel_size] = the taps of x [t_in, c] (see kernel_sig::im2col_1d); a Conv1d is then
// linear(out, weight [c_out, c*kernel_size]).
void im2col_1d(exec_context& ctx, const tensor& x, int32_t kernel_size, int32_t stride, int32_t pad, tensor& out);
// Output length of a 1-D convolution over t_in steps.
int64_t conv1d_out_len(int64_t t_in, int32_t kernel_size, int32_t stride, int32_t pad);
// out = silu(gate) * up: all F32, or all of gemm_input_type.
void silu_mul(exec_context& ctx, const tensor& gate, const tensor& up, tensor& out);
void gelu(exec_context& ctx, tensor& x);
void add(exec_context& ctx, tensor& x, const tensor& y);
// x += alpha * y.
void add_scaled(exec_context& ctx, tensor& x, const tensor& y, float alpha);
void embedding(exec_context& ctx, const tensor& table, const tensor& ids, tensor& out);
void softmax(exec_context& ctx, tensor& x, float scale = 1.0f);
void copy(exec_context& ctx, const tensor& src, tensor& dst);
void pos_embed_bicubic(exec_context& ctx, const tensor& table, int32_t table_grid, int32_t grid_h, int32_t grid_w,
                       const tensor& pos, tensor& out);
// out [grid_h * grid_w, 3 * temporal * patch^2] (F32 or of gemm_input_type) = the patch rows of img resized by its
// taps, normalized by its byte table, in glm4v_patchify's layout (merge x merge blocks of patches): the vision
// tower's input made on its device (GPU backends; the CPU takes pixel_values preprocessed on the host).
void image_patches(exec_context& ctx, const raw_image& img, int32_t patch, int32_t temporal, int32_t merge,
                   tensor& out);
// One token per row of logits [rows, vocab] F32 (the rule: kernels/cpu/sample.h); params: host memory,
// k_sample_params floats per row in sample_param order (core/kernel_registry.h); out: I32 [rows] on the device.
void sample(exec_context& ctx, const tensor& logits, const float* params, tensor& out);

// ---- graphs -------------------------------------------------------------------------------------------------
// Recording what is enqueued on ctx as one replayable graph (GPU backends; runtime/step_graphs drives it). Between
// graph_begin and graph_end nothing runs: the ops are recorded. graph_end gives the graph (owned; destroyed with
// the last copy), or null when the recording failed (then run the same ops again without a graph).
bool graphs_supported(exec_context& ctx);
void graph_begin(exec_context& ctx);
std::shared_ptr<void> graph_end(exec_context& ctx);
void graph_launch(exec_context& ctx, const std::shared_ptr<void>& graph);

// ---- tensor parallelism -----------------------------------------------------------------------------------
// Sum over ranks in place (F32, contiguous); nothing without a communicator.
void all_reduce_sum(exec_context& ctx, tensor& x);
// out [n, W] = the ranks' x [n, c] side by side in rank order, cut at W <= R*c columns (the padding rows of a
// vocabulary split come last); without a communicator out = x's first W columns.
void all_gather_cols(exec_context& ctx, const tensor& x, tensor& out);
// The communicators of an in-process group, rank r on devs[r] (one kind of device), from that backend.
communicator_group create_communicators(const std::vector<device>& devs);

// ---- debugging --------------------------------------------------------------------------------------------
// Calls the context's dump callback (if any) with a host F32 copy of t under `name`.
void dump(exec_context& ctx, const std::string& name, const tensor& t);

}  // namespace autoglm::ops
