// kernels/cpu/quant_linear.h: LINEAR with quantized weights (I8 with per-row scales, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1,
// Q4_K, Q5_K, Q6_K in ggml's layouts) on the CPU: y [m, n] = x [m, k] . W^T + bias, x and y F32.
//
// Activations are quantized per call, per row, in groups matching the weight's blocks: G = 32 elements (I8, Q8_0,
// Q4_0, Q4_1, Q5_0, Q5_1) or 256 (the k-quants). For each group: amax = max |x|, d = amax / 127, q =
// round-half-even(x * (127 / amax)) clamped to [-127, 127] (both divisions in float; d = 0 and q = 0 when amax =
// 0). The k-quants also keep the sums of q over every 16 and 32 elements, the others over the 32. Weights are
// never dequantized to float: every group of every output is one exact integer dot product (int8 x int8, the
// k-quants' sub-block scales and mins applied as integers), converted to float once and accumulated with one fused
// multiply-add by (weight scale x d), in group order; Q4_1/Q5_1's f16 min adds one more FMA per group with the
// group's sum of x (quant_microkernel.h gives the exact rule). Every ISA path (portable C++, AVX2, AVX-512 VNNI,
// NEON dotprod, NEON i8mm), decode or prefill, computes the same integers and the same float operations in the same order,
// so all give identical bits whatever the number of rows or threads; the error against exact arithmetic is that
// of quantizing x (about 0.4% relative per group).
//
// Tiles are 8 W rows (the 8 lanes of a vector). Decode (1 .. 3 x rows) reads each W row once, in place: per
// group a vector of partial sums per row, added across into one integer per row. Prefill quantizes x once, then
// for panels of x rows that fit in L2 packs each W tile once (per group, 8 vectors whose lane r holds 4 weights
// of row r) and runs it against every row of the panel, 4-6 rows at a time, with x's 4-byte groups broadcast
// (vpdpbusd / vpmaddubsw / sdot): no reductions, and the packed tile is swept in L1-sized blocks of groups. With
// i8mm the tile holds pairs of W rows and 2 x rows x 2 W rows x 8 bytes go through one smmla. On AVX2, the types with
// unsigned weight integers add vpmaddubsw results as int16 over as many steps as cannot overflow before widening
// (prefill; Q4_0/Q4_1 decode too: quant_isa_avx2.cpp), the same integers. With AVX-512 VNNI,
// prefill of every GGUF block type takes the wide path instead (quant_wide_avx512.cpp): 6 x rows x 32 W rows per
// register tile on 512-bit vectors, x laid out once per call in 6-row panels, W tiles packed once per call
// (32-element types: a row-sum seed keeps each group's integer exact; k-quants: per-run dots times their scales),
// the same integers and float steps, so the same bits. I8 keeps the packed path.
// Threads split the W tiles.
//
// The one exception, on CPUs with AMX tiles under the ROUNDED precision (gemm_bf16.h, the default): prefill (16+ rows)
// of every weight type here (the GGUF block types and I8) runs the AMX GEMM of BF16 weights instead (gemm_amx.h), each
// W block dequantized to bf16 (I8: its integers, the row scales applied to the sums) and x rounded to bf16, F32 sums:
// torch's bf16 arithmetic on the dequantized model, not the integers above (1.6-1.7x their GFLOP/s on a 2-core Xeon
// VM, 9B gate|up over 512 rows). EXACT keeps every row on the integer kernels; decode rows always are.
//
// A weight with an r16 copy (linear_weight::repacked: Q4_0/Q4_1/Q5_0/Q5_1/Q8_0/the k-quants in tiles of 16 rows,
// made at load on AVX-512 VNNI + AMX CPUs, quant_repack.h) is read from the copy: decode by the AVX-512 r16 kernel,
// the AMX prefill from its tiles, the wide VNNI prefill a 32-row tile at a time unpacked as it packs it, any other
// path on slabs unpacked back to the file's layout. The same integers and float steps, so the same bits.
#pragma once

#include <cstdint>

#include "core/kernel_registry.h"

namespace autoglm::cpu {

// The registered LINEAR kernel for I8, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K and Q6_K weights: w.weight [n, k]
// (k a whole number of 32-element groups for I8, of blocks otherwise), w.scales F32 [n] for I8, w.bias F32 [n] or
// empty; x [m, k] and y [m, n] F32 with unit column stride (row strides free).
void quant_linear_kernel(const kernel_context& kc, const tensor& x, const linear_weight& w, tensor& y);
// LINEAR_SWIGLU with those weights: w.weight [2n, k] (gate rows, then up rows), y [m, n] = silu(gate) * up. The wide
// prefill applies the gate in its register tiles' store (tmp [m, 2n] untouched); decode and the other paths run
// quant_linear_kernel into tmp, then SILU_MUL: the same bytes either way.
void quant_linear_swiglu_kernel(const kernel_context& kc, const tensor& x, const linear_weight& w, tensor& tmp,
                                tensor& y);
// Whether quant_linear_kernel handles weights of `t`.
bool quant_linear_supports(dtype t);

// The instruction-set paths of the quantized kernels.
// AVX512_GFNI: AVX512_VNNI's kernels, its Q4 decode with GFNI's byte transform (quant_decode_x86.h).
// NEON_I8MM: smmla for prefill, the dotprod kernels for decode (it needs both extensions).
enum class quant_isa : uint8_t { PORTABLE, AVX2, AVX512_VNNI, AVX512_GFNI, NEON_DOTPROD, NEON_I8MM, COUNT };
// "portable", "avx2", "avx512-vnni", "avx512-gfni", "neon-dotprod", "neon-i8mm"
const char* quant_isa_name(quant_isa isa);
// Compiled into this build and supported by this CPU (and its OS).
bool quant_isa_available(quant_isa isa);
// The path the kernels take now: the forced one if any, portable when force_portable_kernels is on (convert.h),
// else the best available.
quant_isa quant_isa_selected();
// Forces the quantized kernels onto `isa` (which must be available), or back to automatic with COUNT. For tests and
// benchmarks; not meant to be flipped while kernels run on other threads.
void force_quant_isa(quant_isa isa);

}  // namespace autoglm::cpu
