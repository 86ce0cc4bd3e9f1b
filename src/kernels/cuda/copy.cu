// kernels/cuda/copy.cu: COPY and the EMBEDDING gather (see kernels.h), bit for bit as the CPU's copy.h: float ->
// I32 truncates toward zero, saturating, NaN -> 0; float -> F16/BF16 rounds to nearest even with core's NaN and
// overflow rules; I32 -> I32 is exact. A COPY between contiguous tensors of one dtype is a device memcpy; any
// other walks elements in row-major order of each side's (up to 4-D) strides. Also the L2 prefetch hint.
#include <algorithm>
#include <cstdlib>
#include <string>

#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/kernels.h"

namespace autoglm::cuda {

namespace {

constexpr int k_threads = 256;

// A tensor's layout: dims with size 1 dropped, neighbours merged where contiguous (as the CPU kernel).
struct layout {
  int n = 0;
  int64_t shape[k_max_dims] = {};
  int64_t stride[k_max_dims] = {};  // bytes

  explicit layout(const tensor& t) {
    for (int i = 0; i < t.n_dims(); ++i) {
      if (t.dim(i) == 1) continue;
      if (n > 0 && stride[n - 1] == t.stride(i) * t.dim(i)) {
        shape[n - 1] *= t.dim(i);
        stride[n - 1] = t.stride(i);
      } else {
        shape[n] = t.dim(i);
        stride[n] = t.stride(i);
        ++n;
      }
    }
    if (n == 0) {
      shape[0] = 1;
      stride[0] = int64_t(dtype_size(t.type()));
      n = 1;
    }
  }
};

__device__ inline int64_t offset_of(const layout& l, int64_t e) {
  int64_t off = 0;
  for (int i = l.n - 1; i >= 0; --i) {
    const int64_t q = e / l.shape[i];
    off += (e - q * l.shape[i]) * l.stride[i];
    e = q;
  }
  return off;
}

template <dtype S>
__device__ inline float load_any(const uint8_t* p) {
  if constexpr (S == dtype::I32) return float(*reinterpret_cast<const int32_t*>(p));
  else return load_elem<S>(p, 0);
}

template <dtype D>
__device__ inline void store_any(uint8_t* p, float v) {
  if constexpr (D == dtype::I32) *reinterpret_cast<int32_t*>(p) = f32_to_i32_sat(v);
  else store_elem<D>(p, 0, v);
}

template <dtype S, dtype D>
__global__ void copy_elements(const uint8_t* src, layout sl, uint8_t* dst, layout dl, int64_t total) {
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const uint8_t* s = src + offset_of(sl, e);
    uint8_t* d = dst + offset_of(dl, e);
    if constexpr (S == D) {
      // Exact whatever the type (I32 must not round through float; NaN payloads survive).
      if constexpr (S == dtype::F32 || S == dtype::I32) *reinterpret_cast<uint32_t*>(d) = *reinterpret_cast<const uint32_t*>(s);
      else *reinterpret_cast<uint16_t*>(d) = *reinterpret_cast<const uint16_t*>(s);
    } else {
      store_any<D>(d, load_any<S>(s));
    }
  }
}

template <dtype S>
void launch_copy_from(dtype dt, const uint8_t* src, const layout& sl, uint8_t* dst, const layout& dl, int64_t total,
                      unsigned grid, cudaStream_t st) {
  switch (dt) {
    case dtype::F32: copy_elements<S, dtype::F32><<<grid, k_threads, 0, st>>>(src, sl, dst, dl, total); break;
    case dtype::F16: copy_elements<S, dtype::F16><<<grid, k_threads, 0, st>>>(src, sl, dst, dl, total); break;
    case dtype::BF16: copy_elements<S, dtype::BF16><<<grid, k_threads, 0, st>>>(src, sl, dst, dl, total); break;
    default: copy_elements<S, dtype::I32><<<grid, k_threads, 0, st>>>(src, sl, dst, dl, total); break;
  }
}

bool copyable(dtype t) { return t == dtype::F32 || t == dtype::F16 || t == dtype::BF16 || t == dtype::I32; }

// One block per output row: out[i] = F32(table[ids[i]]); a bad id leaves a zero row and flags the stream.
template <dtype T>
__global__ void gather_rows(const uint8_t* table, int64_t ldt_bytes, int64_t n_rows, const int32_t* ids, float* out,
                            int64_t ldo, int64_t d, int32_t* flag) {
  // Block (row, part): a decode step's one row spreads over d / 256 blocks instead of looping in one.
  const int64_t i = blockIdx.x;
  const int64_t j = int64_t(blockIdx.y) * blockDim.x + threadIdx.x;
  if (j >= d) return;
  const int32_t id = ids[i];
  float* o = out + i * ldo;
  if (id < 0 || id >= n_rows) {
    if (j == 0) flag_bad(flag, BAD_EMBEDDING_ID, id);
    o[j] = 0.0f;
    return;
  }
  o[j] = load_elem<T>(table + int64_t(id) * ldt_bytes, j);
}

// Block b asks bytes [b * share, (b + 1) * share) of p into L2, one 128-byte line per thread and step. It runs on
// the stream's side stream (fork_side): nothing waits for it, so the kernels after the hint (a decode step's
// attention) run beside it. Measured on an H100 (2026-12-06, 9B dims, o_proj's 32 MB during each layer's attention):
// decode 150.8 / 146.6 -> 152.0 / 148.2 tokens/s at 512 / 2048; the same kernel on the stream itself, where the
// attention waits for it to complete, 149.6 / 144.4; bulk (TMA) prefetches on the side stream 151.7 / 148.0.
constexpr int64_t k_prefetch_share = int64_t(256) * 1024;
constexpr int k_prefetch_threads = 256;

__global__ void __launch_bounds__(k_prefetch_threads) l2_prefetch_kernel(const uint8_t* p, int64_t bytes) {
  const int64_t lo = int64_t(blockIdx.x) * k_prefetch_share, hi = min(bytes, lo + k_prefetch_share);
  for (int64_t off = lo + int64_t(threadIdx.x) * 128; off < hi; off += int64_t(k_prefetch_threads) * 128)
    asm volatile("prefetch.global.L2 [%0];" ::"l"(p + off));
}

// AUTOGLM_CUDA_PREFETCH=0 turns the hint off (benchmarks compare).
bool prefetch_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("AUTOGLM_CUDA_PREFETCH");
    return !(e && std::string(e) == "0");
  }();
  return on;
}

}  // namespace

// At most 3/4 of the L2 (the rest keeps what the kernels in between read).
void prefetch_l2(const kernel_context& kc, const void* p, size_t bytes) {
  if (!p || bytes == 0 || !prefetch_enabled()) return;
  stream_state& s = state_of(kc);
  const int64_t n = int64_t(std::min(bytes, l2_cache_bytes(s) / 4 * 3));
  if (n <= 0) return;
  const auto blocks = unsigned((n + k_prefetch_share - 1) / k_prefetch_share);
  l2_prefetch_kernel<<<blocks, k_prefetch_threads, 0, fork_side(s)>>>(static_cast<const uint8_t*>(p), n);
  check_launch("prefetch", std::to_string(n) + " bytes");
  side_enqueued(s);
}

void copy_kernel(const kernel_context& kc, const tensor& src, tensor& dst) {
  AG_CHECK(copyable(src.type()) && copyable(dst.type()), std::string("copy: ") + dtype_name(src.type()) + " -> " +
                                                             dtype_name(dst.type()) + " is not supported on CUDA");
  const int64_t total = src.n_elements();
  AG_CHECK(total == dst.n_elements(), "copy: element counts differ");
  if (total == 0) return;
  stream_state& s = state_of(kc);
  const cudaStream_t st = stream_of(s);
  const std::string sizes = std::string(dtype_name(src.type())) + " " + src.shape_str() + " -> " +
                            dtype_name(dst.type()) + " " + dst.shape_str();
  if (src.type() == dst.type() && src.is_contiguous() && dst.is_contiguous()) {
    const cudaError_t e = cudaMemcpyAsync(dst.data(), src.data(), src.n_bytes(), cudaMemcpyDeviceToDevice, st);
    if (e != cudaSuccess) throw_cuda(e, "copy " + sizes);
    return;
  }
  const layout sl(src), dl(dst);
  const unsigned grid = stride_grid(total, k_threads, s);
  const auto* sp = static_cast<const uint8_t*>(src.data());
  auto* dp = static_cast<uint8_t*>(dst.data());
  switch (src.type()) {
    case dtype::F32: launch_copy_from<dtype::F32>(dst.type(), sp, sl, dp, dl, total, grid, st); break;
    case dtype::F16: launch_copy_from<dtype::F16>(dst.type(), sp, sl, dp, dl, total, grid, st); break;
    case dtype::BF16: launch_copy_from<dtype::BF16>(dst.type(), sp, sl, dp, dl, total, grid, st); break;
    default: launch_copy_from<dtype::I32>(dst.type(), sp, sl, dp, dl, total, grid, st); break;
  }
  check_launch("copy", sizes);
}

void embedding_kernel(const kernel_context& kc, const tensor& table, const tensor& ids, tensor& out) {
  const dtype t = table.type();
  AG_CHECK(t == dtype::F32 || t == dtype::F16 || t == dtype::BF16,
           std::string("embedding: CUDA tables are F32, F16 or BF16, not ") + dtype_name(t));
  AG_CHECK(table.n_dims() == 1 || table.stride(-1) == int64_t(dtype_size(t)), "embedding: table rows must be contiguous");
  AG_CHECK(ids.type() == dtype::I32 && ids.is_contiguous(), "embedding: ids must be contiguous I32");
  const mat<float> o = f32_mat(out, "embedding out");
  AG_CHECK(ids.n_elements() == o.rows && table.cols() == o.cols, "embedding: shapes");
  if (o.rows == 0) return;
  stream_state& s = state_of(kc);
  const cudaStream_t st = stream_of(s);
  const auto* tab = static_cast<const uint8_t*>(table.data());
  const int64_t ldt = table.n_dims() == 1 ? int64_t(dtype_row_bytes(t, table.cols())) : table.row_stride();
  const int64_t n_rows = table.rows();
  AG_CHECK(o.cols <= int64_t(65535) * k_threads, "embedding: rows of " + std::to_string(o.cols) + " elements");
  const dim3 grid(blocks_for(o.rows, 1), blocks_for(o.cols, k_threads));
  int32_t* flag = bad_index_flag(s);
  if (t == dtype::F32) gather_rows<dtype::F32><<<grid, k_threads, 0, st>>>(tab, ldt, n_rows, ids.ptr<int32_t>(), o.p, o.ld, o.cols, flag);
  else if (t == dtype::F16) gather_rows<dtype::F16><<<grid, k_threads, 0, st>>>(tab, ldt, n_rows, ids.ptr<int32_t>(), o.p, o.ld, o.cols, flag);
  else gather_rows<dtype::BF16><<<grid, k_threads, 0, st>>>(tab, ldt, n_rows, ids.ptr<int32_t>(), o.p, o.ld, o.cols, flag);
  check_launch("embedding", "n=" + std::to_string(o.rows) + " d=" + std::to_string(o.cols) + " table " +
                                table.shape_str() + " " + dtype_name(t));
}

}  // namespace autoglm::cuda
