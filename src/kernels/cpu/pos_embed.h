// kernels/cpu/pos_embed.h: GLM-4.1V's learned vision position table sampled at each patch the way
// F.grid_sample(mode=bicubic, align_corners=False, padding_mode=border) does in fp32 (moved from the model;
// same arithmetic bit for bit, which the vision parity tests depend on).
#pragma once

#include <cstdint>

#include "core/kernel_registry.h"

namespace autoglm::cpu {

// Registered POS_EMBED_BICUBIC kernel (F32 table): table [g*g, d] (row = r*g + c), pos I32 [2, n] (h, w of each
// patch in the (grid_h, grid_w) patch grid), out [n, d] (free row strides).
void pos_embed_bicubic_kernel(const kernel_context& kc, const tensor& table, int32_t table_grid, int32_t grid_h,
                              int32_t grid_w, const tensor& pos, tensor& out);

}  // namespace autoglm::cpu
