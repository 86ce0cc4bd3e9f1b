// kernels/cuda/norm.cu: RMSNorm and LayerNorm (see kernels.h): one block per row, F32 sums over the block (the
// CPU sums in double; an F32 tree sum of a row is within the F32 tolerance of the harness). y may be x itself:
// every thread rereads only the elements it wrote, after the reductions. RMSNorm's output (y, or h after a residual
// add) is F32 or BF16 (HT: a GEMM's input, ops::gemm_input_type), rounded once from the F32 value.
#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <utility>
#include <string>

#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/kernels.h"

namespace autoglm::cuda {

namespace {

constexpr int k_threads = 256;

template <dtype HT>
__global__ void __launch_bounds__(k_threads)
    rms_norm_rows(const float* x, int64_t ldx, const float* w, int64_t n, float eps, void* y, int64_t ldy) {
  __shared__ float scratch[32];
  pdl_wait();  // launched as a programmatic dependent (launch_pdl)
  pdl_trigger();
  const float* xr = x + int64_t(blockIdx.x) * ldx;
  char* yr = static_cast<char*>(y) + int64_t(blockIdx.x) * ldy * elem_bytes<HT>();
  float ss = 0.0f;
  for (int64_t j = threadIdx.x; j < n; j += k_threads) ss = fmaf(xr[j], xr[j], ss);
  ss = block_sum(ss, scratch);
  const float inv = 1.0f / sqrtf(ss / float(n) + eps);
  for (int64_t j = threadIdx.x; j < n; j += k_threads) store_elem<HT>(yr, j, w[j] * (xr[j] * inv));
}

// x += w_post * (y * inv(y)); then h = w_next * (x * inv(x)) when w_next: one block per row, the arithmetic of
// rms_norm_rows and the add kernel one after another (each thread rereads only the x elements it wrote).
template <dtype HT>
__global__ void __launch_bounds__(k_threads)
    residual_rms_norm_rows(float* x, int64_t ldx, const float* y, int64_t ldy, const float* wp, const float* wn,
                           int64_t n, float eps, void* h, int64_t ldh) {
  __shared__ float scratch[32];
  pdl_wait();     // launched as a programmatic dependent (launch_pdl)
  pdl_trigger();  // the GEMV after this may be scheduled now (it waits for this kernel before reading h)
  float* xr = x + int64_t(blockIdx.x) * ldx;
  const float* yr = y + int64_t(blockIdx.x) * ldy;
  float ss = 0.0f;
  for (int64_t j = threadIdx.x; j < n; j += k_threads) ss = fmaf(yr[j], yr[j], ss);
  ss = block_sum(ss, scratch);
  const float inv = 1.0f / sqrtf(ss / float(n) + eps);
  float ss2 = 0.0f;
  for (int64_t j = threadIdx.x; j < n; j += k_threads) {
    const float v = xr[j] + wp[j] * (yr[j] * inv);
    xr[j] = v;
    ss2 = fmaf(v, v, ss2);
  }
  if (wn == nullptr) return;
  ss2 = block_sum(ss2, scratch);
  const float inv2 = 1.0f / sqrtf(ss2 / float(n) + eps);
  char* hr = static_cast<char*>(h) + int64_t(blockIdx.x) * ldh * elem_bytes<HT>();
  for (int64_t j = threadIdx.x; j < n; j += k_threads) store_elem<HT>(hr, j, wn[j] * (xr[j] * inv2));
}

// The same with the row held in registers (rows of whole, 16-byte aligned float4s up to 16,384 wide): each thread
// loads its float4s of x and y once, so a decode step's single row costs one memory round trip instead of three
// dependent passes over a 256-thread block (15.6 us measured on the H200 for a 4096-wide row).
constexpr int k_vec_threads = 1024;

// acc + v.x^2 + v.y^2 + v.z^2 + v.w^2, in that order (fmaf chain).
__device__ inline float add_squares(float acc, const float4& v) {
  return fmaf(v.w, v.w, fmaf(v.z, v.z, fmaf(v.y, v.y, fmaf(v.x, v.x, acc))));
}
// w * (v * inv) per lane, the rounding of rms_norm_rows.
__device__ inline float4 scaled(const float4& w, const float4& v, float inv) {
  return make_float4(w.x * (v.x * inv), w.y * (v.y * inv), w.z * (v.z * inv), w.w * (v.w * inv));
}
// x + w * (v * inv) per lane, as residual_rms_norm_rows writes it.
__device__ inline float4 plus_scaled(const float4& x, const float4& w, const float4& v, float inv) {
  return make_float4(x.x + w.x * (v.x * inv), x.y + w.y * (v.y * inv), x.z + w.z * (v.z * inv),
                     x.w + w.w * (v.w * inv));
}

template <int NV, dtype HT>  // float4s per thread, h's type
__global__ void __launch_bounds__(k_vec_threads)
    residual_rms_norm_vec(float* x, int64_t ldx, const float* y, int64_t ldy, const float* wp, const float* wn,
                          int n4, float eps, void* h, int64_t ldh) {
  __shared__ float scratch[32];
  // The norm weights never depend on the kernel before this one: their loads are on their way before waiting for it
  // (launched as a programmatic dependent, launch_pdl), instead of two dependent round trips after the reductions.
  float4 wpv[NV], wnv[NV];
#pragma unroll
  for (int i = 0; i < NV; ++i) {
    const int j = threadIdx.x + i * blockDim.x;
    if (j >= n4) continue;
    wpv[i] = reinterpret_cast<const float4*>(wp)[j];
    if (wn) wnv[i] = reinterpret_cast<const float4*>(wn)[j];
  }
  pdl_wait();
  pdl_trigger();
  float4* xr = reinterpret_cast<float4*>(x + int64_t(blockIdx.x) * ldx);
  const float4* yr = reinterpret_cast<const float4*>(y + int64_t(blockIdx.x) * ldy);
  const float n = float(n4) * 4.0f;
  float4 xv[NV], yv[NV];
  float ss = 0.0f;
#pragma unroll
  for (int i = 0; i < NV; ++i) {
    const int j = threadIdx.x + i * blockDim.x;
    if (j >= n4) continue;
    yv[i] = yr[j];
    xv[i] = xr[j];
    ss = add_squares(ss, yv[i]);
  }
  const float inv = 1.0f / sqrtf(block_sum(ss, scratch) / n + eps);
  float ss2 = 0.0f;
#pragma unroll
  for (int i = 0; i < NV; ++i) {
    const int j = threadIdx.x + i * blockDim.x;
    if (j >= n4) continue;
    xv[i] = plus_scaled(xv[i], wpv[i], yv[i], inv);
    xr[j] = xv[i];
    ss2 = add_squares(ss2, xv[i]);
  }
  if (wn == nullptr) return;
  const float inv2 = 1.0f / sqrtf(block_sum(ss2, scratch) / n + eps);
  char* hr = static_cast<char*>(h) + int64_t(blockIdx.x) * ldh * elem_bytes<HT>();
#pragma unroll
  for (int i = 0; i < NV; ++i) {
    const int j = threadIdx.x + i * blockDim.x;
    if (j >= n4) continue;
    store4<HT>(hr, j, scaled(wnv[i], xv[i], inv2));
  }
}

__global__ void __launch_bounds__(k_threads) layer_norm_rows(const float* x, int64_t ldx, const float* w,
                                                             const float* b, int64_t n, float eps, float* y,
                                                             int64_t ldy) {
  __shared__ float scratch[32];
  const float* xr = x + int64_t(blockIdx.x) * ldx;
  float* yr = y + int64_t(blockIdx.x) * ldy;
  float s = 0.0f;
  for (int64_t j = threadIdx.x; j < n; j += k_threads) s += xr[j];
  const float mean = block_sum(s, scratch) / float(n);
  // Two passes (sum of squared deviations), as the CPU and torch: no cancellation for rows with a large mean.
  float v = 0.0f;
  for (int64_t j = threadIdx.x; j < n; j += k_threads) {
    const float d = xr[j] - mean;
    v = fmaf(d, d, v);
  }
  const float inv = 1.0f / sqrtf(block_sum(v, scratch) / float(n) + eps);
  for (int64_t j = threadIdx.x; j < n; j += k_threads) yr[j] = (xr[j] - mean) * inv * w[j] + b[j];
}

// y = w * (x * inv(x)) with the row in registers, as residual_rms_norm_vec (a decode step's final norm: one row).
template <int NV, dtype HT>
__global__ void __launch_bounds__(k_vec_threads)
    rms_norm_vec(const float* x, int64_t ldx, const float* w, int n4, float eps, void* y, int64_t ldy) {
  __shared__ float scratch[32];
  float4 wv[NV];  // the weight's loads before waiting for the kernel before this one (as residual_rms_norm_vec)
#pragma unroll
  for (int i = 0; i < NV; ++i) {
    const int j = threadIdx.x + i * blockDim.x;
    if (j < n4) wv[i] = reinterpret_cast<const float4*>(w)[j];
  }
  pdl_wait();
  pdl_trigger();
  const float4* xr = reinterpret_cast<const float4*>(x + int64_t(blockIdx.x) * ldx);
  float4 xv[NV];
  float ss = 0.0f;
#pragma unroll
  for (int i = 0; i < NV; ++i) {
    const int j = threadIdx.x + i * blockDim.x;
    if (j >= n4) continue;
    xv[i] = xr[j];
    ss = add_squares(ss, xv[i]);
  }
  const float inv = 1.0f / sqrtf(block_sum(ss, scratch) / (float(n4) * 4.0f) + eps);
  char* yr = static_cast<char*>(y) + int64_t(blockIdx.x) * ldy * elem_bytes<HT>();
#pragma unroll
  for (int i = 0; i < NV; ++i) {
    const int j = threadIdx.x + i * blockDim.x;
    if (j >= n4) continue;
    store4<HT>(yr, j, scaled(wv[i], xv[i], inv));
  }
}

// Whether rows of n elements can take the register-resident float4 kernels (each row pointer aligned to 4 of its
// elements: 16 bytes of F32, 8 of BF16; row strides multiples of 4 elements), and their float4s per thread (1, 2 or 4)
// and block size.
struct row_ptr {
  const void* p;
  int64_t ld;        // elements
  size_t elem_size;  // bytes
};
bool vec_rows(int64_t n, std::initializer_list<row_ptr> rows, int& nv, int& threads) {
  const int64_t n4 = n / 4;
  if (n % 4 || n4 > 4 * k_vec_threads) return false;
  for (const row_ptr& r : rows)
    if (reinterpret_cast<uintptr_t>(r.p) % (4 * r.elem_size) || r.ld % 4) return false;
  nv = n4 <= k_vec_threads ? 1 : n4 <= 2 * k_vec_threads ? 2 : 4;
  threads = int(std::min<int64_t>(k_vec_threads, ((n4 + nv - 1) / nv + 31) / 32 * 32));
  return true;
}

std::string sizes_of(const mat<float>& x) { return "rows=" + std::to_string(x.rows) + " cols=" + std::to_string(x.cols); }

template <dtype HT>
void launch_rms_norm(const mat<float>& xm, const float* w, float eps, const act_mat& y, stream_state& s) {
  int nv = 0, threads = 0;
  if (vec_rows(xm.cols, {{xm.p, xm.ld, 4}, {y.p, y.ld, dtype_size(HT)}, {w, 0, 4}}, nv, threads)) {
    auto kernel = nv == 1 ? rms_norm_vec<1, HT> : nv == 2 ? rms_norm_vec<2, HT> : rms_norm_vec<4, HT>;
    launch_pdl(kernel, blocks_for(xm.rows, 1), threads, 0, s, "rms_norm", xm.p, xm.ld, w, int(xm.cols / 4), eps, y.p,
               y.ld);
  } else {
    launch_pdl(rms_norm_rows<HT>, blocks_for(xm.rows, 1), k_threads, 0, s, "rms_norm", xm.p, xm.ld, w, xm.cols, eps,
               y.p, y.ld);
  }
}

template <dtype HT>
void launch_residual_rms_norm(const mat<float>& xm, const mat<float>& ym, const float* wp, const float* wn, float eps,
                              const act_mat& h, stream_state& s) {
  int nv = 0, threads = 0;
  if (vec_rows(xm.cols,
               {{xm.p, xm.ld, 4}, {ym.p, ym.ld, 4}, {wp, 0, 4}, {wn ? wn : wp, 0, 4},
                {wn ? h.p : xm.p, wn ? h.ld : 0, wn ? dtype_size(HT) : 4}},
               nv, threads)) {
    auto kernel = nv == 1   ? residual_rms_norm_vec<1, HT>
                  : nv == 2 ? residual_rms_norm_vec<2, HT>
                            : residual_rms_norm_vec<4, HT>;
    launch_pdl(kernel, blocks_for(xm.rows, 1), threads, 0, s, "residual_rms_norm", xm.p, xm.ld, ym.p, ym.ld, wp, wn,
               int(xm.cols / 4), eps, h.p, h.ld);
  } else {
    launch_pdl(residual_rms_norm_rows<HT>, blocks_for(xm.rows, 1), k_threads, 0, s, "residual_rms_norm", xm.p, xm.ld,
               ym.p, ym.ld, wp, wn, xm.cols, eps, h.p, h.ld);
  }
}

}  // namespace

void rms_norm_kernel(const kernel_context& kc, const tensor& x, const tensor& weight, float eps, tensor& y) {
  const mat<float> xm = f32_mat(x, "rms_norm x");
  const act_mat ym = act_of(y, "rms_norm y");
  const float* w = f32_vector(weight, "rms_norm weight");
  AG_CHECK(xm.rows == ym.rows && xm.cols == ym.cols, "rms_norm: shapes");
  AG_CHECK(ym.type == dtype::F32 || ym.p != static_cast<const void*>(xm.p), "rms_norm: a BF16 y cannot be x");
  if (xm.rows == 0 || xm.cols == 0) return;
  stream_state& s = state_of(kc);
  if (ym.type == dtype::BF16) launch_rms_norm<dtype::BF16>(xm, w, eps, ym, s);
  else launch_rms_norm<dtype::F32>(xm, w, eps, ym, s);
  check_launch("rms_norm", sizes_of(xm));
}

void residual_rms_norm_kernel(const kernel_context& kc, tensor& x, const tensor& y, const tensor& w_post,
                              const tensor& w_next, float eps, tensor& h) {
  const mat<float> xm = f32_mat(x, "residual_rms_norm x"), ym = f32_mat(y, "residual_rms_norm y");
  const float* wp = f32_vector(w_post, "residual_rms_norm w_post");
  const float* wn = w_next.empty() ? nullptr : f32_vector(w_next, "residual_rms_norm w_next");
  act_mat hm{};
  if (wn) hm = act_of(h, "residual_rms_norm h");
  AG_CHECK(xm.rows == ym.rows && xm.cols == ym.cols && (!wn || (hm.rows == xm.rows && hm.cols == xm.cols)),
           "residual_rms_norm: shapes");
  if (xm.rows == 0 || xm.cols == 0) return;
  stream_state& s = state_of(kc);
  if (wn && hm.type == dtype::BF16) launch_residual_rms_norm<dtype::BF16>(xm, ym, wp, wn, eps, hm, s);
  else launch_residual_rms_norm<dtype::F32>(xm, ym, wp, wn, eps, hm, s);
  check_launch("residual_rms_norm", sizes_of(xm));
}

void layer_norm_kernel(const kernel_context& kc, const tensor& x, const tensor& weight, const tensor& bias, float eps,
                       tensor& y) {
  const mat<float> xm = f32_mat(x, "layer_norm x"), ym = f32_mat(y, "layer_norm y");
  const float* w = f32_vector(weight, "layer_norm weight");
  const float* b = f32_vector(bias, "layer_norm bias");
  AG_CHECK(xm.rows == ym.rows && xm.cols == ym.cols, "layer_norm: shapes");
  if (xm.rows == 0 || xm.cols == 0) return;
  stream_state& s = state_of(kc);
  layer_norm_rows<<<blocks_for(xm.rows, 1), k_threads, 0, stream_of(s)>>>(xm.p, xm.ld, w, b, xm.cols, eps, ym.p,
                                                                         ym.ld);
  check_launch("layer_norm", sizes_of(xm));
}

}  // namespace autoglm::cuda
