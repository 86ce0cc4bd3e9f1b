// kernels/cpu/quant_microkernel.h (internal): the quantized LINEAR micro-kernel, written once over a vector
// abstraction V that each ISA file (quant_isa_*.cpp) defines and then includes this header AFTER its
// `#pragma GCC target(...)`, so every instantiation is compiled for that ISA. Everything here is a template on V
// (V lives in the ISA file's anonymous namespace), so no two ISAs ever share an inline function.
//
// The arithmetic every V reproduces exactly (so all ISAs give the same bits, see quant_linear.h): a 32-byte
// vector of weights w (unsigned 0..63 or signed int8) against 32 int8 activations x gives 8 int32 lanes, lane l =
// sum of w[e] * x[e] over e = 4l .. 4l+3, times an integer scale per 16-byte half for the k-quants (exact
// integers); per group (32-block or 256-super-block) the lanes are converted to float and accumulated with one
// fused multiply-add by the float scale (weight scale x activation scale); offsets (Q4_0's 8, the k-quants' mins)
// go to one scalar fused accumulator; the result is the canonical 8-lane sum ((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7))
// minus the offsets (I8: times the row scale, fused with the bias; others: plus the bias).
//
// V provides: types bytes (32 x int8), ints (8 x int32), floats (8 x float), scale; load(p) 32 bytes;
// nibbles16(p) 16 bytes -> [low nibbles, high nibbles]; nib_lo / nib_hi; field(v, shr, mask, shl) =
// ((v >> shr) & mask) << shl per byte; or_; izero; fzero; make_scale(lo, hi) (lanes 0-3 by lo, 4-7 by hi);
// dot_u (unsigned w), dot_us (unsigned w, scaled), dot_ss (signed w); fmadd(ints, s, floats); hsum; half(p) f16.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "core/quant_blocks.h"
#include "kernels/cpu/quant_gemm.h"

namespace autoglm::cpu::qgemm {

// Bytes of W per group (a variable, not a function: nothing here may be code shared across ISA files).
template <wtype T>
inline constexpr int64_t group_bytes = T == wtype::I8 ? 32 : T == wtype::Q8_0 ? 34 : T == wtype::Q4_0 ? 18
                                       : T == wtype::Q4_K ? 144 : T == wtype::Q5_K ? 176 : 210;

// y[i][j] for MR x rows and NR W rows (see quant_gemm.h: tile).
template <class V, wtype T, int MR, int NR>
void microkernel(const tile& t) {
  constexpr int64_t gb = group_bytes<T>;
  const uint8_t* w[NR];
  for (int j = 0; j < NR; ++j) w[j] = t.w + std::min(j, t.nr - 1) * t.w_stride;
  const int8_t* xq[MR];
  const float* xd[MR];
  for (int i = 0; i < MR; ++i) {
    xq[i] = t.x.qs(t.i0 + i);
    xd[i] = t.x.d(t.i0 + i);
  }
  typename V::floats acc[MR][NR];
  float off[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) {
      acc[i][j] = V::fzero();
      off[i][j] = 0.0f;
    }
  const int64_t ng = t.x.n_groups;
  for (int64_t g = 0; g < ng; ++g) {
    if constexpr (T == wtype::Q8_0 || T == wtype::I8) {
      typename V::bytes wv[NR];
      float dw[NR];
      for (int j = 0; j < NR; ++j) {
        const uint8_t* b = w[j] + g * gb;
        if constexpr (T == wtype::Q8_0) {
          dw[j] = V::half(b);
          wv[j] = V::load(b + 2);
        } else {
          dw[j] = 1.0f;
          wv[j] = V::load(b);
        }
      }
      for (int i = 0; i < MR; ++i) {
        const typename V::bytes xv = V::load(xq[i] + 32 * g);
        const float dx = xd[i][g];
        for (int j = 0; j < NR; ++j) {
          const float s = T == wtype::I8 ? dx : dw[j] * dx;
          acc[i][j] = V::fmadd(V::dot_ss(V::izero(), wv[j], xv), s, acc[i][j]);
        }
      }
    } else if constexpr (T == wtype::Q4_0) {
      typename V::bytes wv[NR];
      float dw[NR];
      for (int j = 0; j < NR; ++j) {
        const uint8_t* b = w[j] + g * gb;
        dw[j] = V::half(b);
        wv[j] = V::nibbles16(b + 2);
      }
      for (int i = 0; i < MR; ++i) {
        const typename V::bytes xv = V::load(xq[i] + 32 * g);
        const float dx = xd[i][g];
        const float xs8 = float(8 * t.x.sum(t.i0 + i)[g]);  // the nibbles' offset of 8
        for (int j = 0; j < NR; ++j) {
          const float s = dw[j] * dx;
          acc[i][j] = V::fmadd(V::dot_u(V::izero(), wv[j], xv), s, acc[i][j]);
          off[i][j] = std::fma(xs8, s, off[i][j]);
        }
      }
    } else {  // k-quants: integer lanes over the whole super-block, one float step per group
      typename V::ints iacc[MR][NR];
      for (int i = 0; i < MR; ++i)
        for (int j = 0; j < NR; ++j) iacc[i][j] = V::izero();
      float dw[NR], dmw[NR];
      int sc[NR][16], mn[NR][8];
      const uint8_t* b[NR];
      for (int j = 0; j < NR; ++j) {
        b[j] = w[j] + g * gb;
        if constexpr (T == wtype::Q6_K) {
          dw[j] = V::half(b[j] + 208);
          dmw[j] = 0.0f;
          for (int k = 0; k < 16; ++k) sc[j][k] = int(reinterpret_cast<const int8_t*>(b[j] + 192)[k]);
        } else {
          dw[j] = V::half(b[j]);
          dmw[j] = V::half(b[j] + 2);
          for (int k = 0; k < 8; ++k) {
            uint8_t s, m;
            quant::k_scale_min(b[j] + 4, k, s, m);
            sc[j][k] = s;
            mn[j][k] = m;
          }
        }
      }
      const int8_t* xg[MR];
      for (int i = 0; i < MR; ++i) xg[i] = xq[i] + 256 * g;
      if constexpr (T == wtype::Q4_K || T == wtype::Q5_K) {
        constexpr int64_t qs_at = T == wtype::Q4_K ? 16 : 48;
        for (int c = 0; c < 4; ++c)  // 64 elements: sub-blocks 2c (low nibbles) and 2c+1 (high)
          for (int j = 0; j < NR; ++j) {
            const typename V::bytes q = V::load(b[j] + qs_at + 32 * c);
            typename V::bytes lo = V::nib_lo(q), hi = V::nib_hi(q);
            if constexpr (T == wtype::Q5_K) {
              const typename V::bytes qh = V::load(b[j] + 16);
              lo = V::or_(lo, V::field(qh, 2 * c, 1, 4));
              hi = V::or_(hi, V::field(qh, 2 * c + 1, 1, 4));
            }
            const typename V::scale sl = V::make_scale(sc[j][2 * c], sc[j][2 * c]);
            const typename V::scale sh = V::make_scale(sc[j][2 * c + 1], sc[j][2 * c + 1]);
            for (int i = 0; i < MR; ++i) {
              iacc[i][j] = V::dot_us(iacc[i][j], lo, V::load(xg[i] + 64 * c), sl);
              iacc[i][j] = V::dot_us(iacc[i][j], hi, V::load(xg[i] + 64 * c + 32), sh);
            }
          }
      } else {  // Q6_K: two halves of 128, each 4 vectors of 32 (2 sub-blocks of 16 each)
        for (int h = 0; h < 2; ++h)
          for (int j = 0; j < NR; ++j) {
            const typename V::bytes ql0 = V::load(b[j] + 64 * h), ql1 = V::load(b[j] + 64 * h + 32);
            const typename V::bytes qh = V::load(b[j] + 128 + 32 * h);
            const typename V::bytes v[4] = {
                V::or_(V::nib_lo(ql0), V::field(qh, 0, 3, 4)), V::or_(V::nib_lo(ql1), V::field(qh, 2, 3, 4)),
                V::or_(V::nib_hi(ql0), V::field(qh, 4, 3, 4)), V::or_(V::nib_hi(ql1), V::field(qh, 6, 3, 4))};
            for (int q = 0; q < 4; ++q) {
              const typename V::scale s = V::make_scale(sc[j][8 * h + 2 * q], sc[j][8 * h + 2 * q + 1]);
              for (int i = 0; i < MR; ++i)
                iacc[i][j] = V::dot_us(iacc[i][j], v[q], V::load(xg[i] + 128 * h + 32 * q), s);
            }
          }
      }
      for (int i = 0; i < MR; ++i) {
        const float dx = xd[i][g];
        const int16_t* bs = t.x.bsum(t.i0 + i) + 16 * g;
        for (int j = 0; j < NR; ++j) {
          const float s = dw[j] * dx;
          acc[i][j] = V::fmadd(iacc[i][j], s, acc[i][j]);
          int imin = 0;
          if constexpr (T == wtype::Q6_K) {
            for (int k = 0; k < 16; ++k) imin += sc[j][k] * bs[k];
            off[i][j] = std::fma(float(32 * imin), s, off[i][j]);  // quants are stored + 32
          } else {
            for (int k = 0; k < 8; ++k) imin += mn[j][k] * (bs[2 * k] + bs[2 * k + 1]);
            off[i][j] = std::fma(float(imin), dmw[j] * dx, off[i][j]);
          }
        }
      }
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < t.nr; ++j) {
      // Explicit about fusing: left to the compiler, r * scale + bias is fused only where the target has FMA.
      const float r = V::hsum(acc[i][j]) - off[i][j], b = t.bias ? t.bias[j] : 0.0f;
      if constexpr (T == wtype::I8) t.y[i * t.y_stride + j] = std::fma(r, t.wscale[j], b);
      else t.y[i * t.y_stride + j] = r + b;
    }
}

template <class V, wtype T, int NR>
void fill_row(isa_table& tab) {
  tab.mk[size_t(T)][0] = &microkernel<V, T, 1, NR>;
  tab.mk[size_t(T)][1] = &microkernel<V, T, 2, NR>;
  tab.mk[size_t(T)][2] = &microkernel<V, T, 3, NR>;
  tab.mk[size_t(T)][3] = &microkernel<V, T, 4, NR>;
}

// The table of one ISA: every weight type x MR = 1..4 at NR W rows per tile.
template <class V, int NR>
isa_table make_table(const char* name, int prefill_mr) {
  isa_table tab{name, NR, prefill_mr, {}};
  fill_row<V, wtype::I8, NR>(tab);
  fill_row<V, wtype::Q8_0, NR>(tab);
  fill_row<V, wtype::Q4_0, NR>(tab);
  fill_row<V, wtype::Q4_K, NR>(tab);
  fill_row<V, wtype::Q5_K, NR>(tab);
  fill_row<V, wtype::Q6_K, NR>(tab);
  return tab;
}

}  // namespace autoglm::cpu::qgemm
