// kernels/cpu/sample.cpp: SAMPLE on the CPU, written for clarity (sorts the candidates): see sample.h for the rule.
#include "kernels/cpu/sample.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/kernel_util.h"

namespace autoglm::cpu {

namespace {

constexpr float k_neg_inf = -std::numeric_limits<float>::infinity();

float finite_or_neg_inf(float v) { return std::isnan(v) ? k_neg_inf : v; }

int32_t argmax_lowest(const float* l, int64_t vocab) {
  int64_t best = 0;
  float best_v = finite_or_neg_inf(l[0]);
  for (int64_t i = 1; i < vocab; ++i) {
    const float v = finite_or_neg_inf(l[i]);
    if (v > best_v) best_v = v, best = i;
  }
  return int32_t(best);
}

}  // namespace

int32_t sample_row(const float* l, int64_t vocab, const float* params) {
  const float temperature = params[SP_TEMPERATURE];
  const int64_t top_k = int64_t(params[SP_TOP_K]);
  const float top_p = params[SP_TOP_P], min_p = params[SP_MIN_P];
  const double u = double(params[SP_UNIFORM]);
  if (!(temperature >= k_greedy_temperature) || top_k == 1) return argmax_lowest(l, vocab);

  const float inv_t = 1.0f / temperature;
  std::vector<float> s(static_cast<size_t>(vocab));
  float mx = k_neg_inf;
  for (int64_t i = 0; i < vocab; ++i) {
    s[size_t(i)] = finite_or_neg_inf(l[i]) * inv_t;
    mx = std::max(mx, s[size_t(i)]);
  }
  if (mx == k_neg_inf) return 0;

  // 1. min-p
  const double threshold = min_p > 0.0f ? double(mx) + std::log(double(min_p)) : -std::numeric_limits<double>::infinity();
  std::vector<int32_t> kept;
  for (int64_t i = 0; i < vocab; ++i)
    if (s[size_t(i)] > k_neg_inf && double(s[size_t(i)]) >= threshold) kept.push_back(int32_t(i));
  if (kept.empty()) return argmax_lowest(l, vocab);  // min_p > 1 keeps nothing: the most likely token

  auto by_value_desc = [&](int32_t a, int32_t b) { return s[size_t(a)] > s[size_t(b)] || (s[size_t(a)] == s[size_t(b)] && a < b); };
  // 2. top-k
  if (top_k > 0 && top_k < int64_t(kept.size())) {
    std::nth_element(kept.begin(), kept.begin() + top_k, kept.end(), by_value_desc);
    kept.resize(size_t(top_k));
  }
  // 3. fixed-point weights
  auto weight = [&](int32_t i) { return uint64_t(double(std::exp(s[size_t(i)] - mx)) * k_sample_weight_scale); };
  // 4. top-p
  if (top_p < 1.0f) {
    std::sort(kept.begin(), kept.end(), by_value_desc);
    uint64_t total = 0;
    for (int32_t i : kept) total += weight(i);
    const uint64_t target =
        std::min(total, std::max<uint64_t>(1, uint64_t(std::ceil(double(top_p) * double(total)))));
    uint64_t acc = 0;
    size_t n = 0;
    while (n < kept.size() && acc < target) acc += weight(kept[n++]);
    kept.resize(std::max<size_t>(n, 1));
  }
  // 5. draw in id order
  std::sort(kept.begin(), kept.end());
  uint64_t total = 0;
  for (int32_t i : kept) total += weight(i);
  const uint64_t draw = uint64_t(u * double(total));
  uint64_t acc = 0;
  for (int32_t i : kept) {
    acc += weight(i);
    if (acc > draw) return i;
  }
  return kept.back();
}

void sample_kernel(const kernel_context& kc, const tensor& logits, const tensor& params, tensor& out) {
  const rows_of<float> l = f32_rows(logits, "sample logits");
  AG_CHECK(out.type() == dtype::I32 && out.is_contiguous(), "sample: out must be contiguous I32");
  const float* p = f32_vector(params, "sample params");
  int32_t* o = out.ptr<int32_t>();
  const int64_t vocab = logits.cols();
  const int64_t rows = logits.rows();
  auto run = [&](int64_t r) { o[r] = sample_row(l[r], vocab, p + r * k_sample_params); };
  parallel_for(kc.pool, rows, 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) run(r);
  });
}

}  // namespace autoglm::cpu
