// kernels/cpu/quant_isa_portable.cpp: the quantized LINEAR micro-kernels in plain C++ (any CPU; the reference the
// SIMD files must match bit for bit): V emulates the 8 int32 / float lanes of quant_microkernel.h with arrays.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/dtype.h"
#include "core/quant_blocks.h"
#include "kernels/cpu/quant_gemm.h"
#include "kernels/cpu/quant_microkernel.h"

namespace autoglm::cpu::qgemm {

namespace {

struct v_portable {
  struct bytes {
    int8_t v[32];
  };
  struct ints {
    int32_t v[8];
  };
  struct floats {
    float v[8];
  };
  struct scale {
    int32_t lo, hi;
  };

  static bytes load(const void* p) {
    bytes b;
    std::memcpy(b.v, p, 32);
    return b;
  }
  static bytes nibbles16(const void* p) {
    const uint8_t* q = static_cast<const uint8_t*>(p);
    bytes b;
    for (int e = 0; e < 16; ++e) {
      b.v[e] = int8_t(q[e] & 0x0f);
      b.v[e + 16] = int8_t(q[e] >> 4);
    }
    return b;
  }
  static bytes nib_lo(bytes a) {
    for (auto& e : a.v) e = int8_t(uint8_t(e) & 0x0f);
    return a;
  }
  static bytes nib_hi(bytes a) {
    for (auto& e : a.v) e = int8_t(uint8_t(e) >> 4);
    return a;
  }
  static bytes field(bytes a, int shr, int mask, int shl) {
    for (auto& e : a.v) e = int8_t(((uint8_t(e) >> shr) & mask) << shl);
    return a;
  }
  static bytes or_(bytes a, const bytes& b) {
    for (int e = 0; e < 32; ++e) a.v[e] = int8_t(a.v[e] | b.v[e]);
    return a;
  }
  static ints izero() { return ints{}; }
  static floats fzero() { return floats{}; }
  static scale make_scale(int lo, int hi) { return {lo, hi}; }
  // Weights are 0..63 (unsigned kinds) or int8; either way the byte's value as int8 is the weight.
  static ints dot_u(ints acc, const bytes& w, const bytes& x) {
    for (int l = 0; l < 8; ++l)
      for (int e = 4 * l; e < 4 * l + 4; ++e) acc.v[l] += int32_t(w.v[e]) * int32_t(x.v[e]);
    return acc;
  }
  static ints dot_us(ints acc, const bytes& w, const bytes& x, scale s) {
    for (int l = 0; l < 8; ++l) {
      int32_t d = 0;
      for (int e = 4 * l; e < 4 * l + 4; ++e) d += int32_t(w.v[e]) * int32_t(x.v[e]);
      acc.v[l] += (l < 4 ? s.lo : s.hi) * d;
    }
    return acc;
  }
  static ints dot_ss(ints acc, const bytes& w, const bytes& x) { return dot_u(acc, w, x); }
  static floats fmadd(const ints& i, float s, floats acc) {
    for (int l = 0; l < 8; ++l) acc.v[l] = std::fma(float(i.v[l]), s, acc.v[l]);
    return acc;
  }
  static float hsum(const floats& a) {
    return ((a.v[0] + a.v[4]) + (a.v[2] + a.v[6])) + ((a.v[1] + a.v[5]) + (a.v[3] + a.v[7]));
  }
  static float half(const uint8_t* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return f16_to_f32(h);
  }
};

}  // namespace

const isa_table* table_portable() {
  static const isa_table t = make_table<v_portable, 4>("portable", 4);
  return &t;
}

}  // namespace autoglm::cpu::qgemm
