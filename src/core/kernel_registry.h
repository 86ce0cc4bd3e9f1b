// core/kernel_registry.h: the table through which backends plug kernels in, keyed by (op, device kind, dtype).
//
// Backends (src/kernels/cpu now, src/kernels/cuda next) register one function per (op, device, dtype) they
// implement; src/ops looks them up and is the only caller. A missing entry is an error that names all three
// ("no kernel for linear on cuda with Q4_K weights"). The dtype of the key is the operand that decides the
// implementation: the weight for linear, the table for embedding, the cache for kv_store / attention_paged,
// the source for copy, the activation for everything else.
//
// The signatures below are the whole contract between the model-facing ops and a backend. They live in core so
// that kernels (below ops) can implement them without knowing ops.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "autoglm/types.h"
#include "core/communicator.h"
#include "core/tensor.h"
#include "core/thread_pool.h"
#include "core/weights.h"

namespace autoglm {

enum class op_id : uint8_t {
  LINEAR,             // y[m, n] = x[m, k] . W[n, k]^T (+ bias) (x I8-scaled or block-dequantized as W needs)
  LINEAR_SWIGLU,      // y[m, n] = silu(x . W[0:n]^T) * (x . W[n:2n]^T) (+ bias): a gate|up projection and its gate
  LINEAR_ADD,         // y[m, n] += x[m, k] . W[n, k]^T (+ bias): a projection straight into the residual stream
  RMS_NORM,           // y = x * rsqrt(mean(x^2) + eps) * w, per row
  LAYER_NORM,         // y = (x - mean) * rsqrt(var + eps) * w + b, per row (biased variance, as torch)
  ROPE_MROPE,         // text M-RoPE, interleaved pairs, in place
  ROPE_2D,            // vision 2-D RoPE, NeoX halves, in place
  KV_STORE,           // write new K/V rows into their paged cache slots
  ROPE_KV_STORE,      // ROPE_MROPE over the q and k heads of a stacked q|k view, then KV_STORE of k and v (one
                      // launch where the backend fuses them: a decode step's rotation and store)
  LINEAR_ROPE_KV_STORE,  // LINEAR of a stacked q|k|v projection, then ROPE_KV_STORE of its output (a decode step's
                         // GEMV applies the rotation and stores k and v as it writes them)
  ATTENTION_PAGED,    // causal GQA attention of new tokens over the paged cache (prefill chunks and decode)
  ATTENTION_DENSE,    // bidirectional attention within segments (vision: one frame of one image each)
  ATTENTION_CROSS,    // every query row over every key row, no mask, GQA (Whisper's decoder over the encoder states)
  IM2COL_1D,          // 1-D convolution input as rows of (channel, tap) for a LINEAR (Whisper's conv front end)
  ADD_SCALED,         // x += alpha * y (a gated residual: alpha = tanh(gate))
  RESIDUAL_RMS_NORM,  // x += rms_norm(y) * w_post; then h = rms_norm(x) * w_next (a sandwich norm's residual and
                      // the next block's input norm in one pass)
  SILU_MUL,           // out = silu(gate) * up
  GELU,               // erf GELU in place
  ADD,                // x += y
  EMBEDDING,          // out[i] = table[ids[i]] converted to F32 (also a row gather of F32 activations)
  SOFTMAX,            // rows in place, x * scale first
  COPY,               // dst = src element-wise over any strides, converting dtype
  POS_EMBED_BICUBIC,  // GLM-4.1V vision: learned position table sampled like grid_sample(bicubic, border)
  IMAGE_PATCHES,      // GLM-4.1V vision: a decoded image resized, normalized and laid out as patch rows on the device
  SAMPLE,             // one token per logits row: greedy, or temperature / min-p / top-k / top-p and a given draw
  REPACK_WEIGHT,      // at load: a linear weight's values in the layout the backend's LINEAR reads fastest, or nothing
  COUNT
};
const char* op_name(op_id op);  // "linear", "rms_norm", ...

// What a kernel needs besides its operands: where it runs and with which threads or stream.
struct kernel_context {
  device dev;
  thread_pool* pool = nullptr;  // CPU kernels split their outer loop over it (never the process-wide pool)
  void* stream = nullptr;       // CUDA: the cudaStream_t to enqueue on
};

// One layer's paged KV cache: block b, slot s holds the key (value) of one token for every KV head.
struct paged_kv_layer {
  tensor k;  // [n_blocks, block_size, n_kv_heads, head_dim] in the cache dtype
  tensor v;  // same
  int32_t block_size() const { return int32_t(k.dim(1)); }
};

// The sequences of one forward batch as the attention kernels see them (on the kernels' device).
struct paged_batch {
  int32_t n_seqs = 0;
  int32_t max_context = 0;  // largest n_past + n_tokens of any sequence (host-side sizing)
  tensor seq_info;          // I32 [n_seqs, 3]: first new-token row, n new tokens, n_past
  tensor block_tables;      // I32 [n_seqs, max_blocks]: each sequence's cache blocks in position order
  tensor slots;             // I32 [n_tokens]: cache slot (block * block_size + offset) of every new token
};

// Memory offered for a backend's copy of a weight (kernel_sig::repack_weight): `bytes` of zeroed host memory owned by
// `mem`, or, with `filled` set, memory that already holds this weight's copy as the backend made it before (a copy kept
// on disk, ops/repack_cache.h): the kernel then uses it as it is. A null `mem`: the kernel allocates its own.
struct repack_memory {
  std::shared_ptr<uint8_t> mem;
  bool filled = false;
};
using repack_alloc = std::function<repack_memory(int64_t bytes)>;

namespace kernel_sig {
using linear = void (*)(const kernel_context&, const tensor& x, const linear_weight& w, tensor& y);
// tmp: F32 [m, 2n], for kernels that form the product first (its contents are left undefined).
using linear_swiglu = void (*)(const kernel_context&, const tensor& x, const linear_weight& w, tensor& tmp, tensor& y);
// y: F32 [m, n], added to; tmp: F32 [m, n], for kernels that form the product first (contents left undefined).
using linear_add = void (*)(const kernel_context&, const tensor& x, const linear_weight& w, tensor& tmp, tensor& y);
using rms_norm = void (*)(const kernel_context&, const tensor& x, const tensor& weight, float eps, tensor& y);
using layer_norm = void (*)(const kernel_context&, const tensor& x, const tensor& weight, const tensor& bias,
                            float eps, tensor& y);
// x: [n, >= n_heads*head_dim] (row stride free: q inside a fused qkv); pos: I32 [3, n] (t, h, w planes).
using rope_mrope = void (*)(const kernel_context&, tensor& x, int32_t n_heads, int32_t head_dim, int32_t rot_dim,
                            const tensor& pos, const std::array<int32_t, 3>& sections, float theta);
// x as above; pos: I32 [2, n] (h, w planes).
using rope_2d = void (*)(const kernel_context&, tensor& x, int32_t n_heads, int32_t head_dim, const tensor& pos,
                         float theta);
// k, v: [n, n_kv_heads*head_dim] F32 (row strides free); slots: I32 [n], a slot < 0 skips its row (padding).
using kv_store = void (*)(const kernel_context&, const paged_kv_layer& kv, const tensor& k, const tensor& v,
                          const tensor& slots);
// qk: [n, (n_q_heads + n_kv_heads)*head_dim] F32 (row stride free: the q heads, then the k heads, of a stacked
// projection), rotated in place as rope_mrope over all its heads; then the k heads (qk's last n_kv_heads*head_dim
// columns, rotated) and v [n, n_kv_heads*head_dim] go to the cache slots as kv_store does (n_kv_heads and head_dim
// are the cache's). Keyed by the cache dtype.
using rope_kv_store = void (*)(const kernel_context&, tensor& qk, int32_t n_q_heads, int32_t rot_dim,
                               const tensor& pos, const std::array<int32_t, 3>& sections, float theta,
                               const paged_kv_layer& kv, const tensor& v, const tensor& slots);
// LINEAR(x, w) into y [n, (n_q_heads + 2 n_kv_heads)*head_dim] F32 (the q, k and v heads of a stacked projection;
// row stride free), then ROPE_KV_STORE of y's q|k columns and its v columns. Keyed by the weight dtype.
using linear_rope_kv_store = void (*)(const kernel_context&, const tensor& x, const linear_weight& w, tensor& y,
                                      int32_t n_q_heads, int32_t rot_dim, const tensor& pos,
                                      const std::array<int32_t, 3>& sections, float theta, const paged_kv_layer& kv,
                                      const tensor& slots);
// q: [n, n_heads*head_dim] F32 (new tokens of all sequences); out: same shape.
using attention_paged = void (*)(const kernel_context&, const tensor& q, const paged_kv_layer& kv,
                                 const paged_batch& batch, int32_t n_heads, int32_t n_kv_heads, int32_t head_dim,
                                 float scale, tensor& out);
// q, k, v: [n, n_heads*head_dim] (row strides free); segments: I32 [n_seg + 1] row offsets, each segment
// attends only within itself; out: [n, n_heads*head_dim].
using attention_dense = void (*)(const kernel_context&, const tensor& q, const tensor& k, const tensor& v,
                                 int32_t n_heads, int32_t head_dim, const tensor& segments, float scale, tensor& out);
// q: [nq, n_heads*head_dim]; k, v: [nk, n_kv_heads*head_dim] (row strides free; n_heads a multiple of n_kv_heads,
// query head h reads KV head h / (n_heads / n_kv_heads)); every query row attends to all nk key rows (no mask; nk = 0
// gives zeros); out: [nq, n_heads*head_dim].
using attention_cross = void (*)(const kernel_context&, const tensor& q, const tensor& k, const tensor& v,
                                 int32_t n_heads, int32_t n_kv_heads, int32_t head_dim, float scale, tensor& out);
// x: [t_in, c] (time-major rows, row stride free); out: [t_out, c*kernel_size] with
// out[t, ci*kernel_size + j] = x[t*stride + j - pad, ci], 0 outside [0, t_in); t_out = (t_in + 2 pad - k) / stride + 1.
using im2col_1d = void (*)(const kernel_context&, const tensor& x, int32_t kernel_size, int32_t stride, int32_t pad,
                           tensor& out);
// x += alpha * y, both [n, d] (row strides free).
using add_scaled = void (*)(const kernel_context&, tensor& x, const tensor& y, float alpha);
// gate, up, out: [n, d] (gate and up may be column views of one fused gate_up tensor).
using silu_mul = void (*)(const kernel_context&, const tensor& gate, const tensor& up, tensor& out);
using gelu = void (*)(const kernel_context&, tensor& x);
using add = void (*)(const kernel_context&, tensor& x, const tensor& y);
// x, y, h: [n, d] F32 (row strides free); w_post, w_next: [d] F32 (w_next empty: no h).
using residual_rms_norm = void (*)(const kernel_context&, tensor& x, const tensor& y, const tensor& w_post,
                                   const tensor& w_next, float eps, tensor& h);
// table: [rows, d] any dtype; ids: I32 [n]; out: [n, d] F32.
using embedding = void (*)(const kernel_context&, const tensor& table, const tensor& ids, tensor& out);
using softmax = void (*)(const kernel_context&, tensor& x, float scale);
using copy = void (*)(const kernel_context&, const tensor& src, tensor& dst);
// table: [grid*grid, d] F32; pos: I32 [2, n] (h, w of each patch in the (grid_h, grid_w) patch grid); out [n, d].
using pos_embed_bicubic = void (*)(const kernel_context&, const tensor& table, int32_t table_grid, int32_t grid_h,
                                   int32_t grid_w, const tensor& pos, tensor& out);
// img: a decoded image with its resize taps and byte table (host memory; autoglm/types.h raw_image); out [grid_h *
// grid_w, 3 * temporal * patch^2] (F32 or BF16, contiguous), grid = the taps' output size / patch: the rows
// glm4v_patchify gives for the image resize_bicubic(_torchvision) gives (media/glm4v_preprocess.h), bit for bit
// (BF16: rounded once). Keyed by U8.
using image_patches = void (*)(const kernel_context&, const raw_image& img, int32_t patch, int32_t temporal,
                               int32_t merge, tensor& out);
// logits: [rows, vocab] F32 (row stride free); params: F32 [rows, k_sample_params] contiguous on the kernel's
// device (sample_param order); out: I32 [rows]. The exact rule (ties, rounding) is kernels/cpu/sample.h's.
using sample = void (*)(const kernel_context&, const tensor& logits, const tensor& params, tensor& out);
// w: a linear weight [n, k] as loaded (host memory); releasable: whether w's memory goes once a copy is made (its
// pages belong to a read-only file mapping and are given back, or it is a private copy made at load that the caller
// lets go), so a copy does not add to resident memory. Returns linear_weight::repacked's tensor, or an empty one (no
// copy: not worth it on this machine, or the backend's policy declines). alloc (may be empty): where the copy goes,
// asked once the kernel decides to make one (repack_memory).
using repack_weight = tensor (*)(const kernel_context&, const tensor& w, bool releasable, const repack_alloc& alloc);
}  // namespace kernel_sig

// Columns of SAMPLE's params rows.
enum sample_param : int32_t { SP_TEMPERATURE = 0, SP_TOP_K, SP_TOP_P, SP_MIN_P, SP_UNIFORM, k_sample_params };

// Memory of one device kind: what ops needs to allocate scratch, upload inputs and read results back.
struct device_memory {
  void* (*alloc)(device dev, size_t bytes) = nullptr;  // throws autoglm::error when out of memory
  void (*free)(device dev, void* p) = nullptr;
  // Copies within or across host and this device; dst_host / src_host say which sides are host memory.
  void (*copy)(const kernel_context& ctx, void* dst, const void* src, size_t bytes, bool dst_host, bool src_host) = nullptr;
  void (*synchronize)(const kernel_context& ctx) = nullptr;
  // Optional (GPU backends): a stream per execution context, so contexts run concurrently.
  void* (*create_stream)(device dev) = nullptr;
  void (*destroy_stream)(device dev, void* stream) = nullptr;
  // Optional (GPU backends): free and total bytes of the device, to size caches and to say what does not fit.
  void (*mem_info)(device dev, size_t* free_bytes, size_t* total_bytes) = nullptr;
  // Optional (GPU backends): record what is enqueued on the context's stream between graph_begin and graph_end as
  // one replayable graph (CUDA graphs), replay it, drop it. graph_end returns null when the recording failed (the
  // stream is left usable).
  void (*graph_begin)(const kernel_context& ctx) = nullptr;
  void* (*graph_end)(const kernel_context& ctx) = nullptr;
  void (*graph_launch)(const kernel_context& ctx, void* graph) = nullptr;
  void (*graph_destroy)(device dev, void* graph) = nullptr;
  // Optional (GPU backends): a hint that the next kernels on the context's stream read `bytes` of device memory at
  // p (a decode step's next weights): start moving them into the device's cache now, ordered like a kernel (a
  // recorded graph keeps it). Nothing waits for it and no result depends on it.
  void (*prefetch)(const kernel_context& ctx, const void* p, size_t bytes) = nullptr;
  // Optional: the communicators of an in-process tensor-parallel group, rank r on devs[r] (all of this kind).
  // Throws autoglm::error when the group cannot be set up (e.g. no NCCL library).
  communicator_group (*create_communicators)(const std::vector<device>& devs) = nullptr;
};

class kernel_registry {
 public:
  static kernel_registry& instance();

  void add(op_id op, device_kind dev, dtype type, void* fn);
  // The registered kernel, or nullptr.
  void* find(op_id op, device_kind dev, dtype type) const;
  // The registered kernel; throws autoglm::error naming op, device and dtype when there is none.
  void* get(op_id op, device_kind dev, dtype type) const;
  bool has(op_id op, device_kind dev, dtype type) const { return find(op, dev, type) != nullptr; }

  void set_memory(device_kind dev, const device_memory& mem);
  const device_memory& memory(device_kind dev) const;  // throws when the device kind has no backend

  template <class Fn>
  void add_kernel(op_id op, device_kind dev, dtype type, Fn fn) {
    add(op, dev, type, reinterpret_cast<void*>(fn));
  }
  template <class Fn>
  Fn get_kernel(op_id op, device_kind dev, dtype type) const {
    return reinterpret_cast<Fn>(get(op, dev, type));
  }

 private:
  kernel_registry() = default;
  void* table_[size_t(op_id::COUNT)][size_t(device_kind::COUNT)][size_t(dtype::COUNT)] = {};
  device_memory memory_[size_t(device_kind::COUNT)] = {};
};

}  // namespace autoglm
