// core/dtype.h: element types of weights and activations, and scalar conversions.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace autoglm {

enum class dtype : uint8_t { F32, F16, BF16, I32, I64, U8, Q8_0, Q4_0 };

// Bytes per element for plain types; block types report their block size through dtype_block_*.
size_t dtype_size(dtype t);
// Elements per quantization block (1 for plain types) and bytes per block.
size_t dtype_block_elems(dtype t);
size_t dtype_block_bytes(dtype t);
const char* dtype_name(dtype t);
// Parses a safetensors dtype string ("BF16", "F16", "F32", ...); returns false if unknown.
bool dtype_from_safetensors(std::string_view s, dtype& out);

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
