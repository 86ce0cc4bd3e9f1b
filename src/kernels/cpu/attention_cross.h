// kernels/cpu/attention_cross.h: cross-attention in fp32 (an encoder-decoder's decoder attending over the encoder's
// states, Flamingo / Llama 3.2 Vision's layers attending over media): every query row attends to every key row,
// no mask, grouped-query heads allowed. Per (query row, head) the arithmetic of the other attention kernels: dot *
// scale, softmax with a double sum, P.V in key order (attention_common.h), so results do not depend on threads.
#pragma once

#include <cstdint>

#include "core/kernel_registry.h"

namespace autoglm::cpu {

// Registered ATTENTION_CROSS kernel (F32): see kernel_sig::attention_cross.
void attention_cross_kernel(const kernel_context& kc, const tensor& q, const tensor& k, const tensor& v,
                            int32_t n_heads, int32_t n_kv_heads, int32_t head_dim, float scale, tensor& out);

}  // namespace autoglm::cpu
