// kernels/cpu/register.h: the CPU backend's entry point: registers every CPU kernel (each op x dtype it
// implements, ISA chosen at run time inside the kernel) and host memory with the kernel registry.
#pragma once

#include "core/kernel_registry.h"

namespace autoglm {

void register_cpu_kernels(kernel_registry& registry);

}  // namespace autoglm
