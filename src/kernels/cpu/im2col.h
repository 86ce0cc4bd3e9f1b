// kernels/cpu/im2col.h: IM2COL_1D, the gather that turns a 1-D convolution into a LINEAR (Whisper's conv front
// end: kernel 3, padding 1, strides 1 and 2). A Conv1d weight [c_out, c_in, k] read as the matrix [c_out, c_in*k]
// multiplies rows laid out channel-major, tap-minor, which is what this writes.
#pragma once

#include <cstdint>

#include "core/kernel_registry.h"

namespace autoglm::cpu {

// Registered IM2COL_1D kernel (F32): see kernel_sig::im2col_1d.
void im2col_1d_kernel(const kernel_context& kc, const tensor& x, int32_t kernel_size, int32_t stride, int32_t pad,
                      tensor& out);

}  // namespace autoglm::cpu
