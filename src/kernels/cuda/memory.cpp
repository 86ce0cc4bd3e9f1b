// kernels/cuda/memory.cu: the CUDA backend's device memory and streams (core's device_memory), the per-stream
// state the kernels use (cuBLAS handle, workspace, bad-index flag), and register_cuda_kernels.
//
// Allocation is cudaMalloc / cudaFree rather than the stream-ordered cudaMallocAsync: device_memory's alloc and
// free carry no stream, and a freed tensor may still be read by another context's stream (an image embedding
// the vision worker made and the decoder copies), so only a free that waits for the device is safe. Allocations
// are rare (weights and caches once, scratch arenas grow a few times), so their cost does not matter.
#include <cublas_v2.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "autoglm/bulk_allocator.h"
#include "core/log.h"
#include "kernels/cuda/cuda_host.h"
#include "kernels/cuda/kernels.h"
#include "kernels/cuda/register.h"

namespace autoglm::cuda {

namespace {

constexpr size_t k_blas_workspace = size_t(32) << 20;  // cuBLAS's recommended size for Hopper

std::string gib(size_t bytes) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f GiB", double(bytes) / double(size_t(1) << 30));
  return buf;
}

void set_device(int index) {
  int cur = -1;
  check(cudaGetDevice(&cur), "cudaGetDevice");
  if (cur != index) check(cudaSetDevice(index), ("cudaSetDevice(" + std::to_string(index) + ")").c_str());
}

// Bytes this process holds on each device through alloc (for out-of-memory messages).
struct held_memory {
  std::mutex mu;
  std::unordered_map<void*, size_t> sizes;
  std::unordered_map<int, size_t> per_device;
};
held_memory& held() {
  static held_memory h;
  return h;
}

}  // namespace

struct stream_state {
  int device = 0;
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
  void* blas_ws = nullptr;
  void* work = nullptr;
  size_t work_bytes = 0;
  // Outgrown workspaces, kept until the stream goes: a recorded graph may still point at one.
  std::vector<void*> retired_work;
  int32_t* counters = nullptr;  // k_split_counters, zero between kernels (split_counters)
  int32_t* flag = nullptr;      // mapped host memory the kernels write (host address)
  int32_t* flag_dev = nullptr;  // its device address
  int sms = 0;
  int cc_major = 0;
  size_t smem_optin = 0;
  size_t l2_bytes = 0;
  // A second stream for work nothing on `stream` waits for (prefetch hints), forked from and joined back into it.
  cudaStream_t side = nullptr;
  cudaEvent_t fork = nullptr, join = nullptr;
  bool side_pending = false;  // side has work `stream` has not joined yet
  bool decode_on_tensor_cores = false;  // the last decode attention launched here took the tensor-core kernel
};

namespace {

struct stream_table {
  std::mutex mu;
  std::unordered_map<cudaStream_t, std::unique_ptr<stream_state>> states;
  std::atomic<uint64_t> generation{1};  // bumped when a stream goes, so thread caches never use a stale entry
};
stream_table& streams() {
  static stream_table t;
  return t;
}

const char* bad_index_text(int32_t code) {
  switch (code) {
    case BAD_EMBEDDING_ID: return "embedding: a token id outside the table";
    case BAD_KV_SLOT: return "kv_store: a slot outside the cache";
    case BAD_BLOCK_ID: return "attention_paged: a block id outside the cache";
    case BAD_SEQUENCE: return "attention_paged: a sequence whose rows lie outside q or whose context exceeds its block table";
    case BAD_SEGMENT: return "attention_dense: segment offsets outside the rows or decreasing";
    default: return "a kernel: an index outside its operand";
  }
}

// ---- device_memory --------------------------------------------------------------------------------------------

void* dev_alloc(device dev, size_t bytes) {
  set_device(dev.index);
  void* p = nullptr;
  const cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
  if (e != cudaSuccess) {
    cudaGetLastError();  // an allocation failure is not sticky: clear it so the next call does not report it
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    size_t mine = 0;
    {
      std::lock_guard<std::mutex> lk(held().mu);
      mine = held().per_device[dev.index];
    }
    throw error(dev.str() + ": out of device memory allocating " + std::to_string(bytes) + " bytes (" + gib(bytes) +
                "); the device has " + gib(free_b) + " free of " + gib(total_b) + ", autoglm holds " + gib(mine) +
                " there (" + cudaGetErrorString(e) + ")");
  }
  std::lock_guard<std::mutex> lk(held().mu);
  held().sizes[p] = bytes;
  held().per_device[dev.index] += bytes;
  return p;
}

void dev_free(device dev, void* p) {
  if (!p) return;
  {
    std::lock_guard<std::mutex> lk(held().mu);
    auto it = held().sizes.find(p);
    if (it != held().sizes.end()) {
      held().per_device[dev.index] -= it->second;
      held().sizes.erase(it);
    }
  }
  // Called from destructors: report, never throw. cudaFree waits for the device, so no stream still reads p.
  int cur = -1;
  if (cudaGetDevice(&cur) == cudaSuccess && cur != dev.index) cudaSetDevice(dev.index);
  const cudaError_t e = cudaFree(p);
  // At process exit the runtime may be unloaded before the last static owner lets go: nothing to report then.
  if (e != cudaSuccess && e != cudaErrorCudartUnloading)
    AG_LOG_ERROR("{}: cudaFree failed: {}", dev.str(), cudaGetErrorString(e));
}

// Host blocks of the bulk allocator (an image's pixel values) page-locked for uploads (bulk_pin): portable, so any
// device's copies take them at the link's speed. A refusal (e.g. the memlock limit) leaves the pageable path.
bool pin_host_block(void* p, size_t bytes) {
  const cudaError_t e = cudaHostRegister(p, bytes, cudaHostRegisterPortable);
  if (e != cudaSuccess) {
    cudaGetLastError();  // not sticky: clear it for the next call's checks
    AG_LOG_DEBUG("page-locking {} bytes for uploads failed ({}): they stay pageable", bytes, cudaGetErrorString(e));
    return false;
  }
  return true;
}
void unpin_host_block(void* p) {
  // Also called from static destructors once the runtime may be gone: nothing to report then.
  if (cudaHostUnregister(p) != cudaSuccess) cudaGetLastError();
}

// Uploads at least this large from a bulk block page-lock it first (a screenshot's 63 MB: 7.2 -> 1.2 ms on an H100
// host); smaller ones are not worth a lock.
constexpr size_t k_pin_upload_bytes = size_t(4) << 20;

void dev_copy(const kernel_context& kc, void* dst, const void* src, size_t bytes, bool dst_host, bool src_host) {
  if (bytes == 0) return;
  if (dst_host && src_host) {
    std::memcpy(dst, src, bytes);
    return;
  }
  stream_state& s = state_of(kc);
  if (src_host && !dst_host && bytes >= k_pin_upload_bytes && bulk_pin(src)) {
    // From page-locked memory the copy is asynchronous: wait for it, so the source may be reused on return as
    // with a pageable one (in the vision encoder this is the first copy of the encode: nothing else is waited for).
    const cudaError_t e = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, s.stream);
    if (e != cudaSuccess)
      throw_cuda(e, "copy of " + std::to_string(bytes) + " bytes host -> device (page-locked) on " + kc.dev.str());
    check(cudaStreamSynchronize(s.stream), ("upload on " + kc.dev.str()).c_str());
    return;
  }
  // Pageable host memory: the call returns once the source has been staged (host to device) or the copy is done
  // (device to host), so host buffers may be reused right after it.
  const cudaError_t e = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, s.stream);
  if (e != cudaSuccess)
    throw_cuda(e, std::string("copy of ") + std::to_string(bytes) + " bytes " + (src_host ? "host" : "device") +
                      " -> " + (dst_host ? "host" : "device") + " on " + kc.dev.str());
}

void dev_synchronize(const kernel_context& kc) {
  stream_state& s = state_of(kc);
  join_side(s);
  check(cudaStreamSynchronize(s.stream), ("synchronize " + kc.dev.str()).c_str());
  volatile int32_t* f = s.flag;
  if (f[0] != BAD_NONE) {
    const int32_t code = f[0], value = f[1];
    f[0] = BAD_NONE;
    f[1] = 0;
    throw error(kc.dev.str() + ": " + bad_index_text(code) + " (value " + std::to_string(value) +
                "); the results of this step are invalid");
  }
}

void* dev_create_stream(device dev) {
  set_device(dev.index);
  auto s = std::make_unique<stream_state>();
  s->device = dev.index;
  check(cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking), "cudaStreamCreate");
  try {
    if (cublasCreate(&s->blas) != CUBLAS_STATUS_SUCCESS) throw error(dev.str() + ": cublasCreate failed");
    cublasSetStream(s->blas, s->stream);
    // One workspace per handle: cuBLAS results are then deterministic per stream.
    s->blas_ws = dev_alloc(dev, k_blas_workspace);
    cublasSetWorkspace(s->blas, s->blas_ws, k_blas_workspace);
    // Zeroed here, before any graph is recorded on the stream; the kernels that use them leave them at zero.
    s->counters = static_cast<int32_t*>(dev_alloc(dev, k_split_counters * sizeof(int32_t)));
    check(cudaMemsetAsync(s->counters, 0, k_split_counters * sizeof(int32_t), s->stream), "clearing split counters");
    check(cudaStreamSynchronize(s->stream), "clearing split counters");
    void* flag = nullptr;
    check(cudaHostAlloc(&flag, 2 * sizeof(int32_t), cudaHostAllocMapped | cudaHostAllocPortable), "cudaHostAlloc");
    s->flag = static_cast<int32_t*>(flag);
    s->flag[0] = s->flag[1] = 0;
    void* flag_dev = nullptr;
    check(cudaHostGetDevicePointer(&flag_dev, flag, 0), "cudaHostGetDevicePointer");
    s->flag_dev = static_cast<int32_t*>(flag_dev);
    int sms = 0, optin = 0;
    check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev.index), "cudaDeviceGetAttribute");
    check(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev.index),
          "cudaDeviceGetAttribute");
    int cc = 0;
    check(cudaDeviceGetAttribute(&cc, cudaDevAttrComputeCapabilityMajor, dev.index), "cudaDeviceGetAttribute");
    s->sms = sms;
    s->cc_major = cc;
    s->smem_optin = size_t(optin);
    int l2 = 0;
    check(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev.index), "cudaDeviceGetAttribute");
    s->l2_bytes = size_t(l2);
    check(cudaStreamCreateWithFlags(&s->side, cudaStreamNonBlocking), "cudaStreamCreate (side)");
    check(cudaEventCreateWithFlags(&s->fork, cudaEventDisableTiming), "cudaEventCreate");
    check(cudaEventCreateWithFlags(&s->join, cudaEventDisableTiming), "cudaEventCreate");
  } catch (...) {
    if (s->blas) cublasDestroy(s->blas);
    if (s->blas_ws) dev_free(dev, s->blas_ws);
    if (s->counters) dev_free(dev, s->counters);
    if (s->flag) cudaFreeHost(s->flag);
    if (s->fork) cudaEventDestroy(s->fork);
    if (s->join) cudaEventDestroy(s->join);
    if (s->side) cudaStreamDestroy(s->side);
    cudaStreamDestroy(s->stream);
    throw;
  }
  stream_table& t = streams();
  std::lock_guard<std::mutex> lk(t.mu);
  t.generation.fetch_add(1);
  cudaStream_t key = s->stream;
  t.states[key] = std::move(s);
  return key;
}

void dev_destroy_stream(device dev, void* stream) {
  std::unique_ptr<stream_state> s;
  {
    stream_table& t = streams();
    std::lock_guard<std::mutex> lk(t.mu);
    auto it = t.states.find(static_cast<cudaStream_t>(stream));
    if (it == t.states.end()) return;
    s = std::move(it->second);
    t.states.erase(it);
    t.generation.fetch_add(1);
  }
  int cur = -1;
  if (cudaGetDevice(&cur) == cudaSuccess && cur != dev.index) cudaSetDevice(dev.index);
  cudaStreamSynchronize(s->stream);
  cudaStreamSynchronize(s->side);
  cublasDestroy(s->blas);
  dev_free(dev, s->blas_ws);
  dev_free(dev, s->counters);
  dev_free(dev, s->work);
  for (void* w : s->retired_work) dev_free(dev, w);
  cudaFreeHost(s->flag);
  cudaEventDestroy(s->fork);
  cudaEventDestroy(s->join);
  cudaStreamDestroy(s->side);
  cudaStreamDestroy(s->stream);
}

void dev_mem_info(device dev, size_t* free_bytes, size_t* total_bytes) {
  set_device(dev.index);
  check(cudaMemGetInfo(free_bytes, total_bytes), ("cudaMemGetInfo on " + dev.str()).c_str());
}

}  // namespace

// ---- shared with the kernel files -------------------------------------------------------------------------------

void throw_cuda(cudaError_t e, const std::string& what) {
  cudaGetLastError();  // clear a non-sticky error so it is reported once
  throw error("cuda: " + what + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
}

void check_launch(const char* op, const std::string& sizes) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess)
    throw_cuda(e, std::string(op) + " [" + sizes + "] (an earlier kernel may have faulted: CUDA_LAUNCH_BLOCKING=1 "
                                                  "reports faults at their launch)");
}

stream_state& state_of(const kernel_context& kc) {
  AG_CHECK(kc.dev.kind == device_kind::CUDA && kc.stream, "cuda: a kernel ran without a CUDA stream (" + kc.dev.str() + ")");
  const auto stream = static_cast<cudaStream_t>(kc.stream);
  thread_local cudaStream_t cached_stream = nullptr;
  thread_local stream_state* cached = nullptr;
  thread_local uint64_t cached_generation = 0;
  stream_table& t = streams();
  const uint64_t gen = t.generation.load(std::memory_order_acquire);
  if (!(cached && cached_stream == stream && cached_generation == gen)) {
    std::lock_guard<std::mutex> lk(t.mu);
    auto it = t.states.find(stream);
    AG_CHECK(it != t.states.end(), "cuda: unknown stream (its exec_context is gone?)");
    cached = it->second.get();
    cached_stream = stream;
    cached_generation = t.generation.load(std::memory_order_acquire);
  }
  set_device(cached->device);
  return *cached;
}

cudaStream_t stream_of(const stream_state& s) { return s.stream; }
int32_t* bad_index_flag(const stream_state& s) { return s.flag_dev; }
int32_t* split_counters(const stream_state& s) { return s.counters; }
void* blas_handle(const stream_state& s) { return s.blas; }
int sm_count(const stream_state& s) { return s.sms; }
bool pdl_enabled(const stream_state& s) {
  static const bool allowed = [] {
    const char* v = std::getenv("AUTOGLM_CUDA_PDL");
    return !(v && std::string(v) == "0");
  }();
  return allowed && s.cc_major >= 9;
}
int64_t env_integer(const char* name, int64_t fallback, int64_t lo, int64_t hi) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  errno = 0;
  const long long n = std::strtoll(v, &end, 10);
  if (*end != 0 || errno != 0 || n < lo || n > hi)
    throw error(std::string(name) + " is '" + v + "': use a whole number from " + std::to_string(lo) + " to " +
                std::to_string(hi));
  return int64_t(n);
}
int env_choice(const char* name, std::initializer_list<const char*> choices) {
  const char* v = std::getenv(name);
  if (!v || !*v) return 0;
  int i = 0;
  for (const char* c : choices) {
    if (std::strcmp(v, c) == 0) return i;
    ++i;
  }
  std::string list;
  i = 0;
  for (const char* c : choices) {
    list += i == 0 ? "" : i + 1 == int(choices.size()) ? " or " : ", ";
    list += c;
    ++i;
  }
  throw error(std::string(name) + " is '" + v + "': use " + list);
}
int smem_carveout(int choice) {
  static const int percent = int(env_integer("AUTOGLM_CUDA_SMEM_CARVEOUT", -1, 0, 100));
  return percent >= 0 ? percent : choice;
}
void note_decode_kernel(stream_state& s, bool tensor_cores) { s.decode_on_tensor_cores = tensor_cores; }
bool last_decode_on_tensor_cores(const stream_state& s) { return s.decode_on_tensor_cores; }
size_t max_shared_bytes(const stream_state& s) { return s.smem_optin; }
int compute_major(const stream_state& s) { return s.cc_major; }
size_t l2_cache_bytes(const stream_state& s) { return s.l2_bytes; }

cudaStream_t fork_side(stream_state& s) {
  check(cudaEventRecord(s.fork, s.stream), "fork: event record");
  check(cudaStreamWaitEvent(s.side, s.fork, 0), "fork: stream wait");
  return s.side;
}

void side_enqueued(stream_state& s) {
  check(cudaEventRecord(s.join, s.side), "side stream: event record");
  s.side_pending = true;
}

void join_side(stream_state& s) {
  if (!s.side_pending) return;
  check(cudaStreamWaitEvent(s.stream, s.join, 0), "join: stream wait");
  s.side_pending = false;
}

void* workspace(stream_state& s, size_t bytes, const char* op) {
  if (bytes <= s.work_bytes) return s.work;
  // Grows by at least half, so a prefill that grows chunk by chunk reallocates a few times only. The old buffer
  // may still be used by queued kernels of this stream or by a recorded graph (runtime/step_graphs): it is kept
  // until the stream goes (the growth is geometric, so at most as much again).
  const size_t want = std::max(bytes, s.work_bytes + s.work_bytes / 2);
  device dev{device_kind::CUDA, s.device};
  if (s.work) s.retired_work.push_back(s.work);
  s.work = nullptr;
  s.work_bytes = 0;
  try {
    s.work = dev_alloc(dev, want);
  } catch (const error& e) {
    throw error(std::string(op) + " workspace: " + e.what());
  }
  s.work_bytes = want;
  return s.work;
}

}  // namespace autoglm::cuda

namespace autoglm {

int cuda_device_count() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

std::string cuda_device_problem(int index) {
  const std::string name = "cuda:" + std::to_string(index);
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return name + ": no usable CUDA device (" + cudaGetErrorString(e) + ")";
  }
  if (n == 0) return name + ": no CUDA device on this machine";
  if (index < 0 || index >= n)
    return name + ": this machine has " + std::to_string(n) + " CUDA device" + (n == 1 ? "" : "s") + " (cuda:0" +
           (n > 1 ? "..cuda:" + std::to_string(n - 1) : std::string()) + ")";
  return "";
}

void register_cuda_kernels(kernel_registry& r) {
  if (cuda_device_count() == 0) {
    AG_LOG_DEBUG("the CUDA backend is not registered: {}", cuda_device_problem(0));
    return;
  }
  device_memory mem;
  mem.alloc = cuda::dev_alloc;
  mem.free = cuda::dev_free;
  mem.copy = cuda::dev_copy;
  set_bulk_pin_hooks({cuda::pin_host_block, cuda::unpin_host_block});
  mem.synchronize = cuda::dev_synchronize;
  mem.create_stream = cuda::dev_create_stream;
  mem.destroy_stream = cuda::dev_destroy_stream;
  mem.mem_info = cuda::dev_mem_info;
  mem.graph_begin = cuda::graph_begin;
  mem.graph_end = cuda::graph_end;
  mem.graph_launch = cuda::graph_launch;
  mem.graph_destroy = cuda::graph_destroy;
  mem.prefetch = cuda::prefetch_l2;
  mem.create_communicators = cuda::create_nccl_communicators;
  r.set_memory(device_kind::CUDA, mem);

  constexpr device_kind dk = device_kind::CUDA;
  for (dtype t : {dtype::F32, dtype::F16, dtype::BF16}) {
    r.add_kernel<kernel_sig::linear>(op_id::LINEAR, dk, t, cuda::linear_kernel);
    r.add_kernel<kernel_sig::linear_swiglu>(op_id::LINEAR_SWIGLU, dk, t, cuda::linear_swiglu_kernel);
    r.add_kernel<kernel_sig::linear_add>(op_id::LINEAR_ADD, dk, t, cuda::linear_add_kernel);
    r.add_kernel<kernel_sig::linear_rope_kv_store>(op_id::LINEAR_ROPE_KV_STORE, dk, t,
                                                   cuda::linear_rope_kv_store_kernel);
    r.add_kernel<kernel_sig::embedding>(op_id::EMBEDDING, dk, t, cuda::embedding_kernel);
    r.add_kernel<kernel_sig::kv_store>(op_id::KV_STORE, dk, t, cuda::kv_store_kernel);
    r.add_kernel<kernel_sig::rope_kv_store>(op_id::ROPE_KV_STORE, dk, t, cuda::rope_kv_store_kernel);
    r.add_kernel<kernel_sig::attention_paged>(op_id::ATTENTION_PAGED, dk, t, cuda::attention_paged_kernel);
  }
  for (dtype t : {dtype::F32, dtype::F16, dtype::BF16, dtype::I32})
    r.add_kernel<kernel_sig::copy>(op_id::COPY, dk, t, cuda::copy_kernel);
  r.add_kernel<kernel_sig::rms_norm>(op_id::RMS_NORM, dk, dtype::F32, cuda::rms_norm_kernel);
  r.add_kernel<kernel_sig::residual_rms_norm>(op_id::RESIDUAL_RMS_NORM, dk, dtype::F32, cuda::residual_rms_norm_kernel);
  r.add_kernel<kernel_sig::layer_norm>(op_id::LAYER_NORM, dk, dtype::F32, cuda::layer_norm_kernel);
  r.add_kernel<kernel_sig::rope_mrope>(op_id::ROPE_MROPE, dk, dtype::F32, cuda::rope_mrope_kernel);
  for (dtype t : {dtype::F32, dtype::BF16}) r.add_kernel<kernel_sig::rope_2d>(op_id::ROPE_2D, dk, t, cuda::rope_2d_kernel);
  for (dtype t : {dtype::F32, dtype::BF16}) r.add_kernel<kernel_sig::silu_mul>(op_id::SILU_MUL, dk, t, cuda::silu_mul_kernel);
  r.add_kernel<kernel_sig::gelu>(op_id::GELU, dk, dtype::F32, cuda::gelu_kernel);
  r.add_kernel<kernel_sig::add>(op_id::ADD, dk, dtype::F32, cuda::add_kernel);
  r.add_kernel<kernel_sig::softmax>(op_id::SOFTMAX, dk, dtype::F32, cuda::softmax_kernel);
  for (dtype t : {dtype::F32, dtype::BF16})
    r.add_kernel<kernel_sig::attention_dense>(op_id::ATTENTION_DENSE, dk, t, cuda::attention_dense_kernel);
  r.add_kernel<kernel_sig::attention_cross>(op_id::ATTENTION_CROSS, dk, dtype::F32, cuda::attention_cross_kernel);
  r.add_kernel<kernel_sig::im2col_1d>(op_id::IM2COL_1D, dk, dtype::F32, cuda::im2col_1d_kernel);
  r.add_kernel<kernel_sig::add_scaled>(op_id::ADD_SCALED, dk, dtype::F32, cuda::add_scaled_kernel);
  r.add_kernel<kernel_sig::pos_embed_bicubic>(op_id::POS_EMBED_BICUBIC, dk, dtype::F32,
                                              cuda::pos_embed_bicubic_kernel);
  r.add_kernel<kernel_sig::sample>(op_id::SAMPLE, dk, dtype::F32, cuda::sample_kernel);
  r.add_kernel<kernel_sig::image_patches>(op_id::IMAGE_PATCHES, dk, dtype::U8, cuda::image_patches_kernel);
}

}  // namespace autoglm
