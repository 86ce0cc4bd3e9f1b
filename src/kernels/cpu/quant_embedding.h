// kernels/cpu/quant_embedding.h: EMBEDDING (a row gather) from tables stored in a GGUF block type (Q8_0, Q4_0,
// Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K): each gathered row is dequantized to F32 by core's reference dequantizer
// (core/quant_blocks.h), so the result is exactly the table's values, whatever ISA runs it. A community GGUF file
// may store token_embd in any of these types (llama.cpp's Q4_K_M stores it as Q4_K, Q6_K or Q8_0).
#pragma once

#include "core/kernel_registry.h"

namespace autoglm::cpu {

// out[i] = dequantize(table[ids[i]]) (F32 rows of out, unit column stride); every id must be a row of the table
// (AG_CHECK), the table's rows whole blocks (the tensor API guarantees it).
void quant_embedding_kernel(const kernel_context& kc, const tensor& table, const tensor& ids, tensor& out);
// Whether quant_embedding_kernel takes tables of `t`.
bool quant_embedding_supports(dtype t);

}  // namespace autoglm::cpu
