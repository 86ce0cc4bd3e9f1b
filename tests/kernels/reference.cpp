// tests/kernels/reference.cpp: the double-precision references of reference.h.
#include "reference.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace autoglm::harness::ref {

double round_to(dtype type, double x) {
  if (type == dtype::I32) {
    if (std::isnan(x)) return 0;
    return std::clamp(std::trunc(x), -2147483648.0, 2147483647.0);
  }
  // Binary formats by significand bits (implicit bit included), smallest normal exponent and largest finite.
  int digits = 24, min_exp = -126;
  double max_finite = double(std::numeric_limits<float>::max());
  if (type == dtype::F16) digits = 11, min_exp = -14, max_finite = 65504.0;
  else if (type == dtype::BF16) digits = 8, max_finite = 0x1.fep127;
  if (x == 0 || !std::isfinite(x)) return x;
  int e;
  std::frexp(x, &e);  // |x| = m * 2^e, m in [0.5, 1): the leading bit has weight 2^(e-1)
  const int quantum_exp = std::max(e - 1, min_exp) - (digits - 1);
  const double q = std::ldexp(1.0, quantum_exp);
  const double r = std::nearbyint(x / q) * q;  // the default rounding mode: to nearest, ties to even
  if (std::abs(r) > max_finite) return std::copysign(INFINITY, x);
  return r;
}

vecd linear(const vecf& x, const vecf& w, const vecf& bias, int64_t m, int64_t n, int64_t k) {
  vecd y(size_t(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = bias.empty() ? 0.0 : double(bias[size_t(j)]);
      for (int64_t c = 0; c < k; ++c) s += double(x[size_t(i * k + c)]) * double(w[size_t(j * k + c)]);
      y[size_t(i * n + j)] = s;
    }
  return y;
}

vecd quantize_activations(const vecf& x, int64_t m, int64_t k, int64_t group) {
  vecd out(x.size());
  for (int64_t i = 0; i < m; ++i)
    for (int64_t g0 = 0; g0 < k; g0 += group) {
      const float* xg = x.data() + i * k + g0;
      float amax = 0.0f;
      for (int64_t e = 0; e < group; ++e) amax = std::max(amax, std::abs(xg[e]));
      const float d = amax / 127.0f, id = amax > 0.0f ? 127.0f / amax : 0.0f;
      for (int64_t e = 0; e < group; ++e) {
        const float p = xg[e] * id;  // the float product, then rounded to an integer (ties to even)
        const double q = std::clamp(std::nearbyint(double(p)), -127.0, 127.0);
        out[size_t(i * k + g0 + e)] = q * double(d);
      }
    }
  return out;
}

vecd round_q8_0(const vecf& x) {
  vecd out(x.size());
  for (size_t b = 0; b + 32 <= x.size(); b += 32) {
    float amax = 0.0f;
    for (size_t e = 0; e < 32; ++e) amax = std::max(amax, std::abs(x[b + e]));
    const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    const double dh = round_to(dtype::F16, d);
    for (size_t e = 0; e < 32; ++e) {
      const float p = x[b + e] * id;
      out[b + e] = dh * std::round(double(p));  // std::round: halves away from zero
    }
  }
  return out;
}

vecd linear_d(const vecd& xq, const vecf& w, const vecf& bias, int64_t m, int64_t n, int64_t k) {
  vecd y(size_t(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = bias.empty() ? 0.0 : double(bias[size_t(j)]);
      for (int64_t c = 0; c < k; ++c) s += xq[size_t(i * k + c)] * double(w[size_t(j * k + c)]);
      y[size_t(i * n + j)] = s;
    }
  return y;
}

vecd rms_norm(const vecf& x, const vecf& w, int64_t m, int64_t n, double eps) {
  vecd y(size_t(m * n));
  for (int64_t i = 0; i < m; ++i) {
    double ss = 0;
    for (int64_t j = 0; j < n; ++j) ss += double(x[size_t(i * n + j)]) * x[size_t(i * n + j)];
    const double inv = 1.0 / std::sqrt(ss / double(n) + eps);
    for (int64_t j = 0; j < n; ++j) y[size_t(i * n + j)] = double(x[size_t(i * n + j)]) * inv * w[size_t(j)];
  }
  return y;
}

vecd layer_norm(const vecf& x, const vecf& w, const vecf& b, int64_t m, int64_t n, double eps) {
  vecd y(size_t(m * n));
  for (int64_t i = 0; i < m; ++i) {
    double mean = 0, var = 0;
    for (int64_t j = 0; j < n; ++j) mean += x[size_t(i * n + j)];
    mean /= double(n);
    for (int64_t j = 0; j < n; ++j) var += (x[size_t(i * n + j)] - mean) * (x[size_t(i * n + j)] - mean);
    const double inv = 1.0 / std::sqrt(var / double(n) + eps);
    for (int64_t j = 0; j < n; ++j)
      y[size_t(i * n + j)] = (x[size_t(i * n + j)] - mean) * inv * w[size_t(j)] + b[size_t(j)];
  }
  return y;
}

vecf rope_inv_freq(int64_t dim, float theta) {
  vecf inv(size_t(dim / 2));
  for (int64_t i = 0; i < dim / 2; ++i) inv[size_t(i)] = 1.0f / std::pow(theta, float(2 * i) / float(dim));
  return inv;
}

namespace {
// Rotation of the pair (a, b) by the fp32 angle float(p) * inv, evaluated in double.
void rotate(double& a, double& b, int32_t p, float inv) {
  const double ang = double(float(p) * inv);
  const double c = std::cos(ang), s = std::sin(ang);
  const double a2 = a * c - b * s, b2 = b * c + a * s;
  a = a2;
  b = b2;
}
}  // namespace

void rope_mrope(vecd& x, int64_t n, int64_t width, int64_t n_heads, int64_t head_dim, int64_t rot_dim,
                const std::vector<int32_t>& pos, const std::array<int32_t, 3>& sections, float theta) {
  const vecf inv = rope_inv_freq(rot_dim, theta);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t h = 0; h < n_heads; ++h)
      for (int64_t i = 0; i < rot_dim / 2; ++i) {
        const int plane = i < sections[0] ? 0 : (i < sections[0] + sections[1] ? 1 : 2);
        double* v = x.data() + t * width + h * head_dim;
        rotate(v[2 * i], v[2 * i + 1], pos[size_t(plane * n + t)], inv[size_t(i)]);
      }
}

void rope_2d(vecd& x, int64_t n, int64_t width, int64_t n_heads, int64_t head_dim, const std::vector<int32_t>& pos,
             float theta) {
  const int64_t half = head_dim / 2, quarter = head_dim / 4;
  const vecf inv = rope_inv_freq(half, theta);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t h = 0; h < n_heads; ++h) {
      double* v = x.data() + t * width + h * head_dim;
      for (int64_t d = 0; d < half; ++d) {
        const bool w_plane = d >= quarter;
        rotate(v[d], v[d + half], pos[size_t((w_plane ? 1 : 0) * n + t)], inv[size_t(d % quarter)]);
      }
    }
}

double silu(double g) { return g / (1.0 + std::exp(-g)); }
double gelu_erf(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }

vecd softmax(const vecf& x, int64_t m, int64_t n, double scale) {
  vecd y(size_t(m * n));
  for (int64_t i = 0; i < m; ++i) {
    double mx = -INFINITY, sum = 0;
    for (int64_t j = 0; j < n; ++j) mx = std::max(mx, x[size_t(i * n + j)] * scale);
    for (int64_t j = 0; j < n; ++j) sum += (y[size_t(i * n + j)] = std::exp(x[size_t(i * n + j)] * scale - mx));
    for (int64_t j = 0; j < n; ++j) y[size_t(i * n + j)] /= sum;
  }
  return y;
}

namespace {
// out_row[0..hd) = softmax_j(q . k_j * scale) v_j over keys j in [j0, j1) (rows of stride `width` at column col).
void attend(const float* q, const vecf& k, const vecf& v, int64_t width, int64_t kcol, int64_t j0, int64_t j1,
            int64_t hd, double scale, double* out) {
  vecd p(size_t(j1 - j0));
  double mx = -INFINITY;
  for (int64_t j = j0; j < j1; ++j) {
    double s = 0;
    for (int64_t d = 0; d < hd; ++d) s += double(q[d]) * k[size_t(j * width + kcol + d)];
    p[size_t(j - j0)] = s * scale;
    mx = std::max(mx, s * scale);
  }
  double sum = 0;
  for (double& e : p) sum += (e = std::exp(e - mx));
  for (int64_t d = 0; d < hd; ++d) {
    double acc = 0;
    for (int64_t j = j0; j < j1; ++j) acc += p[size_t(j - j0)] * v[size_t(j * width + kcol + d)];
    out[d] = acc / sum;
  }
}
}  // namespace

vecd attention_causal(const vecf& q, const vecf& k, const vecf& v, int64_t n_new, int64_t n_past, int64_t n_heads,
                      int64_t n_kv_heads, int64_t hd, double scale) {
  const int64_t qw = n_heads * hd, kw = n_kv_heads * hd, group = n_heads / n_kv_heads;
  vecd out(size_t(n_new * qw));
  for (int64_t i = 0; i < n_new; ++i)
    for (int64_t h = 0; h < n_heads; ++h)
      attend(q.data() + i * qw + h * hd, k, v, kw, (h / group) * hd, 0, n_past + i + 1, hd, scale,
             out.data() + i * qw + h * hd);
  return out;
}

void attention_block(const vecf& q, const vecf& k, const vecf& v, int64_t r0, int64_t r1, int64_t n_heads, int64_t hd,
                     double scale, vecd& out) {
  const int64_t w = n_heads * hd;
  for (int64_t i = r0; i < r1; ++i)
    for (int64_t h = 0; h < n_heads; ++h)
      attend(q.data() + i * w + h * hd, k, v, w, h * hd, r0, r1, hd, scale, out.data() + i * w + h * hd);
}

vecd attention_cross(const vecf& q, const vecf& k, const vecf& v, int64_t nq, int64_t nk, int64_t n_heads,
                     int64_t n_kv_heads, int64_t hd, double scale) {
  const int64_t qw = n_heads * hd, kw = n_kv_heads * hd, group = n_heads / n_kv_heads;
  vecd out(size_t(nq * qw), 0.0);
  if (nk == 0) return out;
  for (int64_t i = 0; i < nq; ++i)
    for (int64_t h = 0; h < n_heads; ++h)
      attend(q.data() + i * qw + h * hd, k, v, kw, (h / group) * hd, 0, nk, hd, scale, out.data() + i * qw + h * hd);
  return out;
}

vecd conv1d(const vecf& x, const vecf& w, const vecf& bias, int64_t t_in, int64_t c_in, int64_t c_out, int64_t ks,
            int64_t stride, int64_t pad) {
  const int64_t t_out = (t_in + 2 * pad - ks) / stride + 1;
  vecd out(size_t(t_out * c_out));
  for (int64_t t = 0; t < t_out; ++t)
    for (int64_t o = 0; o < c_out; ++o) {
      double acc = bias.empty() ? 0.0 : double(bias[size_t(o)]);
      for (int64_t ci = 0; ci < c_in; ++ci)
        for (int64_t j = 0; j < ks; ++j) {
          const int64_t src = t * stride + j - pad;
          if (src >= 0 && src < t_in) acc += double(w[size_t((o * c_in + ci) * ks + j)]) * x[size_t(src * c_in + ci)];
        }
      out[size_t(t * c_out + o)] = acc;
    }
  return out;
}

namespace {
// Keys' cubic convolution kernel with A = -0.75 (what PyTorch's bicubic uses), as one function of |x| <= 2.
double cubic(double x) {
  const double a = -0.75;
  x = std::abs(x);
  if (x <= 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return 0;
}
}  // namespace

vecd pos_embed_bicubic(const vecf& table, int32_t g, int64_t d, int32_t grid_h, int32_t grid_w,
                       const std::vector<int32_t>& pos_h, const std::vector<int32_t>& pos_w) {
  const int64_t n = int64_t(pos_h.size());
  vecd out(size_t(n * d));
  for (int64_t i = 0; i < n; ++i) {
    // HF builds the sampling grid in fp32: (idx + 0.5) / size * 2 - 1.
    const float gxf = ((float(pos_w[size_t(i)]) + 0.5f) / float(grid_w)) * 2.0f - 1.0f;
    const float gyf = ((float(pos_h[size_t(i)]) + 0.5f) / float(grid_h)) * 2.0f - 1.0f;
    const double ix = ((double(gxf) + 1) * g - 1) / 2, iy = ((double(gyf) + 1) * g - 1) / 2;
    const double fx = std::floor(ix), fy = std::floor(iy);
    for (int64_t c = 0; c < d; ++c) {
      double acc = 0;
      for (int ky = -1; ky <= 2; ++ky)
        for (int kx = -1; kx <= 2; ++kx) {
          const int64_t ty = std::clamp<int64_t>(int64_t(fy) + ky, 0, g - 1);
          const int64_t tx = std::clamp<int64_t>(int64_t(fx) + kx, 0, g - 1);
          acc += cubic(iy - (fy + ky)) * cubic(ix - (fx + kx)) * table[size_t((ty * g + tx) * d + c)];
        }
      out[size_t(i * d + c)] = acc;
    }
  }
  return out;
}

}  // namespace autoglm::harness::ref
