// kernels/cuda/register.h: the CUDA backend's entry points (plain C++: ops includes this without nvcc).
// register_cuda_kernels fills the registry with device memory (allocations, copies and streams on a context's
// stream) and one entry per (op, dtype) the backend implements, when at least one CUDA device is usable; on a
// machine without one it registers nothing, so the CUDA device kind stays "no backend" and tests skip.
#pragma once

#include <string>

#include "core/kernel_registry.h"

namespace autoglm {

void register_cuda_kernels(kernel_registry& registry);

// "" when cuda:`index` can run kernels; otherwise why not, naming it ("cuda:0: no usable CUDA device (<driver's
// reason>)", "cuda:3: this machine has 2 CUDA devices (cuda:0..cuda:1)").
std::string cuda_device_problem(int index);

// Number of usable CUDA devices (0 without a driver or device).
int cuda_device_count();

// How LINEAR multiplies F16/BF16 weights when x has more rows than the decode GEMV takes (process-wide):
//  - ROUNDED (default): x rounded to the weight's type, one tensor-core GEMM (F32 accumulate): torch's bf16 linear,
//    up to 2^-9 relative error per product (bf16), at the tensor cores' full rate;
//  - SPLIT: x = hi + lo, both in the weight's type, two GEMMs accumulated in F32: about 2^-17 relative error per
//    product (near F32), twice the tensor-core work. For parity checks against the CPU backend. SPLIT also keeps
//    ATTENTION_DENSE of large images on its F32 kernel (ROUNDED runs it on tensor cores from 1024 rows).
enum class cuda_gemm_precision { ROUNDED, SPLIT };
void set_cuda_gemm_precision(cuda_gemm_precision p);
cuda_gemm_precision get_cuda_gemm_precision();

// ops::gemm_input_type on CUDA: BF16 for passes of more rows than the decode GEMV takes under ROUNDED precision
// (their GEMMs multiply bf16 on tensor cores), F32 otherwise (the GEMV's F32 x, SPLIT's near-F32 products).
dtype cuda_gemm_input_type(int64_t rows);

}  // namespace autoglm
