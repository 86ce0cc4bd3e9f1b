// core/quant_blocks.h: the byte layouts of the GGUF block types (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K),
// byte-identical to ggml's, so tensors of llama.cpp's GGUF files are used in place and files we write load there;
// plus the scalar reference dequantizers every other part (kernels' fallbacks and tests, formats, eval) builds on.
//
// What the bytes mean (element e of a block, natural order):
//  - Q8_0 (32): x[e] = d * qs[e], qs int8.
//  - Q4_0 (32): x[e] = d * (q[e] - 8), q[e] = low nibble of qs[e] for e < 16, high nibble of qs[e-16] after.
//  - Q4_1 (32): x[e] = d * q[e] + m, q[e] the nibbles of Q4_0 (unsigned, 0..15).
//  - Q5_0 (32): x[e] = d * (q[e] - 16), q[e] = the Q4_0 nibble | (bit e of qh, a little-endian 32-bit word) << 4.
//  - Q5_1 (32): x[e] = d * q[e] + m, q[e] the 5-bit value of Q5_0 (unsigned, 0..31).
//  - Q4_K (256 = 8 sub-blocks of 32): x[e] = d * sc[j] * q[e] - dmin * m[j], j = e / 32, with 6-bit sc/m packed in
//    12 bytes (k_scale_min). q: 64 elements per 32 bytes of qs, low nibbles first (sub-block 2c), then high (2c+1).
//  - Q5_K (256): as Q4_K with a fifth bit: bit (2c) of qh[l] for element 64c + l, bit (2c+1) for 64c + 32 + l.
//  - Q6_K (256 = 16 sub-blocks of 16): x[e] = d * scales[e / 16] * (q[e] - 32), q 6 bits: per half h (128
//    elements) low 4 bits in ql[64h ..], high 2 bits in qh[32h ..] (see dequantize_q6_k).
// Scales d / dmin are IEEE half floats.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>

#include "core/dtype.h"

namespace autoglm::quant {

static_assert(std::endian::native == std::endian::little, "GGUF blocks are little-endian, as every target here");

constexpr int64_t qk_0 = 32;   // elements of a Q8_0 / Q4_0 / Q4_1 / Q5_0 / Q5_1 block
constexpr int64_t qk_k = 256;  // elements of a k-quant super-block
constexpr int k_scale_bytes = 12;

struct block_q8_0 {
  uint16_t d;     // f16 scale
  int8_t qs[32];  // quants
};
struct block_q4_0 {
  uint16_t d;      // f16 scale
  uint8_t qs[16];  // nibbles: element j low, element j + 16 high
};
struct block_q4_1 {
  uint16_t d;      // f16 scale
  uint16_t m;      // f16 min (added)
  uint8_t qs[16];  // nibbles as Q4_0's
};
struct block_q5_0 {
  uint16_t d;      // f16 scale
  uint8_t qh[4];   // fifth bits: bit e for element e (a little-endian uint32)
  uint8_t qs[16];  // low nibbles as Q4_0's
};
struct block_q5_1 {
  uint16_t d;      // f16 scale
  uint16_t m;      // f16 min (added)
  uint8_t qh[4];   // fifth bits as Q5_0's
  uint8_t qs[16];  // low nibbles
};
struct block_q4_k {
  uint16_t d;                     // f16 super-scale of the 6-bit scales
  uint16_t dmin;                  // f16 super-scale of the 6-bit mins
  uint8_t scales[k_scale_bytes];  // 8 scales + 8 mins, 6 bits each
  uint8_t qs[128];                // nibbles
};
struct block_q5_k {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[k_scale_bytes];
  uint8_t qh[32];   // fifth bits
  uint8_t qs[128];  // low nibbles
};
struct block_q6_k {
  uint8_t ql[128];    // low 4 bits
  uint8_t qh[64];     // high 2 bits
  int8_t scales[16];  // per 16 elements
  uint16_t d;         // f16 super-scale
};

static_assert(sizeof(block_q8_0) == 34 && alignof(block_q8_0) == 2, "Q8_0 block is 34 bytes");
static_assert(sizeof(block_q4_0) == 18 && alignof(block_q4_0) == 2, "Q4_0 block is 18 bytes");
static_assert(sizeof(block_q4_1) == 20 && alignof(block_q4_1) == 2, "Q4_1 block is 20 bytes");
static_assert(sizeof(block_q5_0) == 22 && alignof(block_q5_0) == 2, "Q5_0 block is 22 bytes");
static_assert(sizeof(block_q5_1) == 24 && alignof(block_q5_1) == 2, "Q5_1 block is 24 bytes");
static_assert(sizeof(block_q4_k) == 144 && alignof(block_q4_k) == 2, "Q4_K block is 144 bytes");
static_assert(sizeof(block_q5_k) == 176 && alignof(block_q5_k) == 2, "Q5_K block is 176 bytes");
static_assert(sizeof(block_q6_k) == 210 && alignof(block_q6_k) == 2, "Q6_K block is 210 bytes");

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K block: bytes 0-3 hold scales 0-3 (low 6 bits),
// bytes 4-7 mins 0-3 (low 6 bits), bytes 8-11 the low 4 bits of scale (low nibble) and min (high nibble) of
// sub-blocks 4-7, whose top 2 bits sit in the spare top bits of bytes 0-3 (scales) and 4-7 (mins).
inline void k_scale_min(const uint8_t* s, int j, uint8_t& sc, uint8_t& m) {
  if (j < 4) {
    sc = s[j] & 63;
    m = s[j + 4] & 63;
  } else {
    sc = uint8_t((s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4));
    m = uint8_t((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
  }
}
// All 8 scales and mins at once (the same values as k_scale_min), as two 64-bit words whose byte i is sub-block i's
// (the block's bytes read as little-endian words, as ggml lays them out); kernels keep these in registers.
struct k_scale_min_words {
  uint64_t sc, mn;
};
inline k_scale_min_words k_scales_mins_words(const uint8_t* s) {
  uint32_t w[3];
  std::memcpy(w, s, 12);
  const uint32_t low6 = 0x3f3f3f3f, low4 = 0x0f0f0f0f, low2 = 0x03030303;
  const uint64_t sc_hi = (w[2] & low4) | (((w[0] >> 6) & low2) << 4);
  const uint64_t mn_hi = ((w[2] >> 4) & low4) | (((w[1] >> 6) & low2) << 4);
  return {(w[0] & low6) | sc_hi << 32, (w[1] & low6) | mn_hi << 32};
}
// The same as bytes: sc[0..8) and m[0..8).
inline void k_scales_mins(const uint8_t* s, uint8_t* sc, uint8_t* m) {
  const k_scale_min_words w = k_scales_mins_words(s);
  std::memcpy(sc, &w.sc, 8);
  std::memcpy(m, &w.mn, 8);
}
// The inverse: packs 8 scales and 8 mins (each < 64) into 12 bytes.
void k_pack_scale_min(uint8_t* s, const uint8_t* sc, const uint8_t* m);

// Whether dequantize_row handles `t` (F32/F16/BF16 and the GGUF block types; I8 needs its scale, below).
bool can_dequantize(dtype t);
// dst[0..n) = the values of a row of n elements stored as `t` (n a whole number of blocks: AG_CHECK).
void dequantize_row(dtype t, const void* src, float* dst, int64_t n);
// n floats (a multiple of 32) to Q8_0 blocks by ggml's rule: d = max|x| / 127, q = round(x * (1 / d)) with ties
// away from zero, d stored as f16. Shared by the quantizer (formats) and the Q8_0 KV cache (kernels).
void quantize_row_q8_0(const float* src, void* dst, int64_t n);
// An I8 row with its per-output-channel scale: dst[e] = scale * src[e].
void dequantize_row_i8(const int8_t* src, float scale, float* dst, int64_t n);

}  // namespace autoglm::quant
