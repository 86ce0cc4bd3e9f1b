// core/quant_blocks.cpp: scalar reference dequantizers of the GGUF block types (see quant_blocks.h for the layouts).
// Every value is computed as a float product of the decoded f16 scale(s) and small integers, in the order written
// in the header, so kernels that decode the same way get the same floats.
#include "core/quant_blocks.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "core/error.h"

namespace autoglm::quant {

namespace {

void dequantize_q8_0(const block_q8_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += qk_0) {
    const float d = f16_to_f32(b[i].d);
    for (int e = 0; e < 32; ++e) y[e] = d * float(b[i].qs[e]);
  }
}

void dequantize_q4_0(const block_q4_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += qk_0) {
    const float d = f16_to_f32(b[i].d);
    for (int e = 0; e < 16; ++e) {
      y[e] = d * float((b[i].qs[e] & 0x0f) - 8);
      y[e + 16] = d * float((b[i].qs[e] >> 4) - 8);
    }
  }
}

void dequantize_q4_1(const block_q4_1* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += qk_0) {
    const float d = f16_to_f32(b[i].d), m = f16_to_f32(b[i].m);
    for (int e = 0; e < 16; ++e) {
      y[e] = d * float(b[i].qs[e] & 0x0f) + m;
      y[e + 16] = d * float(b[i].qs[e] >> 4) + m;
    }
  }
}

// The 5-bit values of a Q5_0 / Q5_1 block (0..31), in element order.
void q5_values(const uint8_t* qh_bytes, const uint8_t* qs, int* q) {
  uint32_t qh;
  std::memcpy(&qh, qh_bytes, 4);
  for (int e = 0; e < 16; ++e) {
    q[e] = (qs[e] & 0x0f) | int(((qh >> e) & 1u) << 4);
    q[e + 16] = (qs[e] >> 4) | int(((qh >> (e + 16)) & 1u) << 4);
  }
}

void dequantize_q5_0(const block_q5_0* b, float* y, int64_t nb) {
  int q[32];
  for (int64_t i = 0; i < nb; ++i, y += qk_0) {
    const float d = f16_to_f32(b[i].d);
    q5_values(b[i].qh, b[i].qs, q);
    for (int e = 0; e < 32; ++e) y[e] = d * float(q[e] - 16);
  }
}

void dequantize_q5_1(const block_q5_1* b, float* y, int64_t nb) {
  int q[32];
  for (int64_t i = 0; i < nb; ++i, y += qk_0) {
    const float d = f16_to_f32(b[i].d), m = f16_to_f32(b[i].m);
    q5_values(b[i].qh, b[i].qs, q);
    for (int e = 0; e < 32; ++e) y[e] = d * float(q[e]) + m;
  }
}

void dequantize_q4_k(const block_q4_k* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = f16_to_f32(b[i].d), dmin = f16_to_f32(b[i].dmin);
    for (int c = 0; c < 4; ++c) {  // 64 elements per 32 bytes of qs
      const uint8_t* q = b[i].qs + 32 * c;
      for (int half = 0; half < 2; ++half) {
        uint8_t sc, m;
        k_scale_min(b[i].scales, 2 * c + half, sc, m);
        const float ds = d * float(sc), dm = dmin * float(m);
        for (int l = 0; l < 32; ++l) *y++ = ds * float(half ? q[l] >> 4 : q[l] & 0x0f) - dm;
      }
    }
  }
}

void dequantize_q5_k(const block_q5_k* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = f16_to_f32(b[i].d), dmin = f16_to_f32(b[i].dmin);
    for (int c = 0; c < 4; ++c) {
      const uint8_t* q = b[i].qs + 32 * c;
      for (int half = 0; half < 2; ++half) {
        uint8_t sc, m;
        const int j = 2 * c + half;
        k_scale_min(b[i].scales, j, sc, m);
        const float ds = d * float(sc), dm = dmin * float(m);
        for (int l = 0; l < 32; ++l) {
          const int v = (half ? q[l] >> 4 : q[l] & 0x0f) | (((b[i].qh[l] >> j) & 1) << 4);
          *y++ = ds * float(v) - dm;
        }
      }
    }
  }
}

void dequantize_q6_k(const block_q6_k* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = f16_to_f32(b[i].d);
    for (int h = 0; h < 2; ++h) {  // two halves of 128 elements
      const uint8_t* ql = b[i].ql + 64 * h;
      const uint8_t* qh = b[i].qh + 32 * h;
      const int8_t* sc = b[i].scales + 8 * h;
      float* o = y + 128 * h;
      for (int l = 0; l < 32; ++l) {
        // Quarter t of the half (elements 32t + l): low nibble of ql[l] / ql[l+32], then their high nibbles;
        // the 2 high bits are bits 2t, 2t+1 of qh[l].
        const int q0 = (ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4);
        const int q1 = (ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4);
        const int q2 = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
        const int q3 = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
        const int s = l / 16;
        o[l] = d * float(sc[s + 0]) * float(q0 - 32);
        o[l + 32] = d * float(sc[s + 2]) * float(q1 - 32);
        o[l + 64] = d * float(sc[s + 4]) * float(q2 - 32);
        o[l + 96] = d * float(sc[s + 6]) * float(q3 - 32);
      }
    }
    y += qk_k;
  }
}

}  // namespace

void k_pack_scale_min(uint8_t* s, const uint8_t* sc, const uint8_t* m) {
  std::memset(s, 0, k_scale_bytes);
  for (int j = 0; j < 8; ++j) {
    AG_CHECK(sc[j] < 64 && m[j] < 64, "k_pack_scale_min: 6-bit values only");
    if (j < 4) {
      s[j] |= sc[j];
      s[j + 4] |= m[j];
    } else {
      s[j + 4] = uint8_t((sc[j] & 0x0f) | ((m[j] & 0x0f) << 4));
      s[j - 4] |= uint8_t((sc[j] >> 4) << 6);
      s[j] |= uint8_t((m[j] >> 4) << 6);
    }
  }
}

bool can_dequantize(dtype t) {
  switch (t) {
    case dtype::F32: case dtype::F16: case dtype::BF16: case dtype::Q8_0: case dtype::Q4_0: case dtype::Q4_1:
    case dtype::Q5_0: case dtype::Q5_1: case dtype::Q4_K: case dtype::Q5_K: case dtype::Q6_K:
      return true;
    default:
      return false;
  }
}

void dequantize_row(dtype t, const void* src, float* dst, int64_t n) {
  AG_CHECK(dtype_row_fits(t, n), std::string("dequantize_row: ") + dtype_name(t) + " rows hold whole blocks of " +
                                     std::to_string(dtype_block_elems(t)) + " elements, not " + std::to_string(n));
  const int64_t nb = n / int64_t(dtype_block_elems(t));
  switch (t) {
    case dtype::F32: std::memcpy(dst, src, size_t(n) * 4); return;
    case dtype::F16:
      for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(static_cast<const uint16_t*>(src)[i]);
      return;
    case dtype::BF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(static_cast<const uint16_t*>(src)[i]);
      return;
    case dtype::Q8_0: return dequantize_q8_0(static_cast<const block_q8_0*>(src), dst, nb);
    case dtype::Q4_0: return dequantize_q4_0(static_cast<const block_q4_0*>(src), dst, nb);
    case dtype::Q4_1: return dequantize_q4_1(static_cast<const block_q4_1*>(src), dst, nb);
    case dtype::Q5_0: return dequantize_q5_0(static_cast<const block_q5_0*>(src), dst, nb);
    case dtype::Q5_1: return dequantize_q5_1(static_cast<const block_q5_1*>(src), dst, nb);
    case dtype::Q4_K: return dequantize_q4_k(static_cast<const block_q4_k*>(src), dst, nb);
    case dtype::Q5_K: return dequantize_q5_k(static_cast<const block_q5_k*>(src), dst, nb);
    case dtype::Q6_K: return dequantize_q6_k(static_cast<const block_q6_k*>(src), dst, nb);
    default: AG_CHECK(false, std::string("dequantize_row: no dequantizer for ") + dtype_name(t));
  }
}

void quantize_row_q8_0(const float* src, void* dst, int64_t n) {
  AG_CHECK(n % qk_0 == 0, "quantize_row_q8_0: " + std::to_string(n) + " is not a multiple of 32");
  auto* y = static_cast<block_q8_0*>(dst);
  for (int64_t b = 0; b < n / qk_0; ++b, src += qk_0) {
    float amax = 0;
    for (int e = 0; e < 32; ++e) amax = std::max(amax, std::fabs(src[e]));
    const float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    for (int e = 0; e < 32; ++e) {
      // roundf without libm (a call on baseline x86-64): truncate, then step away from zero from .5 on.
      const float v = std::min(127.0f, std::max(-127.0f, src[e] * id));  // also keeps NaN out of int()
      int q = int(v);
      const float f = v - float(q);
      if (f >= 0.5f) ++q;
      else if (f <= -0.5f) --q;
      y[b].qs[e] = int8_t(q);
    }
  }
}

void dequantize_row_i8(const int8_t* src, float scale, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = scale * float(src[i]);
}

}  // namespace autoglm::quant
