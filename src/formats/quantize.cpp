// formats/quantize.cpp: the f32 -> block quantizers (the scale searches are described in quantize.h).
#include "formats/quantize.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/quant_blocks.h"

namespace autoglm::quant {

namespace {

// Round to nearest, ties to even, without a libm call (nearbyint is one on baseline x86-64, and the searches round
// about a hundred values per weight): adding and subtracting 1.5 * 2^23 leaves the integer part, |v| < 2^22.
inline int round_even(float v) {
  v = std::min(4.0e6f, std::max(-4.0e6f, v));
  return int((v + 12582912.0f) - 12582912.0f);
}
// Round to nearest, ties away from zero (what roundf does, ggml's Q8_0 rounding), also without libm.
inline int round_away(float v) {
  int i = int(v);  // truncates
  const float f = v - float(i);  // exact for |v| < 2^23
  if (f >= 0.5f) ++i;
  else if (f <= -0.5f) --i;
  return i;
}
inline int clampi(int v, int lo, int hi) { return std::min(hi, std::max(lo, v)); }
inline float f16_round(float v) { return f16_to_f32(f32_to_f16(v)); }

// ---- fits ---------------------------------------------------------------------------------------------------
// Every candidate rounds a block once and keeps only its moments: the least-squares scale (and min) of that
// rounding and its squared error follow in closed form, so each costs one pass over the block. The passes work in
// 8 lanes so the compiler vectorizes them (the searches round about a hundred values per weight).

struct block_sums {  // of x, fixed per block
  int n = 0;
  double sx = 0, sxx = 0;
};
struct moments {  // of one rounding q
  double sq = 0, sqq = 0, sxq = 0;
};

block_sums sums_of(const float* x, int n) {
  block_sums b;
  b.n = n;
  for (int i = 0; i < n; ++i) {
    b.sx += x[i];
    b.sxx += double(x[i]) * x[i];
  }
  return b;
}

// q[i] = round(clamp((x[i] + shift) * mul, lo, hi)) (ties to even; no libm call) and its moments; n % 8 == 0.
moments round_block(const float* x, int n, float shift, float mul, int lo, int hi, int* q) {
  float s1[8] = {}, s2[8] = {}, s3[8] = {};
  const float flo = float(lo), fhi = float(hi);
  for (int i = 0; i < n; i += 8)
    for (int l = 0; l < 8; ++l) {
      const float v = std::min(fhi, std::max(flo, (x[i + l] + shift) * mul));
      const float r = (v + 12582912.0f) - 12582912.0f;  // 1.5 * 2^23: leaves v rounded to an integer
      q[i + l] = int(r);
      s1[l] += r;
      s2[l] += r * r;
      s3[l] += x[i + l] * r;
    }
  moments m;
  for (int l = 0; l < 8; ++l) m.sq += s1[l], m.sqq += s2[l], m.sxq += s3[l];
  return m;
}

// x ~ a * q: squared error for a given a.
double error_symmetric(const block_sums& b, const moments& m, double a) { return b.sxx - 2 * a * m.sxq + a * a * m.sqq; }

// x ~ a * q - c: squared error for given a, c.
double error_affine(const block_sums& b, const moments& m, double a, double c) {
  return a * a * m.sqq + b.n * c * c + b.sxx - 2 * a * c * m.sq - 2 * a * m.sxq + 2 * c * b.sx;
}

// Symmetric (Q4_0 blocks, Q6_K sub-blocks): x ~ a * q, q in [-half, half - 1]. Returns the least-squares scale of
// the best candidate (see quantize.h); 0 for an all-zero block.
float fit_symmetric(const float* x, int n, int half) {
  float amax = 0;
  for (int i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  if (amax == 0) return 0;
  const block_sums b = sums_of(x, n);
  double best_err = b.sxx, best_a = 0;
  int q[32];
  for (int sign : {-1, 1})
    for (int t = -10; t <= 10; ++t) {
      const float is = float(sign) * (float(half) + 0.1f * float(t)) / amax;
      const moments m = round_block(x, n, 0.0f, is, -half, half - 1, q);
      if (m.sqq <= 0) continue;
      const double a = m.sxq / m.sqq, err = error_symmetric(b, m, a);
      if (err < best_err) best_err = err, best_a = a;
    }
  return float(best_a);
}

// q for a given scale a (the decoder's values a * q), returning the squared error.
double round_symmetric(const float* x, int n, int half, float a, int* q) {
  const block_sums b = sums_of(x, n);
  if (a == 0) {
    std::fill_n(q, n, 0);
    return b.sxx;
  }
  return error_symmetric(b, round_block(x, n, 0.0f, 1.0f / a, -half, half - 1, q), a);
}

// Asymmetric (Q4_K / Q5_K sub-blocks): x ~ a * q - b, q in [0, nmax], a > 0, b >= 0.
struct affine {
  float a = 0, b = 0;
};

// Least-squares (a, b) for the moments of a fixed q; false when q is constant. free_min: b may take either sign
// (Q4_1 / Q5_1 add an f16 min of any sign); else it is clamped to b >= 0 (the k-quants subtract a 6-bit min).
bool fit_affine(const block_sums& s, const moments& m, affine& f, double& err, bool free_min) {
  const double det = s.n * m.sqq - m.sq * m.sq;
  if (det <= 0) return false;
  double a = (s.n * m.sxq - m.sq * s.sx) / det, c = (m.sq * m.sxq - s.sx * m.sqq) / det;  // x ~ a q - c
  if (c < 0 && !free_min) {  // the format only subtracts a min: refit the scale alone
    c = 0;
    a = m.sxq / m.sqq;
  }
  if (a <= 0) return false;
  f.a = float(a);
  f.b = float(c);
  err = error_affine(s, m, a, c);
  return true;
}

affine fit_asymmetric(const float* x, int n, int nmax, bool free_min = false) {
  float mn = x[0], mx = x[0];
  for (int i = 1; i < n; ++i) {
    mn = std::min(mn, x[i]);
    mx = std::max(mx, x[i]);
  }
  const float lo = free_min ? mn : std::min(mn, 0.0f);
  affine best;
  best.b = -lo;  // a constant block (or all zero): the min alone
  if (mx == lo) return best;
  const block_sums s = sums_of(x, n);
  double best_err = error_affine(s, moments{}, 0.0, best.b);
  int q[32];
  for (int t = -10; t <= 10; ++t) {
    affine f;
    double err;
    if (fit_affine(s, round_block(x, n, -lo, (float(nmax) + 0.1f * float(t)) / (mx - lo), 0, nmax, q), f, err,
                   free_min) &&
        err < best_err)
      best_err = err, best = f;
  }
  for (int iter = 0; iter < 2 && best.a > 0; ++iter) {
    affine f;
    double err;
    if (!fit_affine(s, round_block(x, n, best.b, 1.0f / best.a, 0, nmax, q), f, err, free_min) || !(err < best_err))
      break;
    best_err = err;
    best = f;
  }
  return best;
}

// ---- block quantizers ---------------------------------------------------------------------------------------

void quantize_q4_0(const float* x, block_q4_0* y, int64_t nb) {
  int q[32];
  for (int64_t i = 0; i < nb; ++i, x += qk_0) {
    const float d = f16_round(fit_symmetric(x, 32, 8));
    round_symmetric(x, 32, 8, d, q);
    y[i].d = f32_to_f16(d);
    for (int e = 0; e < 16; ++e) y[i].qs[e] = uint8_t((q[e] + 8) | ((q[e + 16] + 8) << 4));
  }
}

// Q5_0: as Q4_0 on 5 bits (q in [-16, 15]); the fifth bit of element e is bit e of qh.
void quantize_q5_0(const float* x, block_q5_0* y, int64_t nb) {
  int q[32];
  for (int64_t i = 0; i < nb; ++i, x += qk_0) {
    const float d = f16_round(fit_symmetric(x, 32, 16));
    round_symmetric(x, 32, 16, d, q);
    y[i].d = f32_to_f16(d);
    uint32_t qh = 0;
    for (int e = 0; e < 32; ++e) {
      q[e] += 16;
      qh |= uint32_t(q[e] >> 4) << e;
    }
    for (int e = 0; e < 16; ++e) y[i].qs[e] = uint8_t((q[e] & 0x0f) | ((q[e + 16] & 0x0f) << 4));
    std::memcpy(y[i].qh, &qh, 4);
  }
}

// Q4_1 / Q5_1 (x ~ d q + m, q in [0, nmax]): the affine search with a free min, both rounded to f16, then q
// rounded again against the values the decoder computes. Writes d, m and the 32 quants.
void quantize_affine_32(const float* x, int nmax, uint16_t& d_out, uint16_t& m_out, int* q) {
  const affine f = fit_asymmetric(x, 32, nmax, /*free_min=*/true);
  const float d = f16_round(f.a), m = f16_round(-f.b);
  d_out = f32_to_f16(d);
  m_out = f32_to_f16(m);
  if (d == 0) std::fill_n(q, 32, 0);
  else round_block(x, 32, -m, 1.0f / d, 0, nmax, q);
}

void quantize_q4_1(const float* x, block_q4_1* y, int64_t nb) {
  int q[32];
  for (int64_t i = 0; i < nb; ++i, x += qk_0) {
    quantize_affine_32(x, 15, y[i].d, y[i].m, q);
    for (int e = 0; e < 16; ++e) y[i].qs[e] = uint8_t(q[e] | (q[e + 16] << 4));
  }
}

void quantize_q5_1(const float* x, block_q5_1* y, int64_t nb) {
  int q[32];
  for (int64_t i = 0; i < nb; ++i, x += qk_0) {
    quantize_affine_32(x, 31, y[i].d, y[i].m, q);
    uint32_t qh = 0;
    for (int e = 0; e < 32; ++e) qh |= uint32_t(q[e] >> 4) << e;
    for (int e = 0; e < 16; ++e) y[i].qs[e] = uint8_t((q[e] & 0x0f) | ((q[e + 16] & 0x0f) << 4));
    std::memcpy(y[i].qh, &qh, 4);
  }
}

// Scales, mins and quants (0..nmax) of one Q4_K/Q5_K super-block: 6-bit scales and mins under f16 super-scales,
// each sub-block choosing among its rounded (scale, min) and their neighbours.
void quantize_k_affine(const float* x, int nmax, uint16_t& d_out, uint16_t& dmin_out, uint8_t* scales, int* L) {
  affine f[8];
  float max_a = 0, max_b = 0;
  for (int j = 0; j < 8; ++j) {
    f[j] = fit_asymmetric(x + 32 * j, 32, nmax);
    max_a = std::max(max_a, f[j].a);
    max_b = std::max(max_b, f[j].b);
  }
  d_out = f32_to_f16(max_a / 63.0f);
  dmin_out = f32_to_f16(max_b / 63.0f);
  const float d = f16_to_f32(d_out), dmin = f16_to_f32(dmin_out);
  uint8_t sc[8], mn[8];
  for (int j = 0; j < 8; ++j) {
    const float* xj = x + 32 * j;
    const block_sums sj = sums_of(xj, 32);
    const int s0 = d > 0 ? clampi(round_even(f[j].a / d), 0, 63) : 0;
    const int m0 = dmin > 0 ? clampi(round_even(f[j].b / dmin), 0, 63) : 0;
    double best = -1;
    int q[32];
    for (int s = std::max(0, s0 - 1); s <= std::min(63, s0 + 1); ++s)
      for (int m = std::max(0, m0 - 1); m <= std::min(63, m0 + 1); ++m) {
        const float a = d * float(s), b = dmin * float(m);  // what the decoder multiplies by
        double err;
        if (a == 0) {
          std::fill_n(q, 32, 0);
          err = error_affine(sj, moments{}, 0.0, b);
        } else {
          err = error_affine(sj, round_block(xj, 32, b, 1.0f / a, 0, nmax, q), a, b);
        }
        if (best < 0 || err < best) {
          best = err;
          sc[j] = uint8_t(s);
          mn[j] = uint8_t(m);
          std::copy_n(q, 32, L + 32 * j);
        }
      }
  }
  k_pack_scale_min(scales, sc, mn);
}

void quantize_q4_k(const float* x, block_q4_k* y, int64_t nb) {
  int L[256];
  for (int64_t i = 0; i < nb; ++i, x += qk_k) {
    quantize_k_affine(x, 15, y[i].d, y[i].dmin, y[i].scales, L);
    for (int c = 0; c < 4; ++c)
      for (int l = 0; l < 32; ++l) y[i].qs[32 * c + l] = uint8_t(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
  }
}

void quantize_q5_k(const float* x, block_q5_k* y, int64_t nb) {
  int L[256];
  for (int64_t i = 0; i < nb; ++i, x += qk_k) {
    quantize_k_affine(x, 31, y[i].d, y[i].dmin, y[i].scales, L);
    std::memset(y[i].qh, 0, sizeof y[i].qh);
    for (int c = 0; c < 4; ++c)
      for (int l = 0; l < 32; ++l) {
        const int lo = L[64 * c + l], hi = L[64 * c + 32 + l];
        y[i].qs[32 * c + l] = uint8_t((lo & 0x0f) | ((hi & 0x0f) << 4));
        y[i].qh[l] |= uint8_t(((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
      }
  }
}

void quantize_q6_k(const float* x, block_q6_k* y, int64_t nb) {
  int L[256];
  for (int64_t i = 0; i < nb; ++i, x += qk_k) {
    float a[16], max_abs = 0;
    for (int j = 0; j < 16; ++j) {
      a[j] = fit_symmetric(x + 16 * j, 16, 32);
      max_abs = std::max(max_abs, std::fabs(a[j]));
    }
    y[i].d = f32_to_f16(max_abs / 127.0f);
    const float d = f16_to_f32(y[i].d);
    for (int j = 0; j < 16; ++j) {
      const float* xj = x + 16 * j;
      const int s0 = d > 0 ? clampi(round_even(a[j] / d), -128, 127) : 0;
      double best = -1;
      int q[16];
      for (int s = std::max(-128, s0 - 1); s <= std::min(127, s0 + 1); ++s) {
        const double err = round_symmetric(xj, 16, 32, d * float(s), q);
        if (best < 0 || err < best) {
          best = err;
          y[i].scales[j] = int8_t(s);
          for (int e = 0; e < 16; ++e) L[16 * j + e] = q[e] + 32;
        }
      }
    }
    for (int h = 0; h < 2; ++h) {
      const int* Lh = L + 128 * h;
      for (int l = 0; l < 32; ++l) {
        y[i].ql[64 * h + l] = uint8_t((Lh[l] & 0x0f) | ((Lh[l + 64] & 0x0f) << 4));
        y[i].ql[64 * h + 32 + l] = uint8_t((Lh[l + 32] & 0x0f) | ((Lh[l + 96] & 0x0f) << 4));
        y[i].qh[32 * h + l] = uint8_t((Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) | ((Lh[l + 64] >> 4) << 4) |
                                      ((Lh[l + 96] >> 4) << 6));
      }
    }
  }
}

void check_target(dtype t, int64_t n) {
  if (!can_quantize(t)) throw error(std::string("quantize: ") + dtype_name(t) + " is not a quantization target");
  if (!dtype_row_fits(t, n))
    throw error(std::string("quantize: ") + dtype_name(t) + " stores rows in blocks of " +
                std::to_string(dtype_block_elems(t)) + " elements; a row of " + std::to_string(n) +
                " does not divide (use another type for this tensor)");
}

int64_t first_nonfinite(const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) return i;
  return -1;
}

}  // namespace

bool can_quantize(dtype t) {
  switch (t) {
    case dtype::F32: case dtype::F16: case dtype::BF16: case dtype::Q8_0: case dtype::Q4_0: case dtype::Q4_1:
    case dtype::Q5_0: case dtype::Q5_1: case dtype::Q4_K: case dtype::Q5_K: case dtype::Q6_K:
      return true;
    default:
      return false;
  }
}

void quantize_row(dtype t, const float* src, void* dst, int64_t n) {
  check_target(t, n);
  const int64_t nb = n / int64_t(dtype_block_elems(t));
  switch (t) {
    case dtype::F32: std::memcpy(dst, src, size_t(n) * 4); return;
    case dtype::F16:
      for (int64_t i = 0; i < n; ++i) static_cast<uint16_t*>(dst)[i] = f32_to_f16(src[i]);
      return;
    case dtype::BF16:
      for (int64_t i = 0; i < n; ++i) static_cast<uint16_t*>(dst)[i] = f32_to_bf16(src[i]);
      return;
    case dtype::Q8_0: return quantize_row_q8_0(src, dst, n);
    case dtype::Q4_0: return quantize_q4_0(src, static_cast<block_q4_0*>(dst), nb);
    case dtype::Q4_1: return quantize_q4_1(src, static_cast<block_q4_1*>(dst), nb);
    case dtype::Q5_0: return quantize_q5_0(src, static_cast<block_q5_0*>(dst), nb);
    case dtype::Q5_1: return quantize_q5_1(src, static_cast<block_q5_1*>(dst), nb);
    case dtype::Q4_K: return quantize_q4_k(src, static_cast<block_q4_k*>(dst), nb);
    case dtype::Q5_K: return quantize_q5_k(src, static_cast<block_q5_k*>(dst), nb);
    case dtype::Q6_K: return quantize_q6_k(src, static_cast<block_q6_k*>(dst), nb);
    default: break;
  }
}

void quantize_rows(dtype t, const float* src, void* dst, int64_t rows, int64_t cols, thread_pool* pool) {
  check_target(t, cols);
  const size_t row_bytes = dtype_row_bytes(t, cols);
  std::atomic<int64_t> bad_row{-1};
  parallel_for(pool, rows, std::max<int64_t>(1, 65536 / std::max<int64_t>(1, cols)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* x = src + r * cols;
      if (t != dtype::F32 && first_nonfinite(x, cols) >= 0) {
        int64_t none = -1;
        bad_row.compare_exchange_strong(none, r);
        continue;
      }
      quantize_row(t, x, static_cast<uint8_t*>(dst) + size_t(r) * row_bytes, cols);
    }
  });
  if (bad_row.load() >= 0)
    throw error("quantize: row " + std::to_string(bad_row.load()) + " holds a non-finite value (NaN or infinity); " +
                "it cannot be stored as " + dtype_name(t));
}

void quantize_rows_i8(const float* src, int8_t* dst, float* scales, int64_t rows, int64_t cols, thread_pool* pool) {
  std::atomic<int64_t> bad_row{-1};
  parallel_for(pool, rows, std::max<int64_t>(1, 65536 / std::max<int64_t>(1, cols)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* x = src + r * cols;
      if (first_nonfinite(x, cols) >= 0) {
        int64_t none = -1;
        bad_row.compare_exchange_strong(none, r);
        continue;
      }
      float amax = 0;
      for (int64_t c = 0; c < cols; ++c) amax = std::max(amax, std::fabs(x[c]));
      const float s = amax / 127.0f, is = s != 0 ? 1.0f / s : 0.0f;
      scales[r] = s;
      for (int64_t c = 0; c < cols; ++c) dst[r * cols + c] = int8_t(clampi(round_away(x[c] * is), -127, 127));
    }
  });
  if (bad_row.load() >= 0)
    throw error("quantize: row " + std::to_string(bad_row.load()) + " holds a non-finite value (NaN or infinity)");
}

tensor quantize_tensor(const tensor& src, dtype t, tensor* scales, thread_pool* pool) {
  if (!(src.type() == dtype::F32 || src.type() == dtype::F16 || src.type() == dtype::BF16))
    throw error(std::string("quantize: source tensor must be F32, F16 or BF16, not ") + dtype_name(src.type()));
  const int64_t rows = src.rows(), cols = src.cols();
  // The source as contiguous F32 rows (a copy only when it is not F32 already or rows are padded).
  std::vector<float> f32;
  const float* x = nullptr;
  if (src.type() == dtype::F32 && src.is_contiguous()) {
    x = src.ptr<float>();
  } else {
    f32.resize(size_t(rows * cols));
    for (int64_t r = 0; r < rows; ++r) dequantize_row(src.type(), src.row(r), f32.data() + r * cols, cols);
    x = f32.data();
  }
  if (t == dtype::I8) {
    if (!scales) throw error("quantize: I8 needs a tensor for its per-row scales");
    tensor out = tensor::empty_host(dtype::I8, src.shape());
    *scales = tensor::empty_host(dtype::F32, {rows});
    quantize_rows_i8(x, out.ptr<int8_t>(), scales->ptr<float>(), rows, cols, pool);
    return out;
  }
  check_target(t, cols);
  tensor out = tensor::empty_host(t, src.shape());
  quantize_rows(t, x, out.data(), rows, cols, pool);
  return out;
}

dtype fallback_type(dtype wanted, int64_t n) {
  if (dtype_row_fits(wanted, n)) return wanted;
  dtype t = dtype::F16;
  switch (wanted) {
    case dtype::Q4_K: t = dtype::Q5_0; break;
    case dtype::Q5_K: t = dtype::Q5_1; break;
    case dtype::Q6_K: t = dtype::Q8_0; break;
    default: break;  // a 32-element type that does not fit: llama.cpp refuses; F16 stores any row
  }
  return dtype_row_fits(t, n) ? t : dtype::F16;
}

}  // namespace autoglm::quant
