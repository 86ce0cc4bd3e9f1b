// kernels/cuda/activations.cu: SiLU-gate (F32, or BF16 GEMM inputs), erf GELU, residual add (plain and scaled) and
// row softmax (see kernels.h).
// The element-wise ops walk [rows, cols] views with row strides (gate and up are column views of one fused gate_up
// buffer); expf / erff are CUDA's accurate versions (no fast math).
#include <algorithm>
#include <string>

#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/kernels.h"

namespace autoglm::cuda {

namespace {

constexpr int k_threads = 256;

__device__ inline float silu(float g) { return g / (1.0f + expf(-g)); }
__device__ inline float gelu_erf(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }

enum class ew_op { SILU_MUL, GELU, ADD };

// out[r, j] = f(a[r, j], b[r, j]) over the m x n elements, by rows (grid row_grid(m, n): no division per element).
template <ew_op OP>
__global__ void elementwise(float* out, int64_t ldo, const float* a, int64_t lda, const float* b, int64_t ldb,
                            int64_t m, int64_t n) {
  pdl_wait();     // launched as a programmatic dependent (launch_pdl)
  pdl_trigger();  // the GEMV after silu_mul (down_proj) may be scheduled now; it waits for this kernel's output
  const int64_t j = int64_t(blockIdx.y) * blockDim.x + threadIdx.x;
  if (j >= n) return;
  for (int64_t r = blockIdx.x; r < m; r += gridDim.x) {
    if constexpr (OP == ew_op::SILU_MUL) out[r * ldo + j] = silu(a[r * lda + j]) * b[r * ldb + j];
    else if constexpr (OP == ew_op::GELU) out[r * ldo + j] = gelu_erf(a[r * lda + j]);
    else out[r * ldo + j] = a[r * lda + j] + b[r * ldb + j];
  }
}

// x[r, j] += alpha * y[r, j] (one FMA, as the CPU); grid row_grid(m, n).
__global__ void add_scaled_rows(float* x, int64_t ldx, const float* y, int64_t ldy, int64_t m, int64_t n, float alpha) {
  const int64_t j = int64_t(blockIdx.y) * blockDim.x + threadIdx.x;
  if (j >= n) return;
  for (int64_t r = blockIdx.x; r < m; r += gridDim.x) x[r * ldx + j] = fmaf(alpha, y[r * ldy + j], x[r * ldx + j]);
}

// out = silu(gate) * up on BF16 rows (a GEMM's input, ops::gemm_input_type): F32 arithmetic on the exact bf16
// values, one rounding. V8: 8 elements (16 bytes) per thread and row step, every row 16-byte aligned; else one.
// Grid row_grid(m, n / (V8 ? 8 : 1)).
template <bool V8>
__global__ void silu_mul_bf16(uint16_t* out, int64_t ldo, const uint16_t* g, int64_t ldg, const uint16_t* u,
                              int64_t ldu, int64_t m, int64_t n) {
  pdl_wait();  // launched as a programmatic dependent (launch_pdl)
  pdl_trigger();
  const int64_t c = int64_t(blockIdx.y) * blockDim.x + threadIdx.x;
  if constexpr (V8) {
    if (c >= n / 8) return;
    for (int64_t r = blockIdx.x; r < m; r += gridDim.x) {
      const uint4 gv = reinterpret_cast<const uint4*>(g + r * ldg)[c];
      const uint4 uv = reinterpret_cast<const uint4*>(u + r * ldu)[c];
      const uint32_t gw[4] = {gv.x, gv.y, gv.z, gv.w}, uw[4] = {uv.x, uv.y, uv.z, uv.w};
      uint32_t ow[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float lo = silu(__uint_as_float(gw[i] << 16)) * __uint_as_float(uw[i] << 16);
        const float hi = silu(__uint_as_float(gw[i] & 0xffff0000u)) * __uint_as_float(uw[i] & 0xffff0000u);
        ow[i] = uint32_t(f32_to_bf16_bits(lo)) | uint32_t(f32_to_bf16_bits(hi)) << 16;
      }
      reinterpret_cast<uint4*>(out + r * ldo)[c] = make_uint4(ow[0], ow[1], ow[2], ow[3]);
    }
  } else {
    if (c >= n) return;
    for (int64_t r = blockIdx.x; r < m; r += gridDim.x)
      out[r * ldo + c] = f32_to_bf16_bits(silu(bf16_bits_to_f32(g[r * ldg + c])) * bf16_bits_to_f32(u[r * ldu + c]));
  }
}

template <class T>
std::string sizes_of(const mat<T>& x) { return "rows=" + std::to_string(x.rows) + " cols=" + std::to_string(x.cols); }

// One block per row: scale, max, exp and sum, normalize. A row whose maximum is -inf (fully masked) becomes zeros.
__global__ void __launch_bounds__(k_threads) softmax_rows(float* x, int64_t ldx, int64_t n, float scale) {
  __shared__ float scratch[32];
  float* row = x + int64_t(blockIdx.x) * ldx;
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < n; j += k_threads) {
    const float v = row[j] * scale;
    row[j] = v;
    mx = fmaxf(mx, v);
  }
  mx = block_max(mx, scratch);
  if (mx == -INFINITY) {
    for (int64_t j = threadIdx.x; j < n; j += k_threads) row[j] = 0.0f;
    return;
  }
  float sum = 0.0f;
  for (int64_t j = threadIdx.x; j < n; j += k_threads) {
    const float e = expf(row[j] - mx);
    row[j] = e;
    sum += e;
  }
  const float inv = 1.0f / block_sum(sum, scratch);
  for (int64_t j = threadIdx.x; j < n; j += k_threads) row[j] *= inv;
}

}  // namespace

void silu_mul_kernel(const kernel_context& kc, const tensor& gate, const tensor& up, tensor& out) {
  if (gate.type() == dtype::BF16) {
    const mat<uint16_t> g = mat_of<uint16_t>(gate, dtype::BF16, "silu_mul gate"),
                        u = mat_of<uint16_t>(up, dtype::BF16, "silu_mul up"),
                        o = mat_of<uint16_t>(out, dtype::BF16, "silu_mul out");
    AG_CHECK(g.rows == u.rows && g.cols == u.cols && g.rows == o.rows && g.cols == o.cols, "silu_mul: shapes");
    if (g.rows * g.cols == 0) return;
    stream_state& s = state_of(kc);
    const bool v8 = g.cols % 8 == 0 && g.ld % 8 == 0 && u.ld % 8 == 0 && o.ld % 8 == 0 &&
                    (reinterpret_cast<uintptr_t>(g.p) | reinterpret_cast<uintptr_t>(u.p) |
                     reinterpret_cast<uintptr_t>(o.p)) % 16 == 0;
    if (v8)
      launch_pdl(silu_mul_bf16<true>, row_grid(g.rows, g.cols / 8, k_threads, s), k_threads, 0, s, "silu_mul", o.p,
                 o.ld, g.p, g.ld, u.p, u.ld, g.rows, g.cols);
    else
      launch_pdl(silu_mul_bf16<false>, row_grid(g.rows, g.cols, k_threads, s), k_threads, 0, s, "silu_mul", o.p,
                 o.ld, g.p, g.ld, u.p, u.ld, g.rows, g.cols);
    check_launch("silu_mul", sizes_of(g));
    return;
  }
  const mat<float> g = f32_mat(gate, "silu_mul gate"), u = f32_mat(up, "silu_mul up"), o = f32_mat(out, "silu_mul out");
  AG_CHECK(g.rows == u.rows && g.cols == u.cols && g.rows == o.rows && g.cols == o.cols, "silu_mul: shapes");
  if (g.rows * g.cols == 0) return;
  stream_state& s = state_of(kc);
  launch_pdl(elementwise<ew_op::SILU_MUL>, row_grid(g.rows, g.cols, k_threads, s), k_threads, 0, s, "silu_mul",
      o.p, o.ld, g.p, g.ld, u.p, u.ld, g.rows, g.cols);
  check_launch("silu_mul", sizes_of(g));
}

void gelu_kernel(const kernel_context& kc, tensor& x) {
  const mat<float> xm = f32_mat(x, "gelu x");
  if (xm.rows * xm.cols == 0) return;
  stream_state& s = state_of(kc);
  launch_pdl(elementwise<ew_op::GELU>, row_grid(xm.rows, xm.cols, k_threads, s), k_threads, 0, s, "gelu",
      xm.p, xm.ld, xm.p, xm.ld, nullptr, 0, xm.rows, xm.cols);
  check_launch("gelu", sizes_of(xm));
}

void add_kernel(const kernel_context& kc, tensor& x, const tensor& y) {
  const mat<float> xm = f32_mat(x, "add x"), ym = f32_mat(y, "add y");
  AG_CHECK(xm.rows == ym.rows && xm.cols == ym.cols, "add: shapes");
  if (xm.rows * xm.cols == 0) return;
  stream_state& s = state_of(kc);
  launch_pdl(elementwise<ew_op::ADD>, row_grid(xm.rows, xm.cols, k_threads, s), k_threads, 0, s, "add",
      xm.p, xm.ld, xm.p, xm.ld, ym.p, ym.ld, xm.rows, xm.cols);
  check_launch("add", sizes_of(xm));
}

void add_scaled_kernel(const kernel_context& kc, tensor& x, const tensor& y, float alpha) {
  const mat<float> xm = f32_mat(x, "add_scaled x"), ym = f32_mat(y, "add_scaled y");
  AG_CHECK(xm.rows == ym.rows && xm.cols == ym.cols, "add_scaled: shapes");
  if (xm.rows * xm.cols == 0) return;
  stream_state& s = state_of(kc);
  add_scaled_rows<<<row_grid(xm.rows, xm.cols, k_threads, s), k_threads, 0, stream_of(s)>>>(
      xm.p, xm.ld, ym.p, ym.ld, xm.rows, xm.cols, alpha);
  check_launch("add_scaled", sizes_of(xm));
}

void softmax_kernel(const kernel_context& kc, tensor& x, float scale) {
  const mat<float> xm = f32_mat(x, "softmax x");
  if (xm.rows == 0 || xm.cols == 0) return;
  stream_state& s = state_of(kc);
  softmax_rows<<<blocks_for(xm.rows, 1), k_threads, 0, stream_of(s)>>>(xm.p, xm.ld, xm.cols, scale);
  check_launch("softmax", sizes_of(xm));
}

}  // namespace autoglm::cuda
