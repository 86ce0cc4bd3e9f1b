// formats/gguf_encoding.h: GGUF's little-endian scalars as the reader (gguf.cpp) and the writer (gguf_writer.cpp)
// encode them (internal to formats/).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "formats/gguf.h"

namespace autoglm::gguf_encoding {

constexpr char k_magic[4] = {'G', 'G', 'U', 'F'};

// Size of one scalar of a fixed-size metadata type; 0 for STRING / ARRAY.
inline size_t scalar_size(gguf_type t) {
  switch (t) {
    case gguf_type::U8: case gguf_type::I8: case gguf_type::BOOL: return 1;
    case gguf_type::U16: case gguf_type::I16: return 2;
    case gguf_type::U32: case gguf_type::I32: case gguf_type::F32: return 4;
    case gguf_type::U64: case gguf_type::I64: case gguf_type::F64: return 8;
    default: return 0;
  }
}
inline bool is_unsigned(gguf_type t) {
  return t == gguf_type::U8 || t == gguf_type::U16 || t == gguf_type::U32 || t == gguf_type::U64;
}
inline bool is_signed(gguf_type t) {
  return t == gguf_type::I8 || t == gguf_type::I16 || t == gguf_type::I32 || t == gguf_type::I64;
}
inline bool is_floating(gguf_type t) { return t == gguf_type::F32 || t == gguf_type::F64; }

inline uint64_t load_le(const uint8_t* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = n; i-- > 0;) v = (v << 8) | p[i];
  return v;
}
inline void store_le(std::string& out, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; ++i) out.push_back(char((v >> (8 * i)) & 0xff));
}

// Scalar bits (as kept in gguf_value::bits_) <-> stored bytes.
inline uint64_t decode_scalar(gguf_type t, const uint8_t* p) {
  const uint64_t raw = load_le(p, scalar_size(t));
  switch (t) {
    case gguf_type::I8: return uint64_t(int64_t(int8_t(raw)));
    case gguf_type::I16: return uint64_t(int64_t(int16_t(raw)));
    case gguf_type::I32: return uint64_t(int64_t(int32_t(raw)));
    case gguf_type::F32: {
      float f;
      uint32_t u = uint32_t(raw);
      std::memcpy(&f, &u, 4);
      double d = f;
      uint64_t b;
      std::memcpy(&b, &d, 8);
      return b;
    }
    default: return raw;  // unsigned, I64, F64 (double bits), BOOL
  }
}
inline void encode_scalar(std::string& out, gguf_type t, uint64_t bits) {
  if (t == gguf_type::F32) {
    double d;
    std::memcpy(&d, &bits, 8);
    float f = float(d);
    uint32_t u;
    std::memcpy(&u, &f, 4);
    store_le(out, u, 4);
  } else {
    store_le(out, bits, scalar_size(t));
  }
}

inline uint64_t pad_to(uint64_t x, uint64_t alignment) { return (x + alignment - 1) / alignment * alignment; }

}  // namespace autoglm::gguf_encoding
