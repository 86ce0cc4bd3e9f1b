// kernels/cuda/device_util.cuh: device helpers of the CUDA kernel files (internal to kernels/cuda): element
// conversions that round exactly as the CPU's (core/dtype.h), typed element loads and stores, warp/block
// reductions and the bad-index flag.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <utility>

#include "kernels/cuda/cuda_host.h"

namespace autoglm::cuda {

// ---- element conversions (bit for bit what core/dtype.h does on the host) ------------------------------------
__host__ __device__ inline float bf16_bits_to_f32(uint16_t h) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(uint32_t(h) << 16);
#else
  return bf16_to_f32(h);
#endif
}

// Round to nearest even, NaN kept quiet with its sign (core's f32_to_bf16).
__device__ inline uint16_t f32_to_bf16_bits(float f) {
  uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

// Exact, with NaN payloads kept as core's f16_to_f32 keeps them (the hardware conversion may canonicalize NaN,
// and COPY must give the CPU's bytes).
__device__ inline float f16_bits_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  if (exp == 0) {  // zero or subnormal: mant * 2^-24, exact in F32
    const float mag = float(mant) * 5.9604644775390625e-8f;
    return __uint_as_float(__float_as_uint(mag) | sign);
  }
  if (exp == 31) return __uint_as_float(sign | 0x7f800000u | (mant << 13));
  return __uint_as_float(sign | ((exp + 112) << 23) | (mant << 13));
}

// Round to nearest even with core's NaN / overflow / subnormal rules (core's f32_to_f16).
__device__ inline uint16_t f32_to_f16_bits(float f) {
  const uint32_t u = __float_as_uint(f);
  const uint32_t sign = (u >> 16) & 0x8000;
  int32_t exp = int32_t((u >> 23) & 0xff) - 127 + 15;
  const uint32_t mant = u & 0x7fffff;
  if (((u >> 23) & 0xff) == 0xff) return uint16_t(sign | 0x7c00 | (mant ? 0x200 : 0));
  if (exp >= 31) return uint16_t(sign | 0x7c00);
  if (exp <= 0) {
    if (exp < -10) return uint16_t(sign);
    const uint32_t m = mant | 0x800000;
    const uint32_t shift = uint32_t(14 - exp);
    const uint32_t half = 1u << (shift - 1);
    const uint32_t rounded = (m + half - 1 + ((m >> shift) & 1)) >> shift;
    return uint16_t(sign | rounded);
  }
  uint32_t rounded = mant + 0xfff + ((mant >> 13) & 1);
  if (rounded & 0x800000) {
    rounded = 0;
    ++exp;
    if (exp >= 31) return uint16_t(sign | 0x7c00);
  }
  return uint16_t(sign | (uint32_t(exp) << 10) | (rounded >> 13));
}

// Float -> I32 as the CPU's COPY: truncation toward zero, saturating, NaN -> 0.
__device__ inline int32_t f32_to_i32_sat(float f) {
  if (f != f) return 0;
  if (f >= 2147483647.0f) return INT32_MAX;
  if (f <= -2147483648.0f) return INT32_MIN;
  return int32_t(f);
}

// Element i of a row of storage type T (F32, F16 or BF16) as F32.
template <dtype T>
__device__ inline float load_elem(const void* row, int64_t i) {
  if constexpr (T == dtype::F32) return static_cast<const float*>(row)[i];
  else if constexpr (T == dtype::BF16) return bf16_bits_to_f32(static_cast<const uint16_t*>(row)[i]);
  else return f16_bits_to_f32(static_cast<const uint16_t*>(row)[i]);
}

template <dtype T>
__device__ inline void store_elem(void* row, int64_t i, float v) {
  if constexpr (T == dtype::F32) static_cast<float*>(row)[i] = v;
  else if constexpr (T == dtype::BF16) static_cast<uint16_t*>(row)[i] = f32_to_bf16_bits(v);
  else static_cast<uint16_t*>(row)[i] = f32_to_f16_bits(v);
}

// Bytes of one element of storage type T (F32, F16, BF16), in device code.
template <dtype T>
__host__ __device__ constexpr int64_t elem_bytes() {
  return T == dtype::F32 ? 4 : 2;
}

// Elements 4 j4 .. 4 j4 + 3 of a row of type T (F32: one 16-byte store, the row 16-byte aligned; BF16: one 8-byte
// store of the four rounded values, the row 8-byte aligned).
template <dtype T>
__device__ inline void store4(void* row, int64_t j4, const float4& v) {
  static_assert(T == dtype::F32 || T == dtype::BF16, "store4: F32 or BF16 rows");
  if constexpr (T == dtype::F32) {
    reinterpret_cast<float4*>(row)[j4] = v;
  } else {
    const uint32_t lo = uint32_t(f32_to_bf16_bits(v.x)) | uint32_t(f32_to_bf16_bits(v.y)) << 16;
    const uint32_t hi = uint32_t(f32_to_bf16_bits(v.z)) | uint32_t(f32_to_bf16_bits(v.w)) << 16;
    reinterpret_cast<uint2*>(row)[j4] = make_uint2(lo, hi);
  }
}

// ---- reductions ---------------------------------------------------------------------------------------------
// Programmatic dependent launch (Hopper): a kernel launched with launch_pdl (below) may start while the
// kernel before it on the stream still runs; it must call pdl_wait() before it reads anything that kernel writes
// (or writes anything that kernel reads): pdl_wait returns once the earlier grids completed and their memory is
// visible. pdl_trigger() lets the next kernel be scheduled early (it still waits in its pdl_wait). Both are
// nothing before sm_90 and for launches without the attribute.
__device__ inline void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ inline void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" :::);
#endif
}

// kernel<<<grid, block, smem>>>(args...) on the stream, as a programmatic dependent of the kernel before it where
// pdl_enabled(s): its launch and prologue then overlap that kernel's tail (about a microsecond per launch of a
// decode step's ~400). The kernel must call pdl_wait() before it touches memory an earlier kernel may write (the
// GEMV starts loading its constant weights first, on purpose), and on every path, including early returns: a later
// plain launch orders only against this kernel's completion, so this kernel's completion must imply its
// predecessor's. launch_extras: cluster_x > 0 (sm_90) groups the blocks into thread-block clusters of cluster_x
// consecutive blocks along x (grid.x a multiple of it); smem_carveout >= 0 asks for that percentage of L1 as shared
// memory (see smem_carveout in cuda_host.h). Either goes through cudaLaunchKernelEx whether or not PDL is on.
struct launch_extras {
  unsigned cluster_x = 0;
  int smem_carveout = -1;
};
template <class... P, class... A>
void launch_pdl_ex(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, const stream_state& s, const char* what,
                   launch_extras ex, A&&... args) {
  const bool pdl = pdl_enabled(s);
  if (!pdl && ex.cluster_x == 0 && ex.smem_carveout < 0) {
    kernel<<<grid, block, smem, stream_of(s)>>>(std::forward<A>(args)...);
    return;
  }
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream_of(s);
  cudaLaunchAttribute attr[3];
  unsigned n = 0;
  if (ex.cluster_x > 0) {
    attr[n].id = cudaLaunchAttributeClusterDimension;
    attr[n].val.clusterDim.x = ex.cluster_x;
    attr[n].val.clusterDim.y = 1;
    attr[n].val.clusterDim.z = 1;
    ++n;
  }
  if (ex.smem_carveout >= 0) {
    attr[n].id = cudaLaunchAttributePreferredSharedMemoryCarveout;
    attr[n].val.sharedMemCarveout = unsigned(ex.smem_carveout);
    ++n;
  }
  if (pdl) {
    attr[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[n].val.programmaticStreamSerializationAllowed = 1;
    ++n;
  }
  cfg.attrs = attr;
  cfg.numAttrs = n;
  check(cudaLaunchKernelEx(&cfg, kernel, std::forward<A>(args)...), what);
}
template <class... P, class... A>
void launch_pdl(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, const stream_state& s, const char* what,
                A&&... args) {
  launch_pdl_ex(kernel, grid, block, smem, s, what, launch_extras{}, std::forward<A>(args)...);
}

__device__ inline float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ inline float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result. `scratch` holds
// 32 floats of shared memory; the call synchronizes the block (twice), so it may be called repeatedly.
__device__ inline float block_sum(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float t = lane < n_warps ? scratch[lane] : 0.0f;
  return warp_sum(t);
}

__device__ inline float block_max(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float t = lane < n_warps ? scratch[lane] : -INFINITY;
  return warp_max(t);
}

// Records a bad index (first writer's code stays meaningful enough: any code names a real problem).
__device__ inline void flag_bad(int32_t* flag, int32_t code, int64_t value) {
  volatile int32_t* f = flag;
  f[0] = code;
  f[1] = int32_t(value);
}

// Where KV_STORE, ROPE_KV_STORE and the decode GEMV of LINEAR_ROPE_KV_STORE put row i's k and v: the paged caches' slot
// of each row and their byte strides, checked on the host (geometry()).
struct kv_slots {
  const int32_t* slots;  // [rows]: cache slot of row i; < 0: a padding row, not stored; >= capacity: flagged
  uint8_t* kc;
  uint8_t* vc;
  int64_t c_block, c_slot, c_head, capacity;
  int block_size;
  int32_t* flag;  // the stream's bad-index flag (BAD_KV_SLOT)
  // Byte offset of a slot's row (all KV heads) in either cache.
  __device__ int64_t row_offset(int64_t slot) const {
    return (slot / block_size) * c_block + (slot % block_size) * c_slot;
  }
};

inline kv_slots kv_slots_of(const paged_kv_layer& kv, const cache_geom& g, const tensor& slots,
                            const stream_state& s) {
  kv_slots d{};
  d.slots = slots.ptr<int32_t>();
  d.kc = static_cast<uint8_t*>(kv.k.data());
  d.vc = static_cast<uint8_t*>(kv.v.data());
  d.c_block = g.c_block;
  d.c_slot = g.c_slot;
  d.c_head = g.c_head;
  d.capacity = g.n_blocks * g.block_size;
  d.block_size = g.block_size;
  d.flag = bad_index_flag(s);
  return d;
}

}  // namespace autoglm::cuda
