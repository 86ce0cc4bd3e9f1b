// kernels/cpu/quant_repack.cpp: the r16 layout (see quant_repack.h): packing, unpacking, the load-time policy.
#include "kernels/cpu/quant_repack.h"

#include <sys/mman.h>

#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/file_io.h"
#include "core/quant_blocks.h"
#include "kernels/cpu/amx.h"
#include "kernels/cpu/convert.h"
#include "kernels/cpu/kernel_util.h"
#include "kernels/cpu/quant_linear.h"

namespace autoglm::cpu {

namespace {

// `bytes` of zeroed, page-aligned anonymous memory, owned by the returned pointer. Not asked for as transparent huge
// pages: on the 2-core VM measured, a fresh region's huge pages cost direct compaction at first touch (1.3-1.6 s
// instead of 0.3 to load a 1.5B-dims Q4_0 model) and whole 2 MiB pages at each weight's end (+140 MB resident), for
// a decode within the runs' spread (30.5 / 27.3 against 32.4 / 32.0 tokens/s).
std::shared_ptr<uint8_t> alloc_pages(int64_t bytes) {
  const size_t len = size_t(bytes);
  void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw error("repacking a weight: cannot map " + std::to_string(len) + " bytes");
  return std::shared_ptr<uint8_t>(static_cast<uint8_t*>(p), [len](uint8_t* q) { ::munmap(q, len); });
}

// Q5_0's 32 high bits (qh, bit e: element e) laid out for its decode: byte b, bit i < 4 = element 4 i + b (the low
// nibble of qs byte 4 i + b, vector i), bit 4 + i = element 16 + 4 i + b (that byte's high nibble); so for vector i
// one shift of the 32-bit word puts each byte's bit at bit 4 (quant_r16_avx512.cpp). Bit-for-bit invertible. Each
// 16-bit half is a 4 x 4 bit matrix (bit 4 i + b) transposed (to bit 4 b + i), then nibble b goes to byte b: a few
// shifts per block instead of a loop over the 32 bits (Q5_0 / Q5_1 weights are packed in C++ at load).
uint32_t transpose4x4_bits(uint32_t x) {  // two delta swaps: the 2 x 2 blocks' corners, then the blocks
  uint32_t t = (x ^ (x >> 3)) & 0x0A0Au;
  x ^= t ^ (t << 3);
  t = (x ^ (x >> 6)) & 0x00CCu;
  return x ^ t ^ (t << 6);
}
uint32_t nibbles_to_bytes(uint32_t y) {  // nibble b of 16 bits -> the low nibble of byte b
  return (y & 0xFu) | ((y & 0xF0u) << 4) | ((y & 0xF00u) << 8) | ((y & 0xF000u) << 12);
}
uint32_t bytes_to_nibbles(uint32_t z) {  // the inverse (z's high nibbles zero)
  return (z & 0xFu) | ((z >> 4) & 0xF0u) | ((z >> 8) & 0xF00u) | ((z >> 12) & 0xF000u);
}
}  // namespace

uint32_t q5_high_to_tile(uint32_t qh) {
  return nibbles_to_bytes(transpose4x4_bits(qh & 0xFFFFu)) | nibbles_to_bytes(transpose4x4_bits(qh >> 16)) << 4;
}
uint32_t q5_high_from_tile(uint32_t t) {
  return transpose4x4_bits(bytes_to_nibbles(t & 0x0F0F0F0Fu)) |
         transpose4x4_bits(bytes_to_nibbles((t >> 4) & 0x0F0F0F0Fu)) << 16;
}

namespace {

// Row j's block of group g into / out of a tile (quant_repack.h's layout). Q4_0/Q5_0/Q8_0: the f16 scale to the tile's
// scales, block word v (the 4 bytes after the scale and 4 v on) to vector v (Q8_0 + 128; Q5_0's word 0 is qh,
// rearranged). Q4_K: d and dmin to the group's first vector, block word v (v >= 1: the scales' 3 words, then qs) to
// vector v (Q5_K likewise: the scales' 3 words, qh's 8, then qs). Q6_K: d to the first vector, block word w (ql, qh,
// then the scales) to vector q6k_vector_of_word(w). Q4_1 / Q5_1: d and m to the first vector, (Q5_1: qh rearranged
// as Q5_0's to the second), the nibble words to the rest.
void block_to_tile(const r16_layout& L, uint8_t* tile, int64_t g, int64_t j, const uint8_t* blk) {
  const bool q8 = L.type == dtype::Q8_0;
  uint8_t* gv = tile + L.scale_bytes + g * L.nv * 64;
  if (L.type == dtype::Q6_K) {
    std::memcpy(gv + 2 * j, blk + 208, 2);
    for (int w = 0; w + 1 < L.nv; ++w) std::memcpy(gv + 64 * q6k_vector_of_word(w) + 4 * j, blk + 4 * w, 4);
    return;
  }
  if (L.type == dtype::Q4_K || L.type == dtype::Q5_K) {
    std::memcpy(gv + 2 * j, blk, 2);
    std::memcpy(gv + 32 + 2 * j, blk + 2, 2);
    for (int64_t v = 1; v < L.nv; ++v) std::memcpy(gv + 64 * v + 4 * j, blk + 4 * v, 4);
    return;
  }
  // The 32-element types: d (and m) to the tile's scales area or the group's vector 0, then the block's words from
  // the group's vector `first` on: Q5_0 / Q5_1's qh rearranged, the quant words as stored (Q8_0 + 128).
  const bool with_min = L.type == dtype::Q4_1 || L.type == dtype::Q5_1;
  const bool five = L.type == dtype::Q5_0 || L.type == dtype::Q5_1;
  const int64_t head = with_min ? 4 : 2, first = with_min ? 1 : 0;  // bytes of d (and m); their vector
  if (with_min) {
    std::memcpy(gv + 2 * j, blk, 2);
    std::memcpy(gv + 32 + 2 * j, blk + 2, 2);
  } else {
    std::memcpy(tile + 32 * g + 2 * j, blk, 2);
  }
  for (int64_t v = first; v < L.nv; ++v) {
    uint8_t* dst = gv + 64 * v + 4 * j;
    const uint8_t* src = blk + head + 4 * (v - first);
    if (five && v == first) {
      uint32_t qh;
      std::memcpy(&qh, src, 4);
      qh = q5_high_to_tile(qh);
      std::memcpy(dst, &qh, 4);
      continue;
    }
    std::memcpy(dst, src, 4);
    if (q8)
      for (int i = 0; i < 4; ++i) dst[i] ^= 0x80;
  }
}
void tile_to_block(const r16_layout& L, const uint8_t* tile, int64_t g, int64_t j, uint8_t* blk) {
  const bool q8 = L.type == dtype::Q8_0;
  const uint8_t* gv = tile + L.scale_bytes + g * L.nv * 64;
  if (L.type == dtype::Q6_K) {
    std::memcpy(blk + 208, gv + 2 * j, 2);
    for (int w = 0; w + 1 < L.nv; ++w) std::memcpy(blk + 4 * w, gv + 64 * q6k_vector_of_word(w) + 4 * j, 4);
    return;
  }
  if (L.type == dtype::Q4_K || L.type == dtype::Q5_K) {
    std::memcpy(blk, gv + 2 * j, 2);
    std::memcpy(blk + 2, gv + 32 + 2 * j, 2);
    for (int64_t v = 1; v < L.nv; ++v) std::memcpy(blk + 4 * v, gv + 64 * v + 4 * j, 4);
    return;
  }
  const bool with_min = L.type == dtype::Q4_1 || L.type == dtype::Q5_1;
  const bool five = L.type == dtype::Q5_0 || L.type == dtype::Q5_1;
  const int64_t head = with_min ? 4 : 2, first = with_min ? 1 : 0;
  if (with_min) {
    std::memcpy(blk, gv + 2 * j, 2);
    std::memcpy(blk + 2, gv + 32 + 2 * j, 2);
  } else {
    std::memcpy(blk, tile + 32 * g + 2 * j, 2);
  }
  for (int64_t v = first; v < L.nv; ++v) {
    uint8_t* dst = blk + head + 4 * (v - first);
    std::memcpy(dst, gv + 64 * v + 4 * j, 4);
    if (five && v == first) {
      uint32_t qh;
      std::memcpy(&qh, dst, 4);
      qh = q5_high_from_tile(qh);
      std::memcpy(dst, &qh, 4);
    } else if (q8) {
      for (int b = 0; b < 4; ++b) dst[b] ^= 0x80;
    }
  }
}

}  // namespace

bool r16_type(dtype t) {
  return t == dtype::Q4_0 || t == dtype::Q4_1 || t == dtype::Q5_0 || t == dtype::Q5_1 || t == dtype::Q8_0 ||
         t == dtype::Q4_K || t == dtype::Q5_K || t == dtype::Q6_K;
}

r16_layout r16_layout_of(dtype t, int64_t n, int64_t k) {
  AG_CHECK(r16_type(t), std::string("r16 layout: no layout for ") + dtype_name(t));
  const int64_t ge = int64_t(dtype_block_elems(t));
  AG_CHECK(n > 0 && k > 0 && k % ge == 0,
           "r16 layout: [n, k] must be positive with k a multiple of " + std::to_string(ge));
  r16_layout L;
  L.type = t;
  L.n = n;
  L.k = k;
  L.n_groups = k / ge;
  L.n_tiles = (n + k_r16_rows - 1) / k_r16_rows;
  switch (t) {
    case dtype::Q4_0: L.nv = 4; break;
    case dtype::Q4_1: case dtype::Q5_0: L.nv = 5; break;
    case dtype::Q5_1: L.nv = 6; break;
    case dtype::Q8_0: L.nv = 8; break;
    case dtype::Q4_K: L.nv = 36; break;
    case dtype::Q5_K: L.nv = 44; break;
    default: L.nv = 53; break;  // Q6_K
  }
  // Q4_0 / Q5_0 / Q8_0 keep their scales in the tile's scales area; the rest carry them in each group's vector 0.
  const bool scales_area = t == dtype::Q4_0 || t == dtype::Q5_0 || t == dtype::Q8_0;
  L.scale_bytes = scales_area ? (L.n_groups * 32 + 63) / 64 * 64 : 0;
  L.tile_bytes = L.scale_bytes + L.n_groups * L.nv * 64;
  return L;
}

tensor r16_pack(const tensor& w, thread_pool* pool, const repack_alloc& alloc) {
  AG_CHECK(w.n_dims() == 2, "r16_pack: the weight must be 2-D");
  const r16_layout L = r16_layout_of(w.type(), w.dim(0), w.dim(1));
  repack_memory given = alloc ? alloc(L.bytes()) : repack_memory{};
  std::shared_ptr<uint8_t> mem = given.mem ? given.mem : alloc_pages(L.bytes());
  auto packed_tensor = [&] {
    tensor packed = tensor::view(mem.get(), dtype::U8, {L.bytes()});
    packed.set_owner(std::shared_ptr<void>(mem, mem.get()));
    return packed;
  };
  if (given.mem && given.filled) return packed_tensor();
  uint8_t* out = mem.get();
  const int64_t bb = int64_t(dtype_block_bytes(L.type));
  const bool vector_pack = quant_isa_available(quant_isa::AVX512_VNNI) && !portable_kernels_forced();
  // The source read once, now, in big requests (a file mapping's pages would otherwise fault in one at a time).
  if (w.is_contiguous()) prefault_read(w.data(), w.n_bytes());
  const std::vector<uint8_t> zero_row(size_t(L.n_groups * bb), 0);  // the last tile's padding rows
  parallel_for(pool, L.n_tiles, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      uint8_t* tile = out + t * L.tile_bytes;
      const uint8_t* rows[k_r16_rows];
      for (int64_t j = 0; j < k_r16_rows; ++j) {
        const int64_t r = t * k_r16_rows + j;
        rows[j] = r < L.n ? w.row(r) : zero_row.data();
      }
      // alloc_pages' memory is zeroed: so is the padding after a tile's scales.
      if (vector_pack && r16_pack_tile_avx512(L, rows, tile)) continue;
      for (int64_t j = 0; j < k_r16_rows; ++j)
        for (int64_t g = 0; g < L.n_groups; ++g) block_to_tile(L, tile, g, j, rows[j] + g * bb);
    }
  });
  return packed_tensor();
}

void r16_unpack_rows(const r16_layout& L, const uint8_t* packed, int64_t r0, int64_t nr, uint8_t* dst,
                     int64_t dst_stride) {
  AG_CHECK(r0 >= 0 && nr >= 0 && r0 + nr <= L.n, "r16_unpack_rows: rows outside the weight");
  const int64_t bb = int64_t(dtype_block_bytes(L.type));
  for (int64_t i = 0; i < nr; ++i) {
    const int64_t r = r0 + i, t = r / k_r16_rows, j = r % k_r16_rows;
    uint8_t* row = dst + i * dst_stride;
    for (int64_t g = 0; g < L.n_groups; ++g) tile_to_block(L, packed + t * L.tile_bytes, g, j, row + g * bb);
  }
}

bool r16_decode_available() {
  const quant_isa isa = quant_isa_selected();
  return isa == quant_isa::AVX512_VNNI || isa == quant_isa::AVX512_GFNI;
}

bool r16_repack_wanted(bool releasable) {
  const char* env = std::getenv("AUTOGLM_CPU_REPACK");
  if (env && *env) {
    if (env_value_is_off(env)) return false;
    return r16_decode_available();
  }
  return releasable && r16_decode_available() && amx_bf16_usable();
}

tensor repack_weight_kernel(const kernel_context& kc, const tensor& w, bool releasable, const repack_alloc& alloc) {
  if (!r16_type(w.type()) || w.n_dims() != 2 || w.dim(1) % int64_t(dtype_block_elems(w.type())) != 0 ||
      !r16_repack_wanted(releasable))
    return {};
  return r16_pack(w, kc.pool, alloc);
}

}  // namespace autoglm::cpu
