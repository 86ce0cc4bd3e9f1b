// core/dtype.h: element types of weights, activations and caches, and the traits table that makes every one of
// them addressable: elements per block, bytes per block, bytes per row. Plain types are blocks of one element;
// the GGUF block types (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K) pack a block of 32 or 256 weights with
// its scales.
// No code computes a row offset by hand: it asks dtype_row_bytes (or a tensor's strides, core/tensor.h).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace autoglm {

enum class dtype : uint8_t {
  F32,
  F16,
  BF16,
  I32,
  I64,
  U8,
  I8,    // int8 with per-output-channel scales carried beside the tensor (linear_weight::scales)
  Q8_0,  // GGUF: 32 weights = f16 scale + 32 x int8                       (34 bytes)
  Q4_0,  // GGUF: 32 weights = f16 scale + 16 bytes of 4-bit pairs          (18 bytes)
  Q4_K,  // GGUF k-quant: 256 weights, 8 sub-blocks with 6-bit scales/mins (144 bytes)
  Q5_K,  // GGUF k-quant: 256 weights, 5-bit                                (176 bytes)
  Q6_K,  // GGUF k-quant: 256 weights, 6-bit, 16 sub-blocks with int8 scales (210 bytes)
  // The 32-element types llama.cpp stores rows in when a k-quant cannot hold them (rows not a multiple of 256,
  // like GLM-4.1V's ffn_down of 13696): Q4_K -> Q5_0, Q5_K -> Q5_1 (formats/quantize.h fallback_type).
  Q4_1,  // GGUF: 32 weights = f16 scale + f16 min + 16 bytes of 4-bit pairs (20 bytes)
  Q5_0,  // GGUF: 32 weights = f16 scale + 4 bytes of fifth bits + 16 bytes of nibbles (22 bytes)
  Q5_1,  // GGUF: 32 weights = f16 scale + f16 min + fifth bits + nibbles   (24 bytes)
  COUNT
};

struct dtype_traits {
  const char* name;     // "F32", "BF16", "Q4_K", ...
  int32_t block_elems;  // elements per block (1 for plain types)
  int32_t block_bytes;  // bytes per block
  bool is_float;        // F32 / F16 / BF16
  bool is_integer;      // I32 / I64 / U8 / I8
  bool is_block;        // a quantized block type (block_elems > 1)
};

const dtype_traits& dtype_info(dtype t);
inline const char* dtype_name(dtype t) { return dtype_info(t).name; }
inline bool dtype_is_block(dtype t) { return dtype_info(t).is_block; }

// Bytes per element of a plain (non-block) type. Block types have no per-element size: use dtype_row_bytes.
size_t dtype_size(dtype t);
size_t dtype_block_elems(dtype t);
size_t dtype_block_bytes(dtype t);
// Whether a row of n elements is a whole number of blocks.
bool dtype_row_fits(dtype t, int64_t n);
// Bytes of a row of n elements (n must be a whole number of blocks: AG_CHECK).
size_t dtype_row_bytes(dtype t, int64_t n);

// Parses a safetensors dtype string ("BF16", "F16", "F32", ...); returns false if unknown.
bool dtype_from_safetensors(std::string_view s, dtype& out);
// Parses a dtype name, case-insensitive ("bf16", "q4_k", "f32"); returns false if unknown.
bool dtype_from_name(std::string_view s, dtype& out);

inline float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round-to-nearest-even, NaN kept quiet: what torch does for .to(bfloat16).
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

inline float round_bf16(float f) { return bf16_to_f32(f32_to_bf16(f)); }

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

}  // namespace autoglm
