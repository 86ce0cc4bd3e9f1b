// tests/kernels/gemm_test_util.h: what the GEMM tests (gemm_test, gemm_bf16_test, gemm_amx_test) share: a y written
// as a column view of wider rows with sentinels around it, padded random rows, a bit-for-bit comparison, and a case's
// shape and name.
#pragma once

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace autoglm::cpu::test {

// Padding of x rows and everything around y: exact in F32, F16 and BF16, and never a value a kernel computes here.
constexpr float k_sentinel = -4096.0f;

// y as a column range [3, 3 + n) of rows `pad` wider than n, everything else a sentinel that must survive.
struct wide_y {
  int64_t m, n, stride;
  std::vector<float> buf;
  wide_y(int64_t m_, int64_t n_, int64_t pad = 5)
      : m(m_), n(n_), stride(n_ + pad), buf(size_t(m_ * (n_ + pad) + 3), k_sentinel) {}
  float* data() { return buf.data() + 3; }
  std::vector<float> view() const {
    std::vector<float> v(size_t(m * n));
    for (int64_t i = 0; i < m; ++i)
      for (int64_t r = 0; r < n; ++r) v[size_t(i * n + r)] = buf[size_t(3 + i * stride + r)];
    return v;
  }
  bool outside_untouched() const {
    for (size_t q = 0; q < buf.size(); ++q) {
      const int64_t rel = int64_t(q) - 3, c = rel >= 0 ? rel % stride : -1;
      if ((rel < 0 || c >= n || rel / stride >= m) && buf[q] != k_sentinel) return false;
    }
    return true;
  }
};

// One case of the bf16 GEMMs: m, n, k, a bias or none, padding past k in x's rows and in W's rows.
struct gemm_shape {
  int64_t m, n, k;
  bool bias;
  int64_t x_pad, w_pad;
};

// m rows of `stride` floats: normal values in the first k columns, `pad` past them (what a kernel must not fold into
// its sums). gen and nd are the case's own, so the values follow from its seed.
inline std::vector<float> padded_normal_rows(std::mt19937_64& gen, std::normal_distribution<float>& nd, int64_t m,
                                             int64_t k, int64_t stride, float pad) {
  std::vector<float> x(size_t(m * stride), pad);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < k; ++j) x[size_t(i * stride + j)] = nd(gen);
  return x;
}

inline std::string describe_mnk(int64_t m, int64_t n, int64_t k) {
  return "m=" + std::to_string(m) + " n=" + std::to_string(n) + " k=" + std::to_string(k);
}

inline bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace autoglm::cpu::test
