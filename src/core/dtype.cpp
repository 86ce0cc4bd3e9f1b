#include "core/dtype.h"

namespace autoglm {

size_t dtype_size(dtype t) {
  switch (t) {
    case dtype::F32: return 4;
    case dtype::F16: return 2;
    case dtype::BF16: return 2;
    case dtype::I32: return 4;
    case dtype::I64: return 8;
    case dtype::U8: return 1;
    case dtype::Q8_0: return 34;  // per block of 32
    case dtype::Q4_0: return 18;  // per block of 32
  }
  return 0;
}

size_t dtype_block_elems(dtype t) { return (t == dtype::Q8_0 || t == dtype::Q4_0) ? 32 : 1; }
size_t dtype_block_bytes(dtype t) { return dtype_size(t); }

const char* dtype_name(dtype t) {
  switch (t) {
    case dtype::F32: return "F32";
    case dtype::F16: return "F16";
    case dtype::BF16: return "BF16";
    case dtype::I32: return "I32";
    case dtype::I64: return "I64";
    case dtype::U8: return "U8";
    case dtype::Q8_0: return "Q8_0";
    case dtype::Q4_0: return "Q4_0";
  }
  return "?";
}

bool dtype_from_safetensors(std::string_view s, dtype& out) {
  if (s == "F32") out = dtype::F32;
  else if (s == "F16") out = dtype::F16;
  else if (s == "BF16") out = dtype::BF16;
  else if (s == "I32") out = dtype::I32;
  else if (s == "I64") out = dtype::I64;
  else if (s == "U8") out = dtype::U8;
  else return false;
  return true;
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t u;
  if (exp == 0) {
    if (mant == 0) {
      u = sign;
    } else {  // subnormal: normalize
      exp = 127 - 15 + 1;
      while ((mant & 0x400) == 0) { mant <<= 1; --exp; }
      mant &= 0x3ff;
      u = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000u | (mant << 13);
  } else {
    u = sign | ((exp - 15 + 127) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint32_t sign = (u >> 16) & 0x8000;
  int32_t exp = int32_t((u >> 23) & 0xff) - 127 + 15;
  uint32_t mant = u & 0x7fffff;
  if (((u >> 23) & 0xff) == 0xff) return uint16_t(sign | 0x7c00 | (mant ? 0x200 : 0));
  if (exp >= 31) return uint16_t(sign | 0x7c00);
  if (exp <= 0) {
    if (exp < -10) return uint16_t(sign);
    mant |= 0x800000;
    uint32_t shift = uint32_t(14 - exp);
    uint32_t half = 1u << (shift - 1);
    uint32_t rounded = (mant + half - 1 + ((mant >> shift) & 1)) >> shift;
    return uint16_t(sign | rounded);
  }
  uint32_t rounded = mant + 0xfff + ((mant >> 13) & 1);
  if (rounded & 0x800000) { rounded = 0; ++exp; if (exp >= 31) return uint16_t(sign | 0x7c00); }
  return uint16_t(sign | (uint32_t(exp) << 10) | (rounded >> 13));
}

}  // namespace autoglm
