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

}  // namespace autoglm
