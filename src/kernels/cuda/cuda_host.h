// kernels/cuda/cuda_host.h: the host side the CUDA backend's files share (internal to kernels/cuda; plain C++,
// so memory.cpp compiles with the host compiler): error checks that name the op and its sizes, the per-stream
// state (cuBLAS handle, a growable workspace, the bad-index flag) and typed row views of tensors checked on the
// host. Device helpers are in device_util.cuh.
//
// Error policy: a failed CUDA call or launch throws autoglm::error naming the op, the sizes and CUDA's reason
// (out of memory is something a user can act on). Broken invariants of operands are AG_CHECKs as on the CPU.
// Indices only the device sees (token ids, cache slots, block ids) are checked by the kernels: a bad one is
// skipped and recorded in the stream's flag, which the next synchronize() reports as an error naming the op.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/kernel_registry.h"
#include "core/tensor.h"

namespace autoglm::cuda {

// ---- errors -------------------------------------------------------------------------------------------------
[[noreturn]] void throw_cuda(cudaError_t e, const std::string& what);
inline void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw_cuda(e, what);
}
// After a kernel launch: a bad launch configuration shows here; faults inside kernels show at the next
// synchronize (CUDA reports them asynchronously).
void check_launch(const char* op, const std::string& sizes);
// A cuBLAS call's status: throws naming `what` (the op and its sizes) and cuBLAS's reason.
inline void check_cublas(cublasStatus_t st, const std::string& what) {
  if (st != CUBLAS_STATUS_SUCCESS)
    throw error(std::string("cuda: cuBLAS ") + what + ": " + cublasGetStatusString(st));
}

// ---- per-stream state ---------------------------------------------------------------------------------------
// Codes kernels write into the bad-index flag (the first field: which op; the second: the offending value).
enum bad_index_code : int32_t {
  BAD_NONE = 0,
  BAD_EMBEDDING_ID = 1,
  BAD_KV_SLOT = 2,
  BAD_BLOCK_ID = 3,
  BAD_SEQUENCE = 4,  // seq_info rows outside q, or a context longer than its block table
  BAD_SEGMENT = 5,   // attention_dense segment offsets outside the rows or decreasing
};

struct stream_state;
// The state of the context's stream (created with it by device_memory::create_stream); makes its device current.
stream_state& state_of(const kernel_context& kc);
cudaStream_t stream_of(const stream_state& s);
// A device buffer of at least `bytes` for one op (reused by the next op on the stream, which is ordered after it).
void* workspace(stream_state& s, size_t bytes, const char* op);
// Device pointer of the stream's bad-index flag: int32 [2] = {code, value}, in mapped host memory.
int32_t* bad_index_flag(const stream_state& s);
// k_split_counters int32 counters on the stream's device, zeroed when the stream is made, for kernels whose last
// block to finish a piece of work is elected with an atomic (attention_decode.cu). Such a kernel must leave every
// counter it touches at 0 when it ends, so the next launch (or a graph's replay) needs no memset.
constexpr size_t k_split_counters = 16384;
int32_t* split_counters(const stream_state& s);
// The cuBLAS handle bound to the stream (an opaque cublasHandle_t).
void* blas_handle(const stream_state& s);
// Streaming multiprocessors of the stream's device (sizing split work).
int sm_count(const stream_state& s);
// The compute capability's major number of the stream's device (9: Hopper).
int compute_major(const stream_state& s);
// Largest dynamic shared memory a block may opt into on the stream's device.
size_t max_shared_bytes(const stream_state& s);
// The L2 cache of the stream's device, bytes.
size_t l2_cache_bytes(const stream_state& s);
// Work beside the stream that nothing on it waits for (prefetch hints): fork_side orders the stream's side stream
// after everything enqueued so far and returns it; side_enqueued marks what was put on it since; join_side makes
// the stream wait for that (called before a recording ends, so the graph holds the side branch, and before a
// synchronize).
cudaStream_t fork_side(stream_state& s);
void side_enqueued(stream_state& s);
void join_side(stream_state& s);
// Whether kernels on the stream's device may be launched as programmatic dependents (sm_90+, and
// AUTOGLM_CUDA_PDL is not 0): see pdl_wait in device_util.cuh.
bool pdl_enabled(const stream_state& s);
// Shared memory and L1 share one array per SM, split per kernel by the driver; an SM runs blocks of two kernels at
// once only under one split. A decode step's q|k|v GEMV (little shared memory) would leave SMs in a small-shared-
// memory split, so the tensor-core decode attention after it (~180 KB blocks) could not start on an SM until that
// SM drained of the GEMV; asking the GEMV for the largest split (carveout 100) lets the attention start under its
// tail. H100, 9B dims: the agent step's decode at ~4,900 positions 6.661 -> 6.619 ms per token, 2,048 positions
// +0.4% tokens/s; but before the F32 decode kernel (512 positions) -0.6%. Hence the GEMV asks for it only when the
// stream's last decode attention took the tensor-core kernel (the layers of a step share one context, so all but
// the first layer see the same choice; it changes no number). smem_carveout(choice): the launch's carveout, `choice`
// (-1: none asked) unless AUTOGLM_CUDA_SMEM_CARVEOUT (percent, 0-100) overrides it for benchmarks.
int smem_carveout(int choice);
void note_decode_kernel(stream_state& s, bool tensor_cores);
bool last_decode_on_tensor_cores(const stream_state& s);
// An integer setting from the environment: `fallback` when unset or empty, else the value, which must be a whole
// number in [lo, hi] (an error naming the variable and the range otherwise).
int64_t env_integer(const char* name, int64_t fallback, int64_t lo, int64_t hi);
// A named choice from the environment: the index of the value in `choices`, 0 (the first, the default) when unset or
// empty (an error naming the variable and listing the choices otherwise).
int env_choice(const char* name, std::initializer_list<const char*> choices);
// Grid for a [rows, cols] walk by rows: y covers a row's `cols` items with blocks of `threads` (one item per
// thread), x strides over the rows (enough blocks in all to fill the GPU). Index math stays per row, so kernels
// need no 64-bit division per element (which made the flat element loops run at a fifth of the bandwidth).
inline dim3 row_grid(int64_t rows, int64_t cols, int threads, const stream_state& s) {
  const int64_t y = std::max<int64_t>(1, (cols + threads - 1) / threads);
  AG_CHECK(y <= 65535, "cuda: a row of " + std::to_string(cols) + " items");
  const int64_t x = std::clamp<int64_t>(int64_t(sm_count(s)) * 16 / y, 1, std::max<int64_t>(rows, 1));
  return dim3(unsigned(std::min<int64_t>(x, 0x7fffffff)), unsigned(y));
}
// Blocks of `threads` for a grid-stride loop over `total` items: enough to fill the GPU, never more than the work.
inline unsigned stride_grid(int64_t total, int threads, const stream_state& s) {
  const int64_t want = (total + threads - 1) / threads;
  return unsigned(std::max<int64_t>(1, std::min<int64_t>(want, int64_t(sm_count(s)) * 32)));
}

// ---- graphs (graphs.cpp): device_memory's graph hooks --------------------------------------------------------
void graph_begin(const kernel_context& kc);
void* graph_end(const kernel_context& kc);
void graph_launch(const kernel_context& kc, void* graph);
void graph_destroy(device dev, void* graph);

// ---- tensor parallelism (nccl_communicator.cpp): device_memory's communicator factory --------------------------
communicator_group create_nccl_communicators(const std::vector<device>& devs);

// ---- host-side operand views --------------------------------------------------------------------------------
// A [rows, cols] matrix with unit column stride: base pointer and row stride in elements.
template <class T>
struct mat {
  T* p = nullptr;
  int64_t ld = 0;
  int64_t rows = 0, cols = 0;
};

template <class T>
mat<T> mat_of(const tensor& t, dtype expected, const char* what) {
  AG_CHECK(t.type() == expected, std::string(what) + ": expected " + dtype_name(expected) + ", got " +
                                     dtype_name(t.type()));
  AG_CHECK(t.n_dims() == 1 || t.stride(-1) == int64_t(sizeof(T)),
           std::string(what) + ": columns must be contiguous, tensor " + t.shape_str());
  AG_CHECK(t.dev().kind == device_kind::CUDA, std::string(what) + ": not on a CUDA device");
  return {t.ptr<T>(), t.n_dims() == 1 ? t.cols() : t.row_stride() / int64_t(sizeof(T)), t.rows(), t.cols()};
}
inline mat<float> f32_mat(const tensor& t, const char* what) { return mat_of<float>(t, dtype::F32, what); }

// An activation that may be F32 or BF16 (ops::gemm_input_type): base pointer, row stride in elements, its type.
struct act_mat {
  void* p = nullptr;
  int64_t ld = 0, rows = 0, cols = 0;
  dtype type = dtype::F32;
};
inline act_mat act_of(const tensor& t, const char* what) {
  if (t.type() == dtype::BF16) {
    const mat<uint16_t> m = mat_of<uint16_t>(t, dtype::BF16, what);
    return {m.p, m.ld, m.rows, m.cols, dtype::BF16};
  }
  const mat<float> m = mat_of<float>(t, dtype::F32, what);
  return {m.p, m.ld, m.rows, m.cols, dtype::F32};
}
inline mat<int32_t> i32_mat(const tensor& t, const char* what) { return mat_of<int32_t>(t, dtype::I32, what); }

// A paged KV layer's cache as the kernels address it (byte strides of a [blocks, block_size, kv_heads, head_dim]
// cache in F32/F16/BF16), checked on the host: both caches alike, on a CUDA device, head_dim contiguous.
struct cache_geom {
  dtype type;
  int64_t c_block, c_slot, c_head;
  int64_t n_blocks;
  int block_size;
  int n_kv_heads, head_dim;
};
cache_geom geometry(const paged_kv_layer& kv, const char* op);

// A contiguous F32 vector (norm weights, biases).
inline const float* f32_vector(const tensor& t, const char* what) {
  AG_CHECK(t.type() == dtype::F32 && t.is_contiguous() && t.dev().kind == device_kind::CUDA,
           std::string(what) + " must be a contiguous F32 vector on the device");
  return t.ptr<float>();
}

// Blocks of `threads` covering n items (n > 0), as the unsigned grid dimension CUDA takes.
inline unsigned blocks_for(int64_t n, int threads) {
  const int64_t b = (n + threads - 1) / threads;
  AG_CHECK(b > 0 && b <= int64_t(0x7fffffff), "cuda: grid of " + std::to_string(b) + " blocks");
  return unsigned(b);
}

}  // namespace autoglm::cuda
