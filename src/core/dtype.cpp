// core/dtype.cpp: the dtype traits table and conversions (see dtype.h).
#include "core/dtype.h"

#include <cctype>

#include "core/error.h"

namespace autoglm {

namespace {

// Indexed by dtype. Block sizes are those of ggml's GGUF types, so files from llama.cpp map one to one.
constexpr dtype_traits k_traits[] = {
    {"F32", 1, 4, true, false, false},   {"F16", 1, 2, true, false, false},  {"BF16", 1, 2, true, false, false},
    {"I32", 1, 4, false, true, false},   {"I64", 1, 8, false, true, false},  {"U8", 1, 1, false, true, false},
    {"I8", 1, 1, false, true, false},    {"Q8_0", 32, 34, false, false, true}, {"Q4_0", 32, 18, false, false, true},
    {"Q4_K", 256, 144, false, false, true}, {"Q5_K", 256, 176, false, false, true},
    {"Q6_K", 256, 210, false, false, true},  {"Q4_1", 32, 20, false, false, true},
    {"Q5_0", 32, 22, false, false, true},     {"Q5_1", 32, 24, false, false, true},
};
static_assert(sizeof(k_traits) / sizeof(k_traits[0]) == size_t(dtype::COUNT), "one traits row per dtype");

}  // namespace

const dtype_traits& dtype_info(dtype t) {
  AG_CHECK(t < dtype::COUNT, "dtype out of range");
  return k_traits[size_t(t)];
}

size_t dtype_size(dtype t) {
  const dtype_traits& d = dtype_info(t);
  AG_CHECK(!d.is_block, std::string("dtype_size: ") + d.name + " is a block type; use dtype_row_bytes");
  return size_t(d.block_bytes);
}

size_t dtype_block_elems(dtype t) { return size_t(dtype_info(t).block_elems); }
size_t dtype_block_bytes(dtype t) { return size_t(dtype_info(t).block_bytes); }

bool dtype_row_fits(dtype t, int64_t n) { return n >= 0 && n % dtype_info(t).block_elems == 0; }

size_t dtype_row_bytes(dtype t, int64_t n) {
  const dtype_traits& d = dtype_info(t);
  AG_CHECK(n >= 0 && n % d.block_elems == 0,
           std::string(d.name) + " rows hold whole blocks of " + std::to_string(d.block_elems) + " elements, not " +
               std::to_string(n));
  return size_t(n / d.block_elems) * size_t(d.block_bytes);
}

bool dtype_from_safetensors(std::string_view s, dtype& out) {
  if (s == "F32") out = dtype::F32;
  else if (s == "F16") out = dtype::F16;
  else if (s == "BF16") out = dtype::BF16;
  else if (s == "I32") out = dtype::I32;
  else if (s == "I64") out = dtype::I64;
  else if (s == "U8") out = dtype::U8;
  else if (s == "I8") out = dtype::I8;
  else return false;
  return true;
}

bool dtype_from_name(std::string_view s, dtype& out) {
  for (size_t i = 0; i < size_t(dtype::COUNT); ++i) {
    std::string_view name = k_traits[i].name;
    if (name.size() != s.size()) continue;
    bool same = true;
    for (size_t c = 0; c < s.size() && same; ++c) same = std::toupper(static_cast<unsigned char>(s[c])) == name[c];
    if (same) {
      out = dtype(i);
      return true;
    }
  }
  return false;
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
