// tests/cuda/cuda_test_util.h: what the CUDA backend's tests share: a fixture that skips (GTEST_SKIP, naming why)
// where this build or machine has no usable cuda:0, host <-> device tensors through ops, random data and the
// normalized error of one backend's output against another's.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "kernels/cpu/gemm_bf16.h"
#include "ops/context.h"
#include "ops/ops.h"
#if defined(AUTOGLM_HAVE_CUDA)
#include "kernels/cuda/register.h"
#endif

namespace autoglm::cuda_test {

inline device cuda0() { return {device_kind::CUDA, 0}; }

// "" when cuda:0 runs kernels here; otherwise why not (no CUDA backend in this build, no device).
inline std::string cuda_problem() { return ops::device_problem(cuda0()); }

#define AG_SKIP_WITHOUT_CUDA()                                                         \
  do {                                                                                 \
    if (const std::string why = ::autoglm::cuda_test::cuda_problem(); !why.empty())    \
      GTEST_SKIP() << "no CUDA device: " << why;                                       \
  } while (0)

// One CPU and one CUDA context for a test suite (created once: contexts own streams and thread pools). The CPU is
// the F32 reference: its exact GEMM is pinned for the suite (kernels/cpu/gemm_bf16.h; by default a CPU with
// AVX-512 BF16 rounds prefill's linear inputs to bf16).
class cuda_fixture : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!cuda_problem().empty()) return;
    cpu_precision_ = cpu::get_cpu_gemm_precision();
    cpu::set_cpu_gemm_precision(cpu::cpu_gemm_precision::EXACT);
    cpu_ = new exec_context(device{}, 2);
    gpu_ = new exec_context(cuda0(), 1);
  }
  static void TearDownTestSuite() {
    if (!cpu_) return;
    delete gpu_;
    delete cpu_;
    gpu_ = cpu_ = nullptr;
    cpu::set_cpu_gemm_precision(cpu_precision_);
  }
  static inline cpu::cpu_gemm_precision cpu_precision_ = cpu::cpu_gemm_precision::EXACT;
  void SetUp() override { AG_SKIP_WITHOUT_CUDA(); }
  static exec_context& cpu() { return *cpu_; }
  static exec_context& gpu() { return *gpu_; }

  static inline exec_context* cpu_ = nullptr;
  static inline exec_context* gpu_ = nullptr;
};

// LINEAR's GEMM precision on CUDA for a scope (kernels/cuda/register.h): split = x as hi + lo parts (near F32),
// else x rounded to the weight's type (the default). Nothing in a build without the CUDA backend.
class gemm_precision_scope {
 public:
  explicit gemm_precision_scope(bool split) {
#if defined(AUTOGLM_HAVE_CUDA)
    old_ = get_cuda_gemm_precision();
    set_cuda_gemm_precision(split ? cuda_gemm_precision::SPLIT : cuda_gemm_precision::ROUNDED);
#endif
    (void)split;
  }
  ~gemm_precision_scope() {
#if defined(AUTOGLM_HAVE_CUDA)
    set_cuda_gemm_precision(old_);
#endif
  }
  gemm_precision_scope(const gemm_precision_scope&) = delete;
  gemm_precision_scope& operator=(const gemm_precision_scope&) = delete;

 private:
#if defined(AUTOGLM_HAVE_CUDA)
  cuda_gemm_precision old_ = cuda_gemm_precision::ROUNDED;
#endif
};

inline std::vector<float> normal(size_t n, uint64_t seed, float sd = 1.0f) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> d(0.0f, sd);
  std::vector<float> v(n);
  for (float& x : v) x = d(g);
  return v;
}

// A host tensor of `type` holding `values` rounded as core's conversions do (F32/F16/BF16), or I32 values.
inline tensor host_tensor(dtype type, const std::vector<int64_t>& shape, const std::vector<float>& values) {
  tensor t = tensor::empty_host(type, shape);
  for (size_t i = 0; i < values.size(); ++i) {
    switch (type) {
      case dtype::F32: t.ptr<float>()[i] = values[i]; break;
      case dtype::F16: t.ptr<uint16_t>()[i] = f32_to_f16(values[i]); break;
      case dtype::BF16: t.ptr<uint16_t>()[i] = f32_to_bf16(values[i]); break;
      case dtype::I32: {  // saturating, NaN -> 0 (a plain cast of those is undefined)
        const float v = values[i];
        t.ptr<int32_t>()[i] = v != v ? 0 : v >= 2147483647.0f ? INT32_MAX : v <= -2147483648.0f ? INT32_MIN : int32_t(v);
        break;
      }
      default: ADD_FAILURE() << "host_tensor: unsupported dtype";
    }
  }
  return t;
}

inline tensor host_i32(const std::vector<int64_t>& shape, const std::vector<int32_t>& values) {
  tensor t = tensor::empty_host(dtype::I32, shape);
  std::memcpy(t.data(), values.data(), values.size() * 4);
  return t;
}

// The same bytes on the context's device (persistent memory; the host tensor itself on the CPU).
inline tensor on(exec_context& ctx, const tensor& host) {
  if (ctx.dev().kind == device_kind::CPU) {
    tensor copy = tensor::empty_host(host.type(), host.shape());
    std::memcpy(copy.data(), host.data(), host.n_bytes());
    return copy;
  }
  tensor d = ops::alloc_persistent(ctx, host.type(), host.shape());
  kernel_registry::instance().memory(ctx.dev().kind).copy(ctx.kernels(), d.data(), host.data(), host.n_bytes(), false,
                                                          true);
  ops::synchronize(ctx);
  return d;
}

// Values of any F32/F16/BF16/I32 tensor (views included) as host floats, row-major.
inline std::vector<float> values(exec_context& ctx, const tensor& t) {
  const tensor h = ops::host_f32(ctx, t);
  return std::vector<float>(h.ptr<float>(), h.ptr<float>() + h.n_elements());
}

// Raw bytes of a contiguous tensor.
inline std::vector<uint8_t> bytes_of(exec_context& ctx, const tensor& t) {
  std::vector<uint8_t> out(t.n_bytes());
  ops::to_host(ctx, t, out.data(), out.size());
  return out;
}

// max|a - b| / max|b|; non-finite values must agree exactly (else +inf).
inline double norm_error(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  double md = 0, mr = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i])) {
      if (!(a[i] == b[i])) return INFINITY;
      continue;
    }
    md = std::max(md, double(std::fabs(a[i] - b[i])));
    mr = std::max(mr, double(std::fabs(b[i])));
  }
  return md == 0 ? 0.0 : md / std::max(mr, 1e-30);
}

}  // namespace autoglm::cuda_test
