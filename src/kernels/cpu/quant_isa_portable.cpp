// kernels/cpu/quant_isa_portable.cpp: the quantized LINEAR micro-kernels in plain C++ (any CPU; the reference the
// SIMD files must match bit for bit): V emulates the 8 int32 / float lanes of quant_microkernel.h with arrays.
#include <algorithm>
#include <utility>
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
  static constexpr int q8_bias = 0;  // packed Q8_0/I8 weights stay signed

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
  // Byte e = v where bit e of the little-endian 32-bit word at p is set, else 0 (Q5_0/Q5_1's fifth bits).
  static bytes bits32(const void* p, int v) {
    uint32_t w;
    std::memcpy(&w, p, 4);
    bytes b;
    for (int e = 0; e < 32; ++e) b.v[e] = int8_t((w >> e) & 1u ? v : 0);
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
  static bytes flip_sign(bytes a) {
    for (auto& e : a.v) e = int8_t(uint8_t(e) ^ 0x80);
    return a;
  }
  static ints as_ints(const bytes& b) {
    ints r;
    std::memcpy(r.v, b.v, 32);
    return r;
  }
  static ints izero() { return ints{}; }
  static ints ibcast(int x) {
    ints r;
    for (auto& e : r.v) e = x;
    return r;
  }
  static ints iadd(ints a, const ints& b) {
    for (int l = 0; l < 8; ++l) a.v[l] += b.v[l];
    return a;
  }
  static ints imul(ints a, const ints& b) {
    for (int l = 0; l < 8; ++l) a.v[l] *= b.v[l];
    return a;
  }
  static ints iload(const int32_t* p) {
    ints r;
    std::memcpy(r.v, p, 32);
    return r;
  }
  static void istore(int32_t* p, const ints& a) { std::memcpy(p, a.v, 32); }
  static ints reduce8(const ints* v) {
    ints r;
    for (int j = 0; j < 8; ++j) {
      r.v[j] = 0;
      for (int l = 0; l < 8; ++l) r.v[j] += v[j].v[l];
    }
    return r;
  }
  static void transpose8(ints* v) {
    for (int a = 0; a < 8; ++a)
      for (int b = a + 1; b < 8; ++b) std::swap(v[a].v[b], v[b].v[a]);
  }
  struct scale_src {
    int32_t v[16];
  };
  static scale_src scales_i8(const int8_t* p) {
    scale_src s;
    for (int k = 0; k < 16; ++k) s.v[k] = p[k];
    return s;
  }
  static scale_src scales_u8_dup(const uint8_t* p) {
    scale_src s;
    for (int k = 0; k < 16; ++k) s.v[k] = p[k / 2];
    return s;
  }
  static scale scale_pick(const scale_src& s, int v) { return {s.v[2 * v], s.v[2 * v + 1]}; }
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
  static ints dotb_u(ints acc, const bytes& w, const int8_t* x4) {
    for (int l = 0; l < 8; ++l)
      for (int e = 0; e < 4; ++e) acc.v[l] += int32_t(uint8_t(w.v[4 * l + e])) * int32_t(x4[e]);
    return acc;
  }
  static ints dotb_s(ints acc, const bytes& w, const int8_t* x4) {
    for (int l = 0; l < 8; ++l)
      for (int e = 0; e < 4; ++e) acc.v[l] += int32_t(w.v[4 * l + e]) * int32_t(x4[e]);
    return acc;
  }
  static floats fzero() { return floats{}; }
  static floats fbcast(float x) {
    floats r;
    for (auto& e : r.v) e = x;
    return r;
  }
  static floats fmul_b(floats a, float x) {
    for (auto& e : a.v) e *= x;
    return a;
  }
  static void fstore(float* p, const floats& a) { std::memcpy(p, a.v, 32); }
  static floats fmaxabs(floats m, const floats& x) {
    for (int l = 0; l < 8; ++l) m.v[l] = std::max(m.v[l], std::fabs(x.v[l]));
    return m;
  }
  static float fhmax(const floats& m) {
    float r = m.v[0];
    for (int l = 1; l < 8; ++l) r = std::max(r, m.v[l]);
    return r;
  }
  static bytes quant32(const float* x, float id) {
    bytes b;
    for (int e = 0; e < 32; ++e) {
      // Clamp first (NaN becomes -127), then round half to even by adding and removing 1.5 * 2^23.
      const float v = std::min(127.0f, std::max(-127.0f, x[e] * id));
      b.v[e] = int8_t(int((v + 12582912.0f) - 12582912.0f));
    }
    return b;
  }
  static void store(void* p, const bytes& b) { std::memcpy(p, b.v, 32); }
  static void sums16(const bytes& q, int& lo, int& hi) {
    lo = hi = 0;
    for (int e = 0; e < 16; ++e) lo += q.v[e], hi += q.v[e + 16];
  }
  static floats fload(const float* p) {
    floats r;
    std::memcpy(r.v, p, 32);
    return r;
  }
  static floats fmadd(const ints& i, const floats& s, floats acc) {
    for (int l = 0; l < 8; ++l) acc.v[l] = std::fma(float(i.v[l]), s.v[l], acc.v[l]);
    return acc;
  }
  static floats half8_at(const uint8_t* const* b, int at) {
    uint16_t h[8];
    for (int j = 0; j < 8; ++j) std::memcpy(&h[j], b[j] + at, 2);
    return half8(h);
  }
  static floats half8(const uint16_t* h) {
    floats r;
    for (int l = 0; l < 8; ++l) r.v[l] = f16_to_f32(h[l]);
    return r;
  }
  static int dot16_i8_i16(const int8_t* a, const int16_t* b) {
    int s = 0;
    for (int k = 0; k < 16; ++k) s += int(a[k]) * int(b[k]);
    return s;
  }
  static int dot8_u8_i16(const uint8_t* a, const int16_t* b) {
    int s = 0;
    for (int k = 0; k < 8; ++k) s += int(a[k]) * int(b[k]);
    return s;
  }
};

}  // namespace

const isa_table* table_portable() {
  static const isa_table t = make_table<v_portable>("portable", 4);
  return &t;
}

}  // namespace autoglm::cpu::qgemm
