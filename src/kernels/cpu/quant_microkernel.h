// kernels/cpu/quant_microkernel.h (internal): the quantized LINEAR micro-kernels, written once over a vector
// abstraction V that each ISA file (quant_isa_*.cpp) defines and then includes this header AFTER its
// `#pragma GCC target(...)`, so every instantiation is compiled for that ISA. Everything here is a template on V
// (V lives in the ISA file's anonymous namespace), so no two ISAs ever share an inline function.
//
// The arithmetic every path reproduces exactly (so all ISAs, decode and prefill give the same bits; see
// quant_linear.h). For output (x row i, W row n) and each group g of the row in order (a 32-block, or a 256
// super-block for the k-quants):
//   I_g = the exact integer dot product of the weight integers with the quantized x (Q8_0/I8: q; Q4_0: q - 8;
//         Q5_0: q - 16; Q4_1/Q5_1: q; k-quants: sum over sub-blocks of scale x (q . x), q unsigned);
//   acc = fma(float(I_g), s_g, acc),   s_g = d_w(g) * d_x(g) (I8: d_x(g));
//   k-quants only: O_g = exact sum of min x (sum of x) per sub-block (Q6_K: 32 x scale x sum of x per 16),
//   off = fma(float(O_g), t_g, off),   t_g = dmin_w(g) * d_x(g) (Q6_K: s_g);
//   Q4_1/Q5_1 (x ~ d q + m): O_g = -(sum of x), t_g = m_w(g) * d_x(g), so y = acc - off adds m times the x sum;
// then y = (acc - off) + bias (I8: fma(acc, row scale, bias)). Vector lanes hold W rows (8 per tile), so each
// output is one lane's chain and the float work per group is one FMA per 8 outputs.
//
// Decode (1-3 x rows) reads W straight from its blocks: each row's group gives a vector of partial sums over
// 4-byte groups, and reduce8 adds the 8 rows' vectors into one vector of per-row integers. Prefill first packs a
// tile of 8 W rows (pack_tile: per group, 8 vectors whose lane r holds 4 consecutive weight integers of row r,
// plus per-row scales), then each x row's 4 bytes are broadcast against it: no reductions at all. An ISA with 2 x 2
// integer matrix-multiply instructions (i8mm smmla) packs the tile as pairs of rows instead and supplies the
// group's integer sums itself (pair_tiles below); everything else, the float steps included, is shared.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>

#include "core/quant_blocks.h"
#include "kernels/cpu/quant_gemm.h"

namespace autoglm::cpu::qgemm {

// Bytes of W per group (a variable, not a function: nothing here may be code shared across ISA files).
template <wtype T>
inline constexpr int64_t group_bytes = T == wtype::I8 ? 32 : T == wtype::Q8_0 ? 34 : T == wtype::Q4_0 ? 18
                                       : T == wtype::Q4_1 ? 20 : T == wtype::Q5_0 ? 22 : T == wtype::Q5_1 ? 24
                                       : T == wtype::Q4_K ? 144 : T == wtype::Q5_K ? 176 : 210;
template <wtype T>
inline constexpr bool is_k = T == wtype::Q4_K || T == wtype::Q5_K || T == wtype::Q6_K;
// 32-element types whose weight integers are unsigned (nibbles, or nibbles with a fifth bit), taken by the
// unsigned-by-signed dots; the zero point they subtract (Q4_0 8, Q5_0 16) or an f16 min they add (Q4_1, Q5_1).
template <wtype T>
inline constexpr bool is_u32 = T == wtype::Q4_0 || T == wtype::Q4_1 || T == wtype::Q5_0 || T == wtype::Q5_1;
template <wtype T>
inline constexpr int zero_point = T == wtype::Q4_0 ? 8 : T == wtype::Q5_0 ? 16 : 0;
template <wtype T>
inline constexpr bool has_min = T == wtype::Q4_1 || T == wtype::Q5_1;

// A V for 2 x 2 matrix-multiply tiles (quant_isa_neon_arm_i8mm.cpp) defines, beside the usual members:
//   pair_rows(ints r[8]): r[j] = the 32 weight bytes of W row j (one 32-element vector of a group) -> the 256
//     bytes in its packed order (stored r[0] .. r[7], as the lane-per-row layout is);
//   group_ints<T, MR>(packed group, x rows' qs, g, ints I[MR]): I[i] lane r = the integer I_g of x row i and W
//     row r, exactly the integer the broadcast dots give (k-quants: with the sub-block scales, not the mins).
template <class V>
concept pair_tiles = requires { V::pair_tiles; };

// ---- weights of one group of one row --------------------------------------------------------------------------

// The 32 weight bytes of vector v (0 .. 7 for k-quants, 0 for the rest) of group g of a row, as the decode dots
// take them: Q8_0/I8 signed; Q4_0/Q4_1 unsigned nibbles, Q5_0/Q5_1 nibbles with the fifth bit (bit e of the
// block's 32-bit qh) as 16 (zero points are applied to the integer sum); k-quants unsigned.
template <class V, wtype T>
typename V::bytes weight_vector(const uint8_t* blk, int v) {
  if constexpr (T == wtype::I8) {
    return V::load(blk);
  } else if constexpr (T == wtype::Q8_0) {
    return V::load(blk + 2);
  } else if constexpr (T == wtype::Q4_0) {
    return V::nibbles16(blk + 2);
  } else if constexpr (T == wtype::Q4_1) {
    return V::nibbles16(blk + 4);
  } else if constexpr (T == wtype::Q5_0) {
    return V::or_(V::nibbles16(blk + 6), V::bits32(blk + 2, 0x10));
  } else if constexpr (T == wtype::Q5_1) {
    return V::or_(V::nibbles16(blk + 8), V::bits32(blk + 4, 0x10));
  } else if constexpr (T == wtype::Q4_K || T == wtype::Q5_K) {
    const int c = v / 2;  // 64 elements per 32 bytes of qs: low nibbles (sub-block 2c), then high (2c + 1)
    const typename V::bytes q = V::load(blk + (T == wtype::Q4_K ? 16 : 48) + 32 * c);
    typename V::bytes r = v % 2 ? V::nib_hi(q) : V::nib_lo(q);
    if constexpr (T == wtype::Q5_K) r = V::or_(r, V::field(V::load(blk + 16), v, 1, 4));  // fifth bit: bit v
    return r;
  } else {  // Q6_K: half h = v / 4, quarter q = v % 4 (see core/quant_blocks.h)
    const int h = v / 4, q = v % 4;
    const typename V::bytes ql = V::load(blk + 64 * h + 32 * (q % 2));
    const typename V::bytes lo = q < 2 ? V::nib_lo(ql) : V::nib_hi(ql);
    return V::or_(lo, V::field(V::load(blk + 128 + 32 * h), 2 * q, 3, 4));
  }
}

// Per-row header of a group: the f16 scale(s) and, for the k-quants, the small integer scales and mins.
template <wtype T>
struct group_head {
  uint16_t d = 0, dmin = 0;
  uint8_t sc[16] = {}, mn[8] = {};  // Q6_K: 16 int8 scales; Q4_K/Q5_K: 8 scales and 8 mins
  void read(const uint8_t* blk) {
    if constexpr (T == wtype::Q8_0 || T == wtype::Q4_0 || T == wtype::Q5_0) {
      std::memcpy(&d, blk, 2);
    } else if constexpr (has_min<T>) {  // Q4_1 / Q5_1: the min rides in dmin
      std::memcpy(&d, blk, 2);
      std::memcpy(&dmin, blk + 2, 2);
    } else if constexpr (T == wtype::Q6_K) {
      std::memcpy(&d, blk + 208, 2);
      std::memcpy(sc, blk + 192, 16);
    } else if constexpr (T == wtype::Q4_K || T == wtype::Q5_K) {
      std::memcpy(&d, blk, 2);
      std::memcpy(&dmin, blk + 2, 2);
      quant::k_scales_mins(blk + 4, sc, mn);
    }
  }
};

// ---- shared epilogue -------------------------------------------------------------------------------------------

// acc/off (8 lanes = W rows) of one x row to y; nr valid rows.
template <class V, wtype T>
void store_row(const tile& t, int i, typename V::floats acc, typename V::floats off) {
  alignas(32) float a[8], o[8];
  V::fstore(a, acc);
  V::fstore(o, off);
  float* y = t.y + i * t.y_stride;
  for (int j = 0; j < t.nr; ++j) {
    const float r = a[j] - o[j], b = t.bias ? t.bias[j] : 0.0f;
    // Explicit about fusing: left to the compiler, r * scale + bias is fused only where the target has FMA.
    if constexpr (T == wtype::I8) y[j] = std::fma(r, t.wscale[j], b);
    else y[j] = r + b;
  }
}

// s_g per lane: the rows' f16 scales times the x row's scale (I8: the x scale alone).
template <class V, wtype T>
typename V::floats group_scale(const typename V::floats& dw, float dx) {
  if constexpr (T == wtype::I8) return V::fbcast(dx);
  else return V::fmul_b(dw, dx);
}

// ---- decode: W read in place, MR (1 .. 3) x rows ---------------------------------------------------------------

// Decode reads a tile's 8 W rows side by side, each from its head: a look-ahead within each row leaves every row's
// first KiB to demand misses, and hardware prefetchers follow 8 slow interleaved streams poorly (a Q4_0 tile at k =
// 4096 streamed at ~6 GB/s on one Zen 4 core, ~13 GB/s with this). So each call fetches the NEXT tile's rows (the
// 8 W rows after its own) into L2, front to back, at the pace it reads its own, over `steps` calls of step(): the
// next call finds them in cache. Past a chunk's or the weight's end this only fetches bytes no one reads (prefetches
// never fault). A template on V like everything here (no code shared across ISA files).
template <class V>
struct next_tile_prefetch {
  const char* p;
  int64_t done = 0, per_step;
  next_tile_prefetch(const tile& t, int64_t steps)
      : p(reinterpret_cast<const char*>(t.w + k_tile_rows * t.w_stride)),
        per_step((k_tile_rows * t.w_stride + std::max<int64_t>(1, steps) - 1) / std::max<int64_t>(1, steps)) {}
  void step() {
    for (const int64_t end = done + per_step; done < end; done += 64) __builtin_prefetch(p + done, 0, 2);
  }
};

template <class V, wtype T, int MR>
void decode_kernel(const tile& t) {
  constexpr int64_t gb = group_bytes<T>;
  const uint8_t* w[8];
  for (int j = 0; j < 8; ++j) w[j] = t.w + std::min(j, t.nr - 1) * t.w_stride;
  typename V::floats acc[MR], off[MR];
  for (int i = 0; i < MR; ++i) acc[i] = off[i] = V::fzero();
  const int64_t ng = t.x.n_groups;
  next_tile_prefetch<V> pf(t, ng);
  for (int64_t g = 0; g < ng; ++g) {
    pf.step();
    const uint8_t* blk[8];
    for (int j = 0; j < 8; ++j) blk[j] = w[j] + g * gb;
    typename V::ints part[MR][8];
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < 8; ++j) part[i][j] = V::izero();
    alignas(8) uint8_t mn[8][8];  // Q4_K/Q5_K mins per row
    if constexpr (!is_k<T>) {
      typename V::bytes xv[MR];
      for (int i = 0; i < MR; ++i) xv[i] = V::load(t.x.qs(t.i0 + i) + 32 * g);
      for (int j = 0; j < 8; ++j) {
        const typename V::bytes wv = weight_vector<V, T>(blk[j], 0);
        for (int i = 0; i < MR; ++i) {
          if constexpr (is_u32<T>) part[i][j] = V::dot_u(part[i][j], wv, xv[i]);
          else part[i][j] = V::dot_ss(part[i][j], wv, xv[i]);
        }
      }
    } else {
      // Row by row: each row's 8 vectors against the group's x (from L1), so only MR accumulators are live.
      for (int j = 0; j < 8; ++j) {
        typename V::scale_src ss;
        if constexpr (T == wtype::Q6_K) {
          ss = V::scales_i8(reinterpret_cast<const int8_t*>(blk[j] + 192));
        } else {
          alignas(8) uint8_t sc[8];
          quant::k_scales_mins(blk[j] + 4, sc, mn[j]);
          ss = V::scales_u8_dup(sc);
        }
        for (int v = 0; v < 8; ++v) {
          const typename V::bytes wv = weight_vector<V, T>(blk[j], v);
          const typename V::scale s = V::scale_pick(ss, v);
          for (int i = 0; i < MR; ++i)
            part[i][j] = V::dot_us(part[i][j], wv, V::load(t.x.qs(t.i0 + i) + 256 * g + 32 * v), s);
        }
      }
    }
    const typename V::floats dw = V::half8_at(blk, T == wtype::Q6_K ? 208 : 0);
    for (int i = 0; i < MR; ++i) {
      const float dx = t.x.d(t.i0 + i)[g];
      typename V::ints I = V::reduce8(part[i]);
      if constexpr (zero_point<T> != 0) I = V::iadd(I, V::ibcast(-zero_point<T> * t.x.sum(t.i0 + i)[g]));
      const typename V::floats s = group_scale<V, T>(dw, dx);
      acc[i] = V::fmadd(I, s, acc[i]);
      if constexpr (has_min<T>)
        off[i] = V::fmadd(V::ibcast(-t.x.sum(t.i0 + i)[g]), V::fmul_b(V::half8_at(blk, 2), dx), off[i]);
      if constexpr (is_k<T>) {
        const int16_t* bs = t.x.bsum(t.i0 + i, g);
        alignas(32) int32_t o[8];
        for (int j = 0; j < 8; ++j)
          o[j] = T == wtype::Q6_K ? 32 * V::dot16_i8_i16(reinterpret_cast<const int8_t*>(blk[j] + 192), bs)
                                  : V::dot8_u8_i16(mn[j], bs + 16);
        const typename V::floats ts = T == wtype::Q6_K ? s : V::fmul_b(V::half8_at(blk, 2), dx);
        off[i] = V::fmadd(V::iload(o), ts, off[i]);
      }
    }
  }
  for (int i = 0; i < MR; ++i) store_row<V, T>(t, i, acc[i], off[i]);
}

// ---- prefill: a tile of 8 W rows packed once, then reused for every x row of the panel -------------------------

// Packed bytes per group: 32-element types: 8 vectors (lane r = 4 weights of row r) + 8 f16 scales + 8 f16 mins
// (Q4_1/Q5_1; padding otherwise); k-quants: 8 x 8 vectors + per sub-block scales (16 x 8 int32) + mins (8 x 8
// int32) + d, dmin (8 f16 each).
template <wtype T>
inline constexpr int64_t packed_group_bytes = is_k<T> ? 64 * 32 + 16 * 32 + 8 * 32 + 32 : 8 * 32 + 32;

// Packs W rows t.w .. (8, the last repeated past t.nr) into `out` (packed_group_bytes<T> per group). Weight
// integers are stored as V's broadcast dots take them: unsigned (Q4_0/Q4_1/Q5_0/Q5_1, k-quant quants, and Q8_0/I8
// + 128 when V::q8_bias is 128) or signed (Q8_0/I8 when it is 0); the integer sums are corrected exactly afterwards.
template <class V, wtype T>
void pack_tile(const tile& t, int64_t ng, uint8_t* out) {
  constexpr int64_t gb = group_bytes<T>;
  const uint8_t* w[8];
  for (int j = 0; j < 8; ++j) w[j] = t.w + std::min(j, t.nr - 1) * t.w_stride;
  for (int64_t g = 0; g < ng; ++g, out += packed_group_bytes<T>) {
    group_head<T> hd[8];
    for (int j = 0; j < 8; ++j) hd[j].read(w[j] + g * gb);
    constexpr int nv = is_k<T> ? 8 : 1;
    for (int v = 0; v < nv; ++v) {
      typename V::ints rows[8];
      for (int j = 0; j < 8; ++j) {
        typename V::bytes b = weight_vector<V, T>(w[j] + g * gb, v);
        if constexpr ((T == wtype::Q8_0 || T == wtype::I8) && V::q8_bias == 128) b = V::flip_sign(b);
        rows[j] = V::as_ints(b);
      }
      if constexpr (pair_tiles<V>) V::pair_rows(rows);
      else V::transpose8(rows);  // rows[k] lane r = bytes 4k .. 4k+3 of row r
      for (int k = 0; k < 8; ++k) V::istore(reinterpret_cast<int32_t*>(out + (8 * v + k) * 32), rows[k]);
    }
    uint16_t* tail = reinterpret_cast<uint16_t*>(out + nv * 8 * 32 + (is_k<T> ? 24 * 32 : 0));
    if constexpr (is_k<T>) {
      int32_t* sc = reinterpret_cast<int32_t*>(out + 64 * 32);  // [16][8]: scale of 16-element half h, row r
      int32_t* mn = sc + 16 * 8;                                 // [8][8]
      for (int h = 0; h < 16; ++h)
        for (int j = 0; j < 8; ++j)
          sc[8 * h + j] = T == wtype::Q6_K ? int(int8_t(hd[j].sc[h])) : int(hd[j].sc[h / 2]);
      for (int s = 0; s < 8; ++s)
        for (int j = 0; j < 8; ++j) mn[8 * s + j] = T == wtype::Q6_K ? 0 : int(hd[j].mn[s]);
    }
    if constexpr (is_k<T> || has_min<T>)
      for (int j = 0; j < 8; ++j) tail[8 + j] = hd[j].dmin;
    for (int j = 0; j < 8; ++j) tail[j] = hd[j].d;
  }
}

// A packed kernel's accumulators between blocks of groups: `state` holds 16 floats per x row (acc lanes, then off
// lanes). Before group g0 > 0 they come from it (from group 0: zeros); after the tile's last group the rows go to y,
// else back to `state`.
template <class V, int MR>
inline void load_partial(int64_t g0, const float* state, typename V::floats (&acc)[MR],
                         typename V::floats (&off)[MR]) {
  for (int i = 0; i < MR; ++i) {
    acc[i] = g0 ? V::fload(state + 16 * i) : V::fzero();
    off[i] = g0 ? V::fload(state + 16 * i + 8) : V::fzero();
  }
}
template <class V, wtype T, int MR>
inline void finish_partial(const tile& t, bool last_group, float* state, const typename V::floats (&acc)[MR],
                           const typename V::floats (&off)[MR]) {
  for (int i = 0; i < MR; ++i) {
    if (last_group) {
      store_row<V, T>(t, i, acc[i], off[i]);
    } else {
      V::fstore(state + 16 * i, acc[i]);
      V::fstore(state + 16 * i + 8, off[i]);
    }
  }
}

// MR x rows against groups [g0, g1) of a packed tile, carrying the accumulators through `state` (load_partial,
// finish_partial). Running a tile in blocks of groups keeps its packed bytes in L1 across the rows of the panel;
// the chains are the same.
template <class V, wtype T, int MR>
void packed_kernel(const tile& t, const uint8_t* packed, int64_t g0, int64_t g1, float* state) {
  typename V::floats acc[MR], off[MR];
  load_partial<V>(g0, state, acc, off);
  const int64_t ng = t.x.n_groups;
  const int8_t* xq[MR];
  for (int i = 0; i < MR; ++i) xq[i] = t.x.qs(t.i0 + i);
  packed += g0 * packed_group_bytes<T>;
  for (int64_t g = g0; g < g1; ++g, packed += packed_group_bytes<T>) {
    constexpr int nv = is_k<T> ? 8 : 1;
    const uint16_t* tail = reinterpret_cast<const uint16_t*>(packed + nv * 8 * 32 + (is_k<T> ? 24 * 32 : 0));
    const typename V::floats dw = V::half8(tail);
    // Two partial sums per x row (even and odd 4-byte groups): twice the independent dot-product chains, so the
    // products' latency does not limit their throughput. Integer sums: the split changes nothing.
    typename V::ints I[MR], J[MR];
    for (int i = 0; i < MR; ++i) I[i] = J[i] = V::izero();
    if constexpr (pair_tiles<V>) {
      V::template group_ints<T, MR>(packed, xq, g, I);
    } else if constexpr (!is_k<T>) {
      for (int k = 0; k < 8; k += 2) {
        const typename V::bytes p0 = V::load(packed + 32 * k), p1 = V::load(packed + 32 * k + 32);
        for (int i = 0; i < MR; ++i) {
          const int8_t* x4 = xq[i] + 32 * g + 4 * k;
          if constexpr (is_u32<T> || V::q8_bias == 128) {
            I[i] = V::dotb_u(I[i], p0, x4);
            J[i] = V::dotb_u(J[i], p1, x4 + 4);
          } else {
            I[i] = V::dotb_s(I[i], p0, x4);
            J[i] = V::dotb_s(J[i], p1, x4 + 4);
          }
        }
      }
      for (int i = 0; i < MR; ++i) I[i] = V::iadd(I[i], J[i]);
    } else {
      // Runs of elements sharing one integer scale per row: Q6_K 16 (4 vectors of 4-byte groups), else 32 (8).
      const int32_t* sc = reinterpret_cast<const int32_t*>(packed + 64 * 32);
      constexpr int n_runs = T == wtype::Q6_K ? 16 : 8, per_run = 64 / n_runs;  // of the 64 4-byte groups
      for (int h = 0; h < n_runs; ++h) {
        typename V::ints D[MR], E[MR];
        for (int i = 0; i < MR; ++i) D[i] = E[i] = V::izero();
        for (int k = 0; k < per_run; k += 2) {
          const int e = h * per_run + k;  // 4-byte group of the super-block: vector e / 8, group e % 8
          const typename V::bytes p0 = V::load(packed + e * 32), p1 = V::load(packed + e * 32 + 32);
          for (int i = 0; i < MR; ++i) {
            D[i] = V::dotb_u(D[i], p0, xq[i] + 256 * g + 4 * e);
            E[i] = V::dotb_u(E[i], p1, xq[i] + 256 * g + 4 * e + 4);
          }
        }
        const typename V::ints s = V::iload(sc + 8 * (T == wtype::Q6_K ? h : 2 * h));
        for (int i = 0; i < MR; ++i) I[i] = V::iadd(I[i], V::imul(V::iadd(D[i], E[i]), s));
      }
    }
    for (int i = 0; i < MR; ++i) {
      const float dx = t.x.d(t.i0 + i)[g];
      if constexpr (zero_point<T> != 0) I[i] = V::iadd(I[i], V::ibcast(-zero_point<T> * t.x.sum(t.i0 + i)[g]));
      if constexpr ((T == wtype::Q8_0 || T == wtype::I8) && V::q8_bias == 128)
        I[i] = V::iadd(I[i], V::ibcast(-128 * t.x.sum(t.i0 + i)[g]));
      const typename V::floats s = group_scale<V, T>(dw, dx);
      acc[i] = V::fmadd(I[i], s, acc[i]);
      if constexpr (has_min<T>)
        off[i] = V::fmadd(V::ibcast(-t.x.sum(t.i0 + i)[g]), V::fmul_b(V::half8(tail + 8), dx), off[i]);
      if constexpr (is_k<T>) {
        const int16_t* bs = t.x.bsum(t.i0 + i, g);
        const int32_t* sc = reinterpret_cast<const int32_t*>(packed + 64 * 32);
        typename V::ints O = V::izero();
        if constexpr (T == wtype::Q6_K) {
          for (int h = 0; h < 16; ++h) O = V::iadd(O, V::imul(V::iload(sc + 8 * h), V::ibcast(32 * bs[h])));
        } else {
          const int32_t* mn = sc + 16 * 8;
          for (int s8 = 0; s8 < 8; ++s8) O = V::iadd(O, V::imul(V::iload(mn + 8 * s8), V::ibcast(bs[16 + s8])));
        }
        const typename V::floats ts = T == wtype::Q6_K ? s : V::fmul_b(V::half8(tail + 8), dx);
        off[i] = V::fmadd(O, ts, off[i]);
      }
    }
  }
  finish_partial<V, T>(t, g1 == ng, state, acc, off);
}

// ---- activations ------------------------------------------------------------------------------------------

// One row of x to its quantized form (the rule in quant_linear.h; xq_view in quant_gemm.h for the layout): per
// group, amax and the two scales in scalar float, then 32 values at a time multiplied, clamped to +-127 and
// rounded half to even (V's conversion), and their sums per 16. The same integers on every ISA.
template <class V>
void quantize_row(const float* x, int64_t k, int64_t ge, uint8_t* out) {
  const int64_t ng = k / ge;
  int8_t* qs = reinterpret_cast<int8_t*>(out);
  float* d = reinterpret_cast<float*>(out + k);
  int32_t* sum = reinterpret_cast<int32_t*>(d + ng);
  int16_t* bsum = reinterpret_cast<int16_t*>(d + ng);
  for (int64_t g = 0; g < ng; ++g) {
    const float* xg = x + g * ge;
    typename V::floats m = V::fzero();
    for (int64_t e = 0; e < ge; e += 8) m = V::fmaxabs(m, V::fload(xg + e));
    const float amax = V::fhmax(m);
    d[g] = amax / 127.0f;
    const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
    int16_t* bs = bsum + 24 * g;
    int total = 0;
    for (int64_t v = 0; v < ge / 32; ++v) {
      const typename V::bytes q = V::quant32(xg + 32 * v, id);
      V::store(qs + g * ge + 32 * v, q);
      int lo, hi;
      V::sums16(q, lo, hi);
      total += lo + hi;
      if (ge == 256) {
        bs[2 * v] = int16_t(lo);
        bs[2 * v + 1] = int16_t(hi);
        bs[16 + v] = int16_t(lo + hi);
      }
    }
    if (ge == 32) sum[g] = total;
  }
}

// ---- tables ------------------------------------------------------------------------------------------------

template <class V, wtype T, int MR>
void packed_entry(const tile& t, const uint8_t* packed, int64_t g0, int64_t g1, float* state) {
  packed_kernel<V, T, MR>(t, packed, g0, g1, state);
}

template <class V, wtype T>
void pack_entry(const tile& t, int64_t ng, uint8_t* out) {
  pack_tile<V, T>(t, ng, out);
}

template <class V, wtype T, int... MRs>
void fill_packed(isa_table& tab, std::integer_sequence<int, MRs...>) {
  ((tab.pk[size_t(T)][MRs] = &packed_entry<V, T, MRs + 1>), ...);
}

// The prefill entries of one weight type: its packer and the packed kernel for 1 .. k_max_mr x rows.
template <class V, wtype T>
void fill_prefill(isa_table& tab) {
  tab.pack[size_t(T)] = &pack_entry<V, T>;
  tab.packed_bytes[size_t(T)] = packed_group_bytes<T>;
  fill_packed<V, T>(tab, std::make_integer_sequence<int, k_max_mr>{});
}

template <class V, wtype T>
void fill_type(isa_table& tab) {
  tab.dk[size_t(T)][0] = &decode_kernel<V, T, 1>;
  tab.dk[size_t(T)][1] = &decode_kernel<V, T, 2>;
  tab.dk[size_t(T)][2] = &decode_kernel<V, T, 3>;
  fill_prefill<V, T>(tab);
}

// The table of one ISA: every weight type, decode for 1 .. 3 rows and the packed kernel for 1 .. k_max_mr.
template <class V>
isa_table make_table(const char* name, int prefill_mr) {
  isa_table tab{};
  tab.name = name;
  for (int& mr : tab.prefill_mr) mr = prefill_mr;
  tab.quantize = &quantize_row<V>;
  fill_type<V, wtype::I8>(tab);
  fill_type<V, wtype::Q8_0>(tab);
  fill_type<V, wtype::Q4_0>(tab);
  fill_type<V, wtype::Q4_K>(tab);
  fill_type<V, wtype::Q5_K>(tab);
  fill_type<V, wtype::Q6_K>(tab);
  fill_type<V, wtype::Q4_1>(tab);
  fill_type<V, wtype::Q5_0>(tab);
  fill_type<V, wtype::Q5_1>(tab);
  return tab;
}

}  // namespace autoglm::cpu::qgemm
